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
    if let bias {
        precondition(bias.count == O, "linear: bias \(bias.shape) for \(O) outputs")
        let (yp, bp) = (y.pointer, bias.pointer)
        parallelFor(N, minimumPerTask: 64) { rows in
            for n in rows { axpy(O, 1, bp, yp + n * O) }
        }
    }
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
    if let dBias {
        let (dbp, dyp) = (dBias.pointer, dY.pointer)
        for n in 0..<N { axpy(O, 1, dyp + n * O, dbp) }
    }
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
