import Foundation

// Legend: M target rows, C hidden size, V vocabulary, R rows per chunk.

/// Rows of logits made per chunk: as many as fit in 64 MiB (taller matmuls run nearer the sgemm
/// peak: 128 rows reached 60% of it on SmolLM2's 49,152-token vocabulary), between 64 and 512.
public func logitChunkRows(vocabSize V: Int) -> Int { max(64, min(512, (16 << 20) / max(V, 1))) }

/// The logits chunk, kept between calls (grown when a call needs more): a fresh 64 MiB chunk per
/// call cost its page faults and zeroing on every forward and backward.
final class LogitScratch: @unchecked Sendable {
    static let shared = LogitScratch()
    private var storage = TensorStorage(count: 0)
    private let lock = NSLock()

    /// Runs `body` with a buffer of at least `count` floats, to itself until `body` returns.
    func withBuffer<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(reuse(&storage, shape: [count]).pointer)
    }

    var bytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return storage.count * 4
    }
}

/// Bytes the logits chunk holds now (it is kept between calls), for memory accounts.
public var logitScratchBytes: Int { LogitScratch.shared.bytes }

/// What a bf16 forward keeps so its backward needs no second logits matmul.
///
/// Each row's softmax numerators e_j = exp(z_j / τ - max_j z / τ), rounded to bf16 (the
/// backward's matmuls round their operand to bf16 anyway), and the row's max. (M, V) bf16
/// values: 88 MiB for 940 rows of SmolLM2's 49,152-token vocabulary. Reused between forwards
/// (grown when a call needs more).
public final class SoftmaxNumerators: @unchecked Sendable {
    private var buffer = BFloat16Buffer(count: 0)
    private var maxStorage = TensorStorage(count: 0)
    public private(set) var rows = 0
    public private(set) var vocabSize = 0

    public init() {}

    /// Bytes held.
    public var bytes: Int { buffer.bytes + 4 * maxStorage.count }

    /// Room for (rows, vocabSize), keeping the buffers when they are big enough.
    func prepare(rows: Int, vocabSize: Int) {
        if buffer.count < rows * vocabSize {
            buffer = BFloat16Buffer(count: 0)  // free the old one first
            buffer = BFloat16Buffer(count: rows * vocabSize)
        }
        _ = reuse(&maxStorage, shape: [rows])
        (self.rows, self.vocabSize) = (rows, vocabSize)
    }

    /// Row r's numerators, (V) bf16 values.
    func row(_ r: Int) -> UnsafeMutablePointer<UInt16> { buffer.pointer + r * vocabSize }
    var pointer: UnsafeMutablePointer<UInt16> { buffer.pointer }
    /// Each row's max_j z / τ, (rows); rows are written by different threads.
    var maxima: UnsafeMutablePointer<Float> { maxStorage.pointer }
}

/// Fused output projection, log-softmax and gather: logp[m] = log softmax(h_m Wᵀ / τ)[target_m].
///
/// hidden: (M, C), weight: (V, C) (lm_head or tied embedding), targets: (M) -> logp: (M), and
/// saves lse: (M), the log-sum-exp of each scaled logit row. Logits are made `chunkRows` rows at a
/// time, so the (M, V) matrix never exists whole.
///
/// With `weightBF16` (the weight rounded to bf16), the logits' matmul takes bf16 operands and
/// accumulates in float32; the softmax and gather stay float32. With `keeping`, each row's
/// softmax numerators are kept there for `logSoftmaxGatherBackward` (bf16 only).
public func logSoftmaxGatherForward(
    logp: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, weightBF16: BFloat16Weight? = nil,
    targets: [Int32], temperature: Float = 1, chunkRows: Int? = nil,
    keeping numerators: SoftmaxNumerators? = nil
) {
    let (V, C) = (weight.shape[0], weight.shape[1])
    let M = targets.count
    precondition(
        hidden.count == M * C && logp.count == M && lse.count == M, "logSoftmaxGather: shapes disagree")
    precondition(temperature > 0, "temperature must be positive, got \(temperature)")
    let chunkRows = chunkRows ?? logitChunkRows(vocabSize: V)
    let (lp, sp) = (logp.pointer, lse.pointer)
    precondition(numerators == nil || weightBF16 != nil, "softmax numerators are kept for bf16 heads only")
    numerators?.prepare(rows: M, vocabSize: V)
    LogitScratch.shared.withBuffer(count: min(chunkRows, max(M, 1)) * V) { zp in
        let inverseT = 1 / temperature
        var start = 0
        while start < M {
            let R = min(chunkRows, M - start)
            chunkLogits(zp, hidden.pointer + start * C, rows: R, weight: weight, weightBF16: weightBF16)
            parallelFor(R) { rows in
                for r in rows {
                    let z = zp + r * V
                    let target = Int(targets[start + r])
                    precondition(
                        target >= 0 && target < V, "target id \(target) outside the vocabulary 0..<\(V)")
                    let m = rowMax(z, V) * inverseT
                    let total = sumExp(
                        z, V, scale: inverseT, shift: m, keeping: numerators?.row(start + r))
                    numerators?.maxima[start + r] = m
                    let rowLSE = m + Foundation.log(total)
                    sp[start + r] = rowLSE
                    lp[start + r] = z[target] * inverseT - rowLSE
                }
            }
            start += R
        }
    }
}

/// Backward of `logSoftmaxGatherForward`, recomputing each chunk's logits, or from the softmax
/// numerators the forward kept (`numerators`).
///
/// dz_j = dlogp * (1[j = target] - softmax(z/τ)_j) / τ; dHidden = dz W (written); dWeight += dzᵀ h
/// (skipped when `dWeight` is nil: a frozen head).
public func logSoftmaxGatherBackward(
    dHidden: Tensor, dWeight: Tensor?, dLogp: [Float], hidden: Tensor, weight: Tensor,
    weightBF16: BFloat16Weight? = nil, targets: [Int32], lse: Tensor, temperature: Float = 1,
    chunkRows: Int? = nil, numerators: SoftmaxNumerators? = nil
) {
    let (V, C) = (weight.shape[0], weight.shape[1])
    let M = targets.count
    precondition(dLogp.count == M && dHidden.count == M * C, "logSoftmaxGatherBackward: shapes disagree")
    if let numerators, let weightBF16 {
        precondition(
            numerators.rows == M && numerators.vocabSize == V, "softmax numerators of another forward")
        keptSoftmaxBackward(
            dHidden: dHidden, dWeight: dWeight, dLogp: dLogp, hidden: hidden, weight: weightBF16,
            targets: targets, lse: lse, temperature: temperature, numerators: numerators)
        return
    }
    let chunkRows = chunkRows ?? logitChunkRows(vocabSize: V)
    let sp = lse.pointer
    LogitScratch.shared.withBuffer(count: min(chunkRows, max(M, 1)) * V) { zp in
        let inverseT = 1 / temperature
        var start = 0
        while start < M {
            let R = min(chunkRows, M - start)
            let h = hidden.pointer + start * C
            chunkLogits(zp, h, rows: R, weight: weight, weightBF16: weightBF16)
            parallelFor(R) { rows in
                for r in rows {
                    let z = zp + r * V
                    let g = dLogp[start + r] * inverseT
                    softmaxRowScaled(z, count: V, scale: inverseT, shift: sp[start + r], multiplier: -g)
                    z[Int(targets[start + r])] += g
                }
            }
            if let weightBF16 {
                precondition(
                    weightBF16.rowMajor != nil, "logSoftmaxGatherBackward: dHidden needs the row-major weight"
                )
                BFloat16Scratch.shared.withBuffers { scratch in
                    let dz = scratch.converted(0, zp, count: R * V)
                    BFloat16Matmul.gemm(
                        transA: false, transB: false, m: R, n: C, k: V, a: dz,
                        b: weightBF16.rowMajor!.pointer,
                        accumulate: false, c: dHidden.pointer + start * C)
                    if let dWeight {
                        let hb = scratch.converted(1, h, count: R * C)
                        BFloat16Matmul.gemm(
                            transA: true, transB: false, m: V, n: C, k: R, a: dz, b: hb, accumulate: true,
                            c: dWeight.pointer)
                    }
                }
            } else {
                BLAS.sgemm(
                    transA: false, transB: false, m: R, n: C, k: V, a: zp, lda: V, b: weight.pointer, ldb: C,
                    c: dHidden.pointer + start * C, ldc: C)
                if let dWeight {
                    BLAS.sgemm(
                        transA: true, transB: false, m: V, n: C, k: R, a: zp, lda: V, b: h, ldb: C, beta: 1,
                        c: dWeight.pointer, ldc: C)
                }
            }
            start += R
        }
    }
}

/// The backward from kept numerators E (M, V).
///
/// With p = E / total per row, dz = diag(s) E + g onehot(target), s = -g / total, g = dlogp / τ:
/// dHidden = diag(s) (E W) + g W[target]; dWeight += Eᵀ (diag(s) h) + g h at each target's row.
/// Two matmuls on E as kept, no pass over the vocabulary.
private func keptSoftmaxBackward(
    dHidden: Tensor, dWeight: Tensor?, dLogp: [Float], hidden: Tensor, weight: BFloat16Weight,
    targets: [Int32], lse: Tensor, temperature: Float, numerators: SoftmaxNumerators
) {
    let (M, V, C) = (targets.count, weight.outputs, weight.inputs)
    guard M > 0 else { return }
    precondition(weight.rowMajor != nil, "logSoftmaxGatherBackward: dHidden needs the row-major weight")
    let w = weight.rowMajor!.pointer
    let g = dLogp.map { $0 / temperature }
    // s_r = -g_r / total_r, with total_r = exp(lse_r - max_r).
    let s = (0..<M).map { -g[$0] * Foundation.exp(numerators.maxima[$0] - lse.pointer[$0]) }
    let (dh, h) = (dHidden.pointer, hidden.pointer)
    BFloat16Scratch.shared.withBuffers { scratch in
        BFloat16Matmul.gemm(
            transA: false, transB: false, m: M, n: C, k: V, a: numerators.pointer, b: w, accumulate: false,
            c: dh)
        parallelFor(M, minimumPerTask: 16) { rows in
            for r in rows {
                let (row, target) = (dh + r * C, w + Int(targets[r]) * C)
                for c in 0..<C { row[c] = s[r] * row[c] + g[r] * BFloat16.float(target[c]) }
            }
        }
        guard let dWeight else { return }
        let scaled = scratch.buffer(1, count: M * C)
        parallelFor(M, minimumPerTask: 16) { rows in
            for r in rows {
                for c in 0..<C { scaled[r * C + c] = BFloat16.bits(s[r] * h[r * C + c]) }
            }
        }
        BFloat16Matmul.gemm(
            transA: true, transB: false, m: V, n: C, k: M, a: numerators.pointer, b: scaled, accumulate: true,
            c: dWeight.pointer)
        let dw = dWeight.pointer
        for r in 0..<M { axpy(C, g[r], h + r * C, dw + Int(targets[r]) * C) }
    }
}

/// z (R, V) = h (R, C) Wᵀ, in bf16 operands when `weightBF16` is given.
private func chunkLogits(
    _ z: UnsafeMutablePointer<Float>, _ h: UnsafePointer<Float>, rows R: Int, weight: Tensor,
    weightBF16: BFloat16Weight?
) {
    let (V, C) = (weight.shape[0], weight.shape[1])
    guard let weightBF16 else {
        BLAS.sgemm(
            transA: false, transB: true, m: R, n: V, k: C, a: h, lda: C, b: weight.pointer, ldb: C, c: z,
            ldc: V)
        return
    }
    BFloat16Scratch.shared.withBuffers { scratch in
        let hb = scratch.converted(0, h, count: R * C)
        BFloat16Matmul.forward(m: R, x: hb, weight: weightBF16, y: z, scratch: scratch)
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
