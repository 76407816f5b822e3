import Foundation

// Legend: N packed tokens, T one sequence's length, H query heads, K key/value heads, D head dim.
// qkv rows are [q (H*D) | k (K*D) | v (K*D)], as q_proj, k_proj and v_proj run as one matmul.

/// Variable-length sequences packed back to back with no padding.
public struct PackedSequences: Equatable, Sendable {
    public let lengths: [Int]
    /// offsets[s] is the first row of sequence s; offsets.last is the total token count.
    public let offsets: [Int]
    /// The position of each packed token within its own sequence: (N).
    public let positions: [Int32]

    public init(lengths: [Int]) {
        precondition(lengths.allSatisfy { $0 > 0 }, "every packed sequence needs at least one token")
        self.lengths = lengths
        var offsets = [0]
        for length in lengths { offsets.append(offsets.last! + length) }
        self.offsets = offsets
        positions = lengths.flatMap { (0..<$0).map(Int32.init) }
    }

    public var tokenCount: Int { offsets.last! }
    public var maxLength: Int { lengths.max() ?? 0 }
}

/// Head counts of grouped-query attention: query head h reads key/value head h / (H / K).
public struct AttentionHeads: Equatable, Sendable {
    public let queryHeads: Int
    public let keyValueHeads: Int
    public let headDim: Int

    public init(queryHeads: Int, keyValueHeads: Int, headDim: Int) {
        precondition(
            queryHeads % keyValueHeads == 0, "\(queryHeads) query heads not divisible by \(keyValueHeads)")
        self.queryHeads = queryHeads
        self.keyValueHeads = keyValueHeads
        self.headDim = headDim
    }

    public var qkvWidth: Int { (queryHeads + 2 * keyValueHeads) * headDim }
    public var outputWidth: Int { queryHeads * headDim }
    var group: Int { queryHeads / keyValueHeads }
}

/// Causal softmax attention over packed sequences: out_h = softmax(scale q_h kᵀ + causal mask) v.
///
/// qkv: (N, (H+2K)D) after RoPE -> out: (N, H*D); saves lse: (N, H), the log-sum-exp of each
/// score row, so backward recomputes the probabilities instead of storing T² per head.
public func attentionForward(
    out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences, heads: AttentionHeads, scale: Float
) {
    let (H, D, ld) = (heads.queryHeads, heads.headDim, heads.qkvWidth)
    precondition(qkv.count == sequences.tokenCount * ld && out.count == sequences.tokenCount * H * D)
    let scores = Tensor(zeros: [min(attentionBlockRows, sequences.maxLength) * sequences.maxLength])
    let (sp, qp, op, lp) = (scores.pointer, qkv.pointer, out.pointer, lse.pointer)
    for (s, T) in sequences.lengths.enumerated() {
        let start = sequences.offsets[s]
        for h in 0..<H {
            let g = h / heads.group
            let k = qp + start * ld + (H + g) * D
            let v = qp + start * ld + (H + heads.keyValueHeads + g) * D
            for i0 in stride(from: 0, to: T, by: attentionBlockRows) {
                // Query rows i0..<i0+R see keys 0..<i0+R only (causal), so the rest is never computed.
                let (R, keys) = (min(attentionBlockRows, T - i0), min(T, i0 + attentionBlockRows))
                let q = qp + (start + i0) * ld + h * D
                BLAS.sgemm(
                    transA: false, transB: true, m: R, n: keys, k: D, alpha: scale, a: q, lda: ld, b: k,
                    ldb: ld,
                    c: sp, ldc: keys)
                parallelFor(R, minimumPerTask: 32) { rows in
                    for r in rows {
                        let (row, visible) = (sp + r * keys, i0 + r + 1)
                        let m = rowMax(row, visible)
                        let total = sumExp(row, visible, scale: 1, shift: m)
                        softmaxRow(row, count: visible, shift: m, multiplier: 1 / total)
                        (row + visible).update(repeating: 0, count: keys - visible)
                        lp[(start + i0 + r) * H + h] = m + Foundation.log(total)
                    }
                }
                BLAS.sgemm(
                    transA: false, transB: false, m: R, n: D, k: keys, a: sp, lda: keys, b: v, ldb: ld,
                    c: op + (start + i0) * H * D + h * D, ldc: H * D)
            }
        }
    }
}

/// Query rows per causal block: each block multiplies only against the keys it can see, which
/// skips ~3/8 of the score matrix at 512 tokens while keeping the matmuls tall enough to run fast.
let attentionBlockRows = 128

/// Backward of `attentionForward`.
///
/// With P recomputed from lse and δ_i = Σ_d dO_id O_id:
/// dS = P ⊙ (dO vᵀ - δ), dq = scale dS k, dk += scale dSᵀ q, dv += Pᵀ dO.
/// dOut: (N, H*D) -> dQKV: (N, (H+2K)D), overwritten.
public func attentionBackward(
    dQKV: Tensor, dOut: Tensor, out: Tensor, lse: Tensor, qkv: Tensor,
    sequences: PackedSequences, heads: AttentionHeads, scale: Float
) {
    let (H, KV, D, ld) = (heads.queryHeads, heads.keyValueHeads, heads.headDim, heads.qkvWidth)
    let N = sequences.tokenCount
    dQKV.zero()
    let blockSize = min(attentionBlockRows, sequences.maxLength) * sequences.maxLength
    let probs = Tensor(zeros: [blockSize])
    let dScores = Tensor(zeros: [blockSize])
    let delta = Tensor(zeros: [N * H])
    let (pp, dsp, qp, dqp, op, dop, lp, dp) = (
        probs.pointer, dScores.pointer, qkv.pointer, dQKV.pointer, out.pointer, dOut.pointer, lse.pointer,
        delta.pointer
    )
    parallelFor(N * H, minimumPerTask: 256) { range in
        for r in range {
            var sum: Float = 0
            for d in 0..<D { sum += dop[r * D + d] * op[r * D + d] }
            dp[r] = sum
        }
    }
    for (s, T) in sequences.lengths.enumerated() {
        let start = sequences.offsets[s]
        for h in 0..<H {
            let g = h / heads.group
            let k = qp + start * ld + (H + g) * D
            let v = qp + start * ld + (H + KV + g) * D
            for i0 in stride(from: 0, to: T, by: attentionBlockRows) {
                let (R, keys) = (min(attentionBlockRows, T - i0), min(T, i0 + attentionBlockRows))
                let q = qp + (start + i0) * ld + h * D
                let dO = dop + (start + i0) * H * D + h * D
                BLAS.sgemm(
                    transA: false, transB: true, m: R, n: keys, k: D, alpha: scale, a: q, lda: ld, b: k,
                    ldb: ld,
                    c: pp, ldc: keys)
                BLAS.sgemm(
                    transA: false, transB: true, m: R, n: keys, k: D, a: dO, lda: H * D, b: v, ldb: ld,
                    c: dsp, ldc: keys)
                parallelFor(R, minimumPerTask: 32) { rows in
                    for r in rows {
                        let (p, ds, visible) = (pp + r * keys, dsp + r * keys, i0 + r + 1)
                        softmaxRow(p, count: visible, shift: lp[(start + i0 + r) * H + h], multiplier: 1)
                        let di = dp[(start + i0 + r) * H + h]
                        for j in 0..<visible { ds[j] = p[j] * (ds[j] - di) }
                        (p + visible).update(repeating: 0, count: keys - visible)
                        (ds + visible).update(repeating: 0, count: keys - visible)
                    }
                }
                BLAS.sgemm(
                    transA: false, transB: false, m: R, n: D, k: keys, alpha: scale, a: dsp, lda: keys, b: k,
                    ldb: ld, c: dqp + (start + i0) * ld + h * D, ldc: ld)
                BLAS.sgemm(
                    transA: true, transB: false, m: keys, n: D, k: R, alpha: scale, a: dsp, lda: keys, b: q,
                    ldb: ld, beta: 1, c: dqp + start * ld + (H + g) * D, ldc: ld)
                BLAS.sgemm(
                    transA: true, transB: false, m: keys, n: D, k: R, a: pp, lda: keys, b: dO, ldb: H * D,
                    beta: 1, c: dqp + start * ld + (H + KV + g) * D, ldc: ld)
            }
        }
    }
}

/// row[j] = exp(row[j] - shift) * multiplier for j < count.
@inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int, shift: Float, multiplier: Float) {
    var j = 0
    while j + 16 <= count {
        row.storeSIMD16(simdExp(row.loadSIMD16(at: j) - shift) * multiplier, at: j)
        j += 16
    }
    while j < count {
        row[j] = fastExp(row[j] - shift) * multiplier
        j += 1
    }
}

/// One new token per sequence attending to its cached keys and values (the decode step).
///
/// q: (B, H*D) for B sequences (rows `qRowStride` apart, so q can be read in place from qkv rows);
/// keys[b], values[b]: (L_b, K*D) rows of cache, where the new
/// token's own key and value are already appended -> out: (B, H*D).
public func attentionDecode(
    out: Tensor, q: Tensor, keys: [Tensor], values: [Tensor], lengths: [Int], heads: AttentionHeads,
    scale: Float, qRowStride: Int? = nil
) {
    let (H, KV, D) = (heads.queryHeads, heads.keyValueHeads, heads.headDim)
    let B = lengths.count
    let (op, qp) = (out.pointer, q.pointer)
    let qStride = qRowStride ?? H * D
    let keyPointers = keys.map { UnsafePointer($0.pointer) }
    let valuePointers = values.map { UnsafePointer($0.pointer) }
    let maxL = lengths.max() ?? 0
    let group = heads.group
    // Tasks are (sequence, key/value head) pairs, so each cached K/V row is read once for all the
    // query heads of its group.
    let scratch = Tensor(zeros: [coreCount, group * maxL])
    let tasks = min(coreCount, B * KV)
    parallelTasks(tasks) { t in
        let scores = scratch.pointer + t * group * maxL
        for bg in (B * KV * t / tasks)..<(B * KV * (t + 1) / tasks) {
            let (b, g) = (bg / KV, bg % KV)
            let L = lengths[b]
            let (kc, vc) = (keyPointers[b] + g * D, valuePointers[b] + g * D)
            let q0 = qp + b * qStride + g * group * D
            for j in 0..<L {
                let key = kc + j * KV * D
                for r in 0..<group { scores[r * maxL + j] = dotProduct(q0 + r * D, key, D) * scale }
            }
            for r in 0..<group {
                let row = scores + r * maxL
                let m = rowMax(row, L)
                let total = sumExp(row, L, scale: 1, shift: m)
                softmaxRow(row, count: L, shift: m, multiplier: 1 / total)
                (op + b * H * D + (g * group + r) * D).update(repeating: 0, count: D)
            }
            for j in 0..<L {
                let value = vc + j * KV * D
                for r in 0..<group {
                    axpy(D, scores[r * maxL + j], value, op + b * H * D + (g * group + r) * D)
                }
            }
        }
    }
}

/// Σ a[i] b[i] over n values, in 16-wide vectors (a float reduction is not auto-vectorised).
@inline(__always)
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var sum = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= n {
        sum += a.loadSIMD16(at: i) * b.loadSIMD16(at: i)
        i += 16
    }
    var result = sum.sum()
    while i < n {
        result += a[i] * b[i]
        i += 1
    }
    return result
}
