import Foundation

// Legend: N packed tokens, T one sequence's length, H query heads, K key/value heads, D head dim.
// qkv rows are [q (H*D) | k (K*D) | v (K*D)], as q_proj, k_proj and v_proj run as one matmul.

/// Variable-length sequences packed back to back with no padding.
///
/// A sequence may continue another one, its parent (a prompt shared by a group of completions):
/// the parent's tokens are packed once, and each continuation attends to all of them before its
/// own, with positions counting on from the parent's length. A parent has no parent itself and
/// comes before its continuations.
public struct PackedSequences: Equatable, Sendable {
    public let lengths: [Int]
    /// offsets[s] is the first row of sequence s; offsets.last is the total token count.
    public let offsets: [Int]
    /// The position of each packed token within its own context (parent included): (N).
    public let positions: [Int32]
    /// parents[s]: the sequence whose tokens precede sequence s's own, or nil.
    public let parents: [Int?]
    /// Each sequence without a parent, followed by the sequences that continue it.
    public let families: [[Int]]

    public init(lengths: [Int], parents: [Int?]? = nil) {
        precondition(lengths.allSatisfy { $0 > 0 }, "every packed sequence needs at least one token")
        let parents = parents ?? lengths.map { _ in nil }
        precondition(parents.count == lengths.count, "one parent entry per sequence")
        self.lengths = lengths
        self.parents = parents
        var offsets = [0]
        for length in lengths { offsets.append(offsets.last! + length) }
        self.offsets = offsets
        var families: [[Int]] = []
        var familyOf: [Int: Int] = [:]
        for (s, parent) in parents.enumerated() {
            if let parent {
                precondition(
                    parent < s && parents[parent] == nil,
                    "sequence \(s)'s parent \(parent) must come before it and have no parent")
                families[familyOf[parent]!].append(s)
            } else {
                familyOf[s] = families.count
                families.append([s])
            }
        }
        self.families = families
        positions = lengths.indices.flatMap { s in
            let prefix = parents[s].map { lengths[$0] } ?? 0
            return (prefix..<(prefix + lengths[s])).map(Int32.init)
        }
    }

    public var tokenCount: Int { offsets.last! }
    /// The longest context (parent plus own tokens) of any sequence.
    public var maxLength: Int {
        lengths.indices.map { lengths[$0] + prefixLength($0) }.max() ?? 0
    }

    /// The number of tokens sequence s attends to before its own: its parent's length, or 0.
    public func prefixLength(_ s: Int) -> Int { parents[s].map { lengths[$0] } ?? 0 }
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
/// score row, so backward recomputes the probabilities instead of storing T² per head. A sequence
/// with a parent attends to all of the parent's keys, then causally to its own.
///
/// The work is split into (sequence, query head) units, dealt to the cores by their cost (see
/// `AttentionLayout.plan`). With at least one unit per core, each runs on one core with
/// single-threaded matmuls (short sequences: one small matmul per unit is cheaper than a threaded
/// one); with fewer, units run one after another and each matmul uses every core.
public func attentionForward(
    out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences, heads: AttentionHeads, scale: Float,
    bf16: Bool = false
) {
    let (H, D, ld) = (heads.queryHeads, heads.headDim, heads.qkvWidth)
    precondition(qkv.count == sequences.tokenCount * ld && out.count == sequences.tokenCount * H * D)
    #if !canImport(Accelerate)
        if bf16 && BFloat16Matmul.isAvailable
            && batchedAttentionForward(
                out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads, scale: scale)
        {
            return
        }
    #endif
    let layout = AttentionLayout(sequences: sequences, heads: heads)
    let plan = layout.plan()
    // Each core's scores, then the reciprocals of its block's row sums.
    let perCore = layout.scoreCount + layout.blockRows
    let scratch = Tensor(zeros: [plan.count * perCore])
    let (qp, op, lp) = (UnsafePointer(qkv.pointer), out.pointer, lse.pointer)
    parallelTasks(plan.count) { w in
        let sp = scratch.pointer + w * perCore
        let inverses = sp + layout.scoreCount
        for (s, h) in plan[w] {
            for block in layout.blocks(s) {
                let row0 = block.start + block.first
                let o = op + row0 * H * D + h * D
                layout.products(
                    block, a: qp + row0 * ld + h * D, lda: ld, alpha: scale, rightColumn: layout.keyColumn(h),
                    qkv: qp, into: sp)
                // Unnormalised exp(score - max) in place; the output rows are divided by their
                // sums after the weighted sum (D values a row instead of the row's width).
                forRows(block.rows, threaded: plan.count == 1) { rows in
                    for r in rows {
                        let (row, visible) = (sp + r * block.width, block.visible(r))
                        let m = rowMax(row, visible)
                        let total = exponentiate(row, visible, shift: m)
                        (row + visible).update(repeating: 0, count: block.width - visible)
                        inverses[r] = 1 / total
                        lp[(row0 + r) * H + h] = m + Foundation.log(total)
                    }
                }
                layout.weightedSum(
                    block, probabilities: sp, valueColumn: layout.valueColumn(h), qkv: qp, into: o, ldc: H * D
                )
                for r in 0..<block.rows { scaleRow(o + r * H * D, D, by: inverses[r]) }
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
/// dOut: (N, H*D) -> dQKV: (N, (H+2K)D), overwritten. Units are (sequence, query head) pairs as
/// forward's. A unit's dq rows are its own; dk and dv gather from every query head of a group and
/// every sequence continuing a parent, so the first core adds them into dQKV and each other core
/// into a (N, 2KD) buffer of its own, summed in at the end.
public func attentionBackward(
    dQKV: Tensor, dOut: Tensor, out: Tensor, lse: Tensor, qkv: Tensor,
    sequences: PackedSequences, heads: AttentionHeads, scale: Float, bf16: Bool = false
) {
    #if !canImport(Accelerate)
        if bf16 && BFloat16Matmul.isAvailable
            && batchedAttentionBackward(
                dQKV: dQKV, dOut: dOut, out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads,
                scale: scale)
        {
            return
        }
    #endif
    let (H, KV, D, ld) = (heads.queryHeads, heads.keyValueHeads, heads.headDim, heads.qkvWidth)
    let N = sequences.tokenCount
    dQKV.zero()
    let layout = AttentionLayout(sequences: sequences, heads: heads)
    let plan = layout.plan()
    let scratch = Tensor(zeros: [plan.count * 2 * layout.scoreCount])
    let (kvWidth, kvColumn) = (2 * KV * D, H * D)
    let partials = Tensor(zeros: [max(plan.count - 1, 0) * N * kvWidth])
    let delta = rowDeltas(dOut: dOut, out: out, rows: N * H, headDim: D)
    let (qp, dqp, dop, lp, dp) = (
        UnsafePointer(qkv.pointer), dQKV.pointer, UnsafePointer(dOut.pointer), lse.pointer, delta.pointer
    )
    parallelTasks(plan.count) { w in
        let pp = scratch.pointer + w * 2 * layout.scoreCount
        let dsp = pp + layout.scoreCount
        // Where this core's dk and dv go: dQKV itself, or its own buffer.
        let (dkv, ldkv, base) =
            w == 0 ? (dqp, ld, 0) : (partials.pointer + (w - 1) * N * kvWidth, kvWidth, kvColumn)
        for (s, h) in plan[w] {
            for block in layout.blocks(s) {
                let row0 = block.start + block.first
                let (q, dO) = (qp + row0 * ld + h * D, dop + row0 * H * D + h * D)
                layout.products(
                    block, a: q, lda: ld, alpha: scale, rightColumn: layout.keyColumn(h), qkv: qp, into: pp)
                layout.products(
                    block, a: dO, lda: H * D, alpha: 1, rightColumn: layout.valueColumn(h), qkv: qp, into: dsp
                )
                forRows(block.rows, threaded: plan.count == 1) { rows in
                    for r in rows {
                        let (p, ds, visible) = (pp + r * block.width, dsp + r * block.width, block.visible(r))
                        softmaxRow(p, count: visible, shift: lp[(row0 + r) * H + h], multiplier: 1)
                        let di = dp[(row0 + r) * H + h]
                        for j in 0..<visible { ds[j] = p[j] * (ds[j] - di) }
                        (p + visible).update(repeating: 0, count: block.width - visible)
                        (ds + visible).update(repeating: 0, count: block.width - visible)
                    }
                }
                // dq = scale dS k, over the parent's keys and the sequence's own.
                layout.weightedSum(
                    block, probabilities: dsp, valueColumn: layout.keyColumn(h), qkv: qp,
                    into: dqp + row0 * ld + h * D, ldc: ld, alpha: scale)
                // dk += scale dSᵀ q and dv += Pᵀ dO, for the parent's rows and the own ones.
                layout.transposedProducts(
                    block, left: dsp, b: q, ldb: ld, alpha: scale, column: layout.keyColumn(h) - base,
                    into: dkv, ldc: ldkv)
                layout.transposedProducts(
                    block, left: pp, b: dO, ldb: H * D, alpha: 1, column: layout.valueColumn(h) - base,
                    into: dkv, ldc: ldkv)
            }
        }
    }
    guard plan.count > 1 else { return }
    let pp = UnsafePointer(partials.pointer)
    parallelFor(N, minimumPerTask: 64) { rows in
        for r in rows {
            for w in 0..<(plan.count - 1) {
                let partial = pp + (w * N + r) * kvWidth
                for c in 0..<kvWidth { dqp[r * ld + kvColumn + c] += partial[c] }
            }
        }
    }
}

/// δ of attention's backward, one per (token, query head): Σ_d dO_d O_d over each head's D values.
func rowDeltas(dOut: Tensor, out: Tensor, rows: Int, headDim D: Int) -> Tensor {
    let delta = Tensor(zeros: [rows])
    let (dop, op, dp) = (UnsafePointer(dOut.pointer), UnsafePointer(out.pointer), delta.pointer)
    parallelFor(rows, minimumPerTask: 256) { range in
        for r in range { dp[r] = dotProduct(dop + r * D, op + r * D, D) }
    }
    return delta
}

/// row[0..<n] *= alpha.
@inline(__always)
private func scaleRow(_ row: UnsafeMutablePointer<Float>, _ n: Int, by alpha: Float) {
    var j = 0
    while j + 16 <= n {
        row.storeSIMD16(row.loadSIMD16(at: j) * alpha, at: j)
        j += 16
    }
    while j < n {
        row[j] *= alpha
        j += 1
    }
}

/// `body` over 0..<count, split across the cores when `threaded`, else on the calling thread.
@inline(__always)
private func forRows(_ count: Int, threaded: Bool, _ body: (Range<Int>) -> Void) {
    if threaded { parallelFor(count, minimumPerTask: 32, body) } else { body(0..<count) }
}

/// A block of query rows of one sequence and the keys it sees: the parent's, then its own.
private struct AttentionBlock {
    /// The sequence's first packed row, and its parent's (equal to `start` without a parent).
    let start: Int
    let parentStart: Int
    /// The block's first row within its sequence, and its row count.
    let first: Int
    let rows: Int
    /// Parent keys, then own keys up to the block's last row: the score matrix is (rows, width).
    let prefix: Int
    let own: Int
    var width: Int { prefix + own }
    /// Keys row r of the block sees (causal).
    func visible(_ r: Int) -> Int { prefix + first + r + 1 }
}

/// Where attention's blocks, keys and values sit in the packed qkv rows.
private struct AttentionLayout {
    let sequences: PackedSequences
    let heads: AttentionHeads
    let blockRows: Int
    /// Floats of one (rows, width) score matrix, the largest any block needs.
    let scoreCount: Int

    init(sequences: PackedSequences, heads: AttentionHeads) {
        self.sequences = sequences
        self.heads = heads
        blockRows = min(attentionBlockRows, sequences.lengths.max() ?? 0)
        scoreCount = blockRows * sequences.maxLength
    }

    func keyColumn(_ h: Int) -> Int { (heads.queryHeads + h / heads.group) * heads.headDim }
    func valueColumn(_ h: Int) -> Int {
        (heads.queryHeads + heads.keyValueHeads + h / heads.group) * heads.headDim
    }

    /// The (sequence, query head) units of each core: with at least one unit per core, the units
    /// dealt longest first to the least-loaded core (cost: the score entries of its blocks), a
    /// fixed split, so sums come out the same from run to run; with fewer, one list for one core.
    func plan() -> [[(sequence: Int, head: Int)]] {
        let H = heads.queryHeads
        let units = sequences.lengths.indices.flatMap { s in (0..<H).map { (sequence: s, head: $0) } }
        guard units.count >= coreCount else { return [units] }
        let cost = sequences.lengths.indices.map { s in blocks(s).reduce(0) { $0 + $1.rows * $1.width } }
        let order = units.indices.sorted { cost[units[$0].sequence] > cost[units[$1].sequence] }
        var plan = [[(sequence: Int, head: Int)]](repeating: [], count: coreCount)
        var load = [Int](repeating: 0, count: coreCount)
        for u in order {
            let w = load.indices.min { load[$0] < load[$1] }!
            plan[w].append(units[u])
            load[w] += cost[units[u].sequence]
        }
        return plan
    }

    func blocks(_ s: Int) -> [AttentionBlock] {
        let (start, T) = (sequences.offsets[s], sequences.lengths[s])
        let parentStart = sequences.parents[s].map { sequences.offsets[$0] } ?? start
        return stride(from: 0, to: T, by: blockRows).map { i0 in
            AttentionBlock(
                start: start, parentStart: parentStart, first: i0, rows: min(blockRows, T - i0),
                prefix: sequences.prefixLength(s), own: min(T, i0 + blockRows))
        }
    }

    /// scores (rows, width) = alpha a [parent rows; own rows]ᵀ, reading D columns at `rightColumn`.
    func products(
        _ b: AttentionBlock, a: UnsafePointer<Float>, lda: Int, alpha: Float, rightColumn: Int,
        qkv: UnsafePointer<Float>, into scores: UnsafeMutablePointer<Float>
    ) {
        let (D, ld) = (heads.headDim, heads.qkvWidth)
        if b.prefix > 0 {
            BLAS.sgemm(
                transA: false, transB: true, m: b.rows, n: b.prefix, k: D, alpha: alpha, a: a, lda: lda,
                b: qkv + b.parentStart * ld + rightColumn, ldb: ld, c: scores, ldc: b.width)
        }
        BLAS.sgemm(
            transA: false, transB: true, m: b.rows, n: b.own, k: D, alpha: alpha, a: a, lda: lda,
            b: qkv + b.start * ld + rightColumn, ldb: ld, c: scores + b.prefix, ldc: b.width)
    }

    /// c (rows, D) = alpha probabilities (rows, width) [parent rows; own rows] at `valueColumn`.
    func weightedSum(
        _ b: AttentionBlock, probabilities: UnsafePointer<Float>, valueColumn: Int, qkv: UnsafePointer<Float>,
        into c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1
    ) {
        let (D, ld) = (heads.headDim, heads.qkvWidth)
        BLAS.sgemm(
            transA: false, transB: false, m: b.rows, n: D, k: b.own, alpha: alpha,
            a: probabilities + b.prefix,
            lda: b.width, b: qkv + b.start * ld + valueColumn, ldb: ld, c: c, ldc: ldc)
        if b.prefix > 0 {
            BLAS.sgemm(
                transA: false, transB: false, m: b.rows, n: D, k: b.prefix, alpha: alpha, a: probabilities,
                lda: b.width, b: qkv + b.parentStart * ld + valueColumn, ldb: ld, beta: 1, c: c, ldc: ldc)
        }
    }

    /// [parent rows; own rows] of `into` (rows `ld` apart) at `column` += alpha leftᵀ (width, rows)
    /// b (rows, D).
    func transposedProducts(
        _ blk: AttentionBlock, left: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int, alpha: Float,
        column: Int, into c: UnsafeMutablePointer<Float>, ldc ld: Int
    ) {
        let D = heads.headDim
        BLAS.sgemm(
            transA: true, transB: false, m: blk.own, n: D, k: blk.rows, alpha: alpha, a: left + blk.prefix,
            lda: blk.width, b: b, ldb: ldb, beta: 1, c: c + blk.start * ld + column, ldc: ld)
        if blk.prefix > 0 {
            BLAS.sgemm(
                transA: true, transB: false, m: blk.prefix, n: D, k: blk.rows, alpha: alpha, a: left,
                lda: blk.width, b: b, ldb: ldb, beta: 1, c: c + blk.parentStart * ld + column, ldc: ld)
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

/// Σ a[i] b[i] over n values, in 16-wide vectors (a float reduction is not auto-vectorised).
@inline(__always)
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    // Two running sums, so consecutive adds do not wait on each other.
    var (even, odd) = (SIMD16<Float>(repeating: 0), SIMD16<Float>(repeating: 0))
    var i = 0
    while i + 32 <= n {
        even += a.loadSIMD16(at: i) * b.loadSIMD16(at: i)
        odd += a.loadSIMD16(at: i + 16) * b.loadSIMD16(at: i + 16)
        i += 32
    }
    if i + 16 <= n {
        even += a.loadSIMD16(at: i) * b.loadSIMD16(at: i)
        i += 16
    }
    var result = horizontalSum(even + odd)
    while i < n {
        result += a[i] * b[i]
        i += 1
    }
    return result
}
