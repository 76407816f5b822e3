import Foundation

// Legend: M target rows, C hidden size, V vocabulary, R rows per chunk.

/// Rows of logits made per chunk: as many as fit in 64 MiB (taller matmuls run nearer the sgemm
/// peak: 128 rows reached 60% of it on SmolLM2's 49,152-token vocabulary), between 64 and 512.
public func logitChunkRows(vocabSize V: Int) -> Int { max(64, min(512, (16 << 20) / max(V, 1))) }

/// Fused output projection, log-softmax and gather: logp[m] = log softmax(h_m Wᵀ / τ)[target_m].
///
/// hidden: (M, C), weight: (V, C) (lm_head or tied embedding), targets: (M) -> logp: (M), and
/// saves lse: (M), the log-sum-exp of each scaled logit row. Logits are made `chunkRows` rows at a
/// time, so the (M, V) matrix never exists whole.
public func logSoftmaxGatherForward(
    logp: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: [Int32], temperature: Float = 1,
    chunkRows: Int? = nil
) {
    let (V, C) = (weight.shape[0], weight.shape[1])
    let M = targets.count
    precondition(
        hidden.count == M * C && logp.count == M && lse.count == M, "logSoftmaxGather: shapes disagree")
    precondition(temperature > 0, "temperature must be positive, got \(temperature)")
    let chunkRows = chunkRows ?? logitChunkRows(vocabSize: V)
    let logits = Tensor(zeros: [min(chunkRows, max(M, 1)), V])
    let (zp, lp, sp) = (logits.pointer, logp.pointer, lse.pointer)
    let inverseT = 1 / temperature
    var start = 0
    while start < M {
        let R = min(chunkRows, M - start)
        BLAS.sgemm(
            transA: false, transB: true, m: R, n: V, k: C, a: hidden.pointer + start * C, lda: C,
            b: weight.pointer, ldb: C, c: zp, ldc: V)
        parallelFor(R) { rows in
            for r in rows {
                let z = zp + r * V
                let target = Int(targets[start + r])
                precondition(target >= 0 && target < V, "target id \(target) outside the vocabulary 0..<\(V)")
                let m = rowMax(z, V) * inverseT
                let total = sumExp(z, V, scale: inverseT, shift: m)
                let rowLSE = m + Foundation.log(total)
                sp[start + r] = rowLSE
                lp[start + r] = z[target] * inverseT - rowLSE
            }
        }
        start += R
    }
}

/// Backward of `logSoftmaxGatherForward`, recomputing each chunk's logits.
///
/// dz_j = dlogp * (1[j = target] - softmax(z/τ)_j) / τ; dHidden = dz W (written); dWeight += dzᵀ h
/// (skipped when `dWeight` is nil: a frozen head).
public func logSoftmaxGatherBackward(
    dHidden: Tensor, dWeight: Tensor?, dLogp: [Float], hidden: Tensor, weight: Tensor, targets: [Int32],
    lse: Tensor, temperature: Float = 1, chunkRows: Int? = nil
) {
    let (V, C) = (weight.shape[0], weight.shape[1])
    let M = targets.count
    precondition(dLogp.count == M && dHidden.count == M * C, "logSoftmaxGatherBackward: shapes disagree")
    let chunkRows = chunkRows ?? logitChunkRows(vocabSize: V)
    let logits = Tensor(zeros: [min(chunkRows, max(M, 1)), V])
    let (zp, sp) = (logits.pointer, lse.pointer)
    let inverseT = 1 / temperature
    var start = 0
    while start < M {
        let R = min(chunkRows, M - start)
        let h = hidden.pointer + start * C
        BLAS.sgemm(
            transA: false, transB: true, m: R, n: V, k: C, a: h, lda: C, b: weight.pointer, ldb: C,
            c: zp, ldc: V)
        parallelFor(R) { rows in
            for r in rows {
                let z = zp + r * V
                let g = dLogp[start + r] * inverseT
                softmaxRowScaled(z, count: V, scale: inverseT, shift: sp[start + r], multiplier: -g)
                z[Int(targets[start + r])] += g
            }
        }
        BLAS.sgemm(
            transA: false, transB: false, m: R, n: C, k: V, a: zp, lda: V, b: weight.pointer, ldb: C,
            c: dHidden.pointer + start * C, ldc: C)
        if let dWeight {
            BLAS.sgemm(
                transA: true, transB: false, m: V, n: C, k: R, a: zp, lda: V, b: h, ldb: C, beta: 1,
                c: dWeight.pointer, ldc: C)
        }
        start += R
    }
}

/// row[j] = exp(scale * row[j] - shift) * multiplier for j < count.
@inline(__always)
func softmaxRowScaled(
    _ row: UnsafeMutablePointer<Float>, count: Int, scale: Float, shift: Float, multiplier: Float
) {
    var j = 0
    while j + 16 <= count {
        row.storeSIMD16(simdExp(row.loadSIMD16(at: j) * scale - shift) * multiplier, at: j)
        j += 16
    }
    while j < count {
        row[j] = fastExp(row[j] * scale - shift) * multiplier
        j += 1
    }
}
