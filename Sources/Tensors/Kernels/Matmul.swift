// Legend: N tokens (rows), I input features, O output features.

/// Linear layer `y = x Wᵀ + b`, as torch.nn.Linear.
///
/// x: (N, I), weight: (O, I), bias: (O) -> y: (N, O).
public func linearForward(y: Tensor, x: Tensor, weight: Tensor, bias: Tensor? = nil) {
    let (N, O) = (y.shape[0], y.count / y.shape[0])
    let I = weight.count / O
    precondition(
        x.count == N * I && weight.count == O * I,
        "linear: x \(x.shape), weight \(weight.shape), y \(y.shape)")
    if !skinnyLinear(y: y, x: x, weight: weight, n: N, o: O, i: I) {
        BLAS.sgemm(
            transA: false, transB: true, m: N, n: O, k: I, a: x.pointer, lda: I, b: weight.pointer, ldb: I,
            c: y.pointer, ldc: O)
    }
    if let bias { addBias(bias, to: y, rows: N, outputs: O) }
}

/// Backward of `linearForward`: dX (=, or += when `accumulate`) dY W; dWeight += dYᵀ x; dBias += Σ_n dY.
///
/// dY: (N, O), x: (N, I), weight: (O, I). Pass `dX: nil` when the input needs no gradient, and
/// `dWeight: nil` for a frozen weight (its matmul, the larger half of the work, is skipped).
public func linearBackward(
    dX: Tensor?, accumulate: Bool = false, dWeight: Tensor?, dBias: Tensor? = nil,
    dY: Tensor, x: Tensor, weight: Tensor
) {
    let (N, O) = (dY.shape[0], dY.count / dY.shape[0])
    let I = weight.count / O
    precondition(x.count == N * I && (dWeight?.count ?? O * I) == O * I, "linearBackward: shapes disagree")
    if let dX {
        precondition(dX.count == N * I, "linearBackward: dX \(dX.shape)")
        BLAS.sgemm(
            transA: false, transB: false, m: N, n: I, k: O, a: dY.pointer, lda: O, b: weight.pointer, ldb: I,
            beta: accumulate ? 1 : 0, c: dX.pointer, ldc: I)
    }
    if let dWeight {
        BLAS.sgemm(
            transA: true, transB: false, m: O, n: I, k: N, a: dY.pointer, lda: O, b: x.pointer, ldb: I,
            beta: 1, c: dWeight.pointer, ldc: I)
    }
    if let dBias { accumulateBiasGradient(dBias, dY: dY, rows: N, outputs: O) }
}

/// y[n] += bias for each of the N rows of y (N, O).
private func addBias(_ bias: Tensor, to y: Tensor, rows N: Int, outputs O: Int) {
    precondition(bias.count == O, "linear: bias \(bias.shape) for \(O) outputs")
    let (yp, bp) = (y.pointer, bias.pointer)
    parallelFor(N, minimumPerTask: 64) { rows in
        for n in rows { axpy(O, 1, bp, yp + n * O) }
    }
}

/// dBias += Σ_n dY[n] over the N rows of dY (N, O).
private func accumulateBiasGradient(_ dBias: Tensor, dY: Tensor, rows N: Int, outputs O: Int) {
    let (dbp, dyp) = (dBias.pointer, dY.pointer)
    for n in 0..<N { axpy(O, 1, dyp + n * O, dbp) }
}

/// Linear layers with few rows (decoding) run on oneDNN's matmul primitive, about twice as fast as
/// sgemm there; returns false when the shape is not skinny or the primitive is unavailable.
private func skinnyLinear(y: Tensor, x: Tensor, weight: Tensor, n N: Int, o O: Int, i I: Int) -> Bool {
    #if canImport(Accelerate)
        return false
    #else
        guard N <= 256 else { return false }
        return MatmulPrimitives.shared.run(m: N, n: O, k: I, x: x.pointer, w: weight.pointer, y: y.pointer)
    #endif
}

// MARK: - bf16

/// bf16 matrix products (bf16 operands, float32 accumulation and result) on oneDNN's matmul
/// primitive, where the CPU has bf16 instructions (`avx512_bf16`).
public enum BFloat16Matmul {
    /// Whether bf16 products run natively here: the CPU has `avx512_bf16` and oneDNN makes the
    /// primitive (probed once, on a small product checked against float32).
    public static let isAvailable: Bool = {
        guard CPUFeatures.hasAVX512BF16 else { return false }
        #if canImport(Accelerate)
            return false
        #else
            let (m, n, k) = (4, 3, 8)
            let a = (0..<(m * k)).map { BFloat16.bits(Float($0 % 5) - 2) }
            let b = (0..<(n * k)).map { BFloat16.bits(Float($0 % 3) - 1) }
            var c = [Float](repeating: 0, count: m * n)
            let ran = c.withUnsafeMutableBufferPointer { cp in
                MatmulPrimitives.shared.runBF16(
                    transA: false, transB: true, m: m, n: n, k: k, a: a, b: b, accumulate: false,
                    c: cp.baseAddress!)
            }
            guard ran else { return false }
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Float = 0
                    for p in 0..<k { sum += BFloat16.float(a[i * k + p]) * BFloat16.float(b[j * k + p]) }
                    if c[i * n + j] != sum { return false }
                }
            }
            return true
        #endif
    }()

    /// C (M, N) (+= when `accumulate`) op(A) · op(B), A stored (K, M) when `transA`, B stored (N, K)
    /// when `transB`, every matrix dense.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>,
        b: UnsafePointer<UInt16>,
        accumulate: Bool, c: UnsafeMutablePointer<Float>
    ) {
        if m == 0 || n == 0 { return }
        #if canImport(Accelerate)
            preconditionFailure("bf16 matmuls need oneDNN (BFloat16Matmul.isAvailable is false here)")
        #else
            let ran = MatmulPrimitives.shared.runBF16(
                transA: transA, transB: transB, m: m, n: n, k: k, a: a, b: b, accumulate: accumulate, c: c)
            precondition(ran, "oneDNN's bf16 matmul failed for \(m) x \(k) -> \(n)")
        #endif
    }

    /// Bytes of a packed (O, I) weight, nil where packing is unavailable.
    static func packedBytes(outputs: Int, inputs: Int) -> Int? {
        #if canImport(Accelerate)
            return nil
        #else
            guard isAvailable else { return nil }
            return MatmulPrimitives.shared.packedBytes(n: outputs, k: inputs)
        #endif
    }

    /// Packs `weight`'s row-major bf16 values at `rowMajor` into `packed`.
    static func pack(
        _ weight: BFloat16Weight, from rowMajor: UnsafeMutablePointer<UInt16>,
        into packed: UnsafeMutableRawPointer
    ) {
        #if canImport(Accelerate)
            preconditionFailure("packed bf16 weights need oneDNN")
        #else
            let done = MatmulPrimitives.shared.reorder(
                n: weight.outputs, k: weight.inputs, rowMajor: rowMajor, packed: packed)
            precondition(done, "oneDNN could not pack a \(weight.outputs) x \(weight.inputs) bf16 weight")
        #endif
    }

    /// y (M, O) = x (M, I) Wᵀ with x already in bf16 (`forward(m:x:weight:y:scratch:)`).
    public static func forward(
        m: Int, x: UnsafePointer<UInt16>, weight: BFloat16Weight, y: UnsafeMutablePointer<Float>
    ) {
        BFloat16Scratch.shared.withBuffers { forward(m: m, x: x, weight: weight, y: y, scratch: $0) }
    }

    /// y (M, O) = x (M, I) Wᵀ, x in bf16: through the packed layout when held and the kernels take
    /// it for M rows, else row-major (unpacked into scratch when only the packed layout is held).
    static func forward(
        m: Int, x: UnsafePointer<UInt16>, weight: BFloat16Weight, y: UnsafeMutablePointer<Float>,
        scratch: BFloat16Scratch
    ) {
        let (n, k) = (weight.outputs, weight.inputs)
        if m == 0 { return }
        #if !canImport(Accelerate)
            if let packed = weight.packed {
                if MatmulPrimitives.shared.runBF16Packed(m: m, n: n, k: k, a: x, packed: packed, c: y) {
                    return
                }
                if weight.rowMajor == nil {
                    let plain = scratch.buffer(2, count: n * k)
                    let done = MatmulPrimitives.shared.reorder(
                        n: n, k: k, rowMajor: plain, packed: packed, unpack: true)
                    precondition(done, "oneDNN could not unpack a \(n) x \(k) bf16 weight")
                    gemm(
                        transA: false, transB: true, m: m, n: n, k: k, a: x, b: plain, accumulate: false, c: y
                    )
                    return
                }
            }
        #endif
        gemm(
            transA: false, transB: true, m: m, n: n, k: k, a: x, b: weight.rowMajor!.pointer,
            accumulate: false,
            c: y)
    }
}

/// `linearForward` with the weight in bf16 (O, I): x is rounded to bf16 on the way in; the
/// product accumulates in float32.
public func linearForwardBF16(y: Tensor, x: Tensor, weight: BFloat16Weight, bias: Tensor? = nil) {
    let (N, O) = (y.shape[0], y.count / y.shape[0])
    let I = weight.inputs
    precondition(
        x.count == N * I && weight.outputs == O,
        "linear (bf16): x \(x.shape), weight \(weight.outputs) x \(weight.inputs), y \(y.shape)")
    BFloat16Scratch.shared.withBuffers { scratch in
        let xb = scratch.converted(0, x.pointer, count: N * I)
        BFloat16Matmul.forward(m: N, x: xb, weight: weight, y: y.pointer, scratch: scratch)
    }
    if let bias { addBias(bias, to: y, rows: N, outputs: O) }
}

/// Backward of `linearForwardBF16`: dY and x are rounded to bf16, the products accumulate in
/// float32 into float32 dX, dWeight and dBias (as `linearBackward`).
public func linearBackwardBF16(
    dX: Tensor?, accumulate: Bool = false, dWeight: Tensor?, dBias: Tensor? = nil,
    dY: Tensor, x: Tensor, weight: BFloat16Weight
) {
    let (N, O) = (dY.shape[0], dY.count / dY.shape[0])
    let I = weight.inputs
    precondition(
        x.count == N * I && weight.outputs == O && (dWeight?.count ?? O * I) == O * I,
        "linearBackward (bf16): shapes disagree")
    precondition(dX == nil || weight.rowMajor != nil, "linearBackward (bf16): dX needs the row-major weight")
    BFloat16Scratch.shared.withBuffers { scratch in
        let dYb = scratch.converted(0, dY.pointer, count: N * O)
        if let dX {
            precondition(dX.count == N * I, "linearBackward: dX \(dX.shape)")
            BFloat16Matmul.gemm(
                transA: false, transB: false, m: N, n: I, k: O, a: dYb, b: weight.rowMajor!.pointer,
                accumulate: accumulate, c: dX.pointer)
        }
        if let dWeight {
            let xb = scratch.converted(1, x.pointer, count: N * I)
            BFloat16Matmul.gemm(
                transA: true, transB: false, m: O, n: I, k: N, a: dYb, b: xb, accumulate: true,
                c: dWeight.pointer)
        }
    }
    if let dBias { accumulateBiasGradient(dBias, dY: dY, rows: N, outputs: O) }
}
