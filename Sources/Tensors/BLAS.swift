#if canImport(Accelerate)
    import Accelerate
#else
    import CDNNL
#endif

/// The one place that calls the platform BLAS: oneDNN's `dnnl_sgemm` on Linux, Accelerate on macOS.
public enum BLAS {
    /// Row-major `C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C`.
    ///
    /// `op(A)` is A stored as (K, M) when `transA`; `op(B)` is B stored as (N, K) when `transB`.
    /// `lda`, `ldb`, `ldc` are row strides in elements.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        #if canImport(Accelerate)
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #else
            let status = dnnl_sgemm(
                transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda),
                b, Int64(ldb), beta, c, Int64(ldc))
            precondition(status == dnnl_success, "dnnl_sgemm failed with status \(status.rawValue)")
        #endif
    }

    /// `sgemm` on arrays, writing into `c` (for tests and small one-off products).
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: [Float], lda: Int, b: [Float], ldb: Int,
        c: Tensor,
        ldc: Int
    ) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                sgemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, a: ap.baseAddress!, lda: lda,
                    b: bp.baseAddress!,
                    ldb: ldb, c: c.pointer, ldc: ldc)
            }
        }
    }
}
