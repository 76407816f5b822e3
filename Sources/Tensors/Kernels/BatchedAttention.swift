#if !canImport(Accelerate)
    import Foundation

    // Training attention as batched matmuls: every (sequence, 128-row causal block, key/value
    // head) of a packed batch is one entry; entries of the same padded shape run as one batched
    // oneDNN product per step of the algorithm (one call on both cores instead of thousands of
    // small single-core ones), with float32 or bf16 operands. Legend as in Attention.swift, plus
    // g = H / K query heads per key/value head, R a block's padded rows, W its padded keys.

    /// One causal block of one sequence: `rows` query rows from `first`, seeing the parent's
    /// `prefix` keys and its own first `own` keys.
    private struct BlockUnit {
        let sequence: Int
        let first: Int
        let rows: Int
        let prefix: Int
        let own: Int
    }

    /// Blocks padded to the same (R, W), run together.
    private struct BlockGroup {
        let rows: Int
        let width: Int
        var units: [BlockUnit]
    }

    /// Operands of the batched products: float32 as they are, or bf16 bit patterns.
    private protocol AttentionOperand {
        static var isBF16: Bool { get }
        static var zero: Self { get }
        static func from(_ x: Float) -> Self
    }

    extension Float: AttentionOperand {
        static var isBF16: Bool { false }
        static func from(_ x: Float) -> Float { x }
    }

    extension UInt16: AttentionOperand {
        static var isBF16: Bool { true }
        static func from(_ x: Float) -> UInt16 { BFloat16.bits(x) }
    }

    /// The batched products' operand buffers, kept between calls.
    ///
    /// Fresh pages for megabytes of scores each call cost more than the products. 64-byte
    /// aligned, grown as needed, each written before it is read; calls hold `lock`.
    final class AttentionScratch: @unchecked Sendable {
        static let shared = AttentionScratch()
        let lock = NSLock()
        private var buffers: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []

        var bytes: Int {
            lock.lock()
            defer { lock.unlock() }
            return buffers.reduce(0) { $0 + $1.bytes }
        }

        /// Slot `slot` as `count` elements of E (the caller holds `lock`).
        fileprivate func buffer<E>(_ slot: Int, _: E.Type, _ count: Int) -> UnsafeMutablePointer<E> {
            let needed = max(count, 1) * MemoryLayout<E>.stride
            while buffers.count <= slot {
                buffers.append((UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64), 64))
            }
            if buffers[slot].bytes < needed {
                buffers[slot].pointer.deallocate()
                buffers[slot] = (UnsafeMutableRawPointer.allocate(byteCount: needed, alignment: 64), needed)
            }
            return buffers[slot].pointer.bindMemory(to: E.self, capacity: max(count, 1))
        }
    }

    /// Bytes of float32 scores one chunk of a group may take; bigger groups run in chunks.
    private let batchedScoreBudget = 32 << 20

    private struct BatchedLayout {
        let sequences: PackedSequences
        let heads: AttentionHeads
        let groups: [BlockGroup]

        init(sequences: PackedSequences, heads: AttentionHeads) {
            self.sequences = sequences
            self.heads = heads
            var byShape: [Int: BlockGroup] = [:]
            var order: [Int] = []
            for s in sequences.lengths.indices {
                let (T, prefix) = (sequences.lengths[s], sequences.prefixLength(s))
                for first in stride(from: 0, to: T, by: attentionBlockRows) {
                    let unit = BlockUnit(
                        sequence: s, first: first, rows: min(attentionBlockRows, T - first), prefix: prefix,
                        own: min(T, first + attentionBlockRows))
                    let (R, W) = (
                        Self.padded(unit.rows, 16),
                        Self.padded(prefix + unit.own, prefix + unit.own <= 256 ? 16 : 64)
                    )
                    let key = R << 32 | W
                    if byShape[key] == nil {
                        byShape[key] = BlockGroup(rows: R, width: W, units: [])
                        order.append(key)
                    }
                    byShape[key]!.units.append(unit)
                }
            }
            // Chunks small enough for the score budget, in a fixed order.
            var groups: [BlockGroup] = []
            for key in order {
                let group = byShape[key]!
                let perUnit = heads.keyValueHeads * heads.group * group.rows * group.width * 4
                let size = max(1, batchedScoreBudget / perUnit)
                for start in stride(from: 0, to: group.units.count, by: size) {
                    let units = Array(group.units[start..<min(group.units.count, start + size)])
                    groups.append(BlockGroup(rows: group.rows, width: group.width, units: units))
                }
            }
            self.groups = groups
        }

        static func padded(_ n: Int, _ step: Int) -> Int { (n + step - 1) / step * step }

        /// The largest group's entries, and its (g R, W) and (W, D) matrix sizes.
        var largest: (entries: Int, scores: Int, keys: Int, queries: Int) {
            let (KV, g, D) = (heads.keyValueHeads, heads.group, heads.headDim)
            var result = (entries: 0, scores: 0, keys: 0, queries: 0)
            for group in groups {
                let entries = group.units.count * KV
                result.entries = max(result.entries, entries)
                result.scores = max(result.scores, entries * g * group.rows * group.width)
                result.keys = max(result.keys, entries * group.width * D)
                result.queries = max(result.queries, entries * g * group.rows * D)
            }
            return result
        }

        /// Copies entry (unit, kv)'s query rows (g heads, R rows each, times `multiplier`) into
        /// `q` (g R, D), zero past the block's rows; `source` rows `ld` apart, head h at h D.
        func gatherQueries<E: AttentionOperand>(
            _ unit: BlockUnit, kv: Int, rows R: Int, source: UnsafePointer<Float>, ld: Int, multiplier: Float,
            into q: UnsafeMutablePointer<E>
        ) {
            let (g, D, start) = (heads.group, heads.headDim, sequences.offsets[unit.sequence] + unit.first)
            for j in 0..<g {
                for r in 0..<R {
                    let row = q + (j * R + r) * D
                    if r < unit.rows {
                        let from = source + (start + r) * ld + (kv * g + j) * D
                        for d in 0..<D { row[d] = E.from(from[d] * multiplier) }
                    } else {
                        row.update(repeating: E.zero, count: D)
                    }
                }
            }
        }

        /// Copies the unit's visible keys (or values) at `column` of qkv, the parent's then its
        /// own, into `k` (W, D), zero past them.
        func gatherKeys<E: AttentionOperand>(
            _ unit: BlockUnit, column: Int, width W: Int, qkv: UnsafePointer<Float>,
            into k: UnsafeMutablePointer<E>
        ) {
            let (D, ld) = (heads.headDim, heads.qkvWidth)
            for t in 0..<W {
                let row = k + t * D
                guard let source = keyRow(unit, t) else {
                    row.update(repeating: E.zero, count: D)
                    continue
                }
                let from = qkv + source * ld + column
                for d in 0..<D { row[d] = E.from(from[d]) }
            }
        }

        /// The packed row of the unit's t-th visible key, nil past them.
        func keyRow(_ unit: BlockUnit, _ t: Int) -> Int? {
            if t < unit.prefix {
                return sequences.offsets[sequences.parents[unit.sequence]!] + t
            }
            return t < unit.prefix + unit.own ? sequences.offsets[unit.sequence] + t - unit.prefix : nil
        }
    }

    /// Batched `attentionForward`; false if oneDNN has no batched product for these operands.
    func batchedAttentionForward(
        out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences, heads: AttentionHeads,
        scale: Float,
        bf16: Bool
    ) -> Bool {
        bf16
            ? batchedForward(
                UInt16.self, out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads, scale: scale)
            : batchedForward(
                Float.self, out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads, scale: scale)
    }

    private func batchedForward<E: AttentionOperand>(
        _: E.Type, out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences, heads: AttentionHeads,
        scale: Float
    ) -> Bool {
        let layout = BatchedLayout(sequences: sequences, heads: heads)
        let (H, KV, g, D, ld) = (
            heads.queryHeads, heads.keyValueHeads, heads.group, heads.headDim, heads.qkvWidth
        )
        let size = layout.largest
        let scratch = AttentionScratch.shared
        scratch.lock.lock()
        defer { scratch.lock.unlock() }
        let q = scratch.buffer(0, E.self, size.queries)
        let k = scratch.buffer(1, E.self, size.keys)
        let v = scratch.buffer(2, E.self, size.keys)
        let p = scratch.buffer(3, E.self, size.scores)
        let sp = scratch.buffer(4, Float.self, size.scores)
        let o = scratch.buffer(5, Float.self, size.queries)
        let inverses = scratch.buffer(6, Float.self, size.queries / D)
        let (qp, op, lp) = (UnsafePointer(qkv.pointer), out.pointer, lse.pointer)
        for group in layout.groups {
            let (R, W, entries) = (group.rows, group.width, group.units.count * KV)
            let gR = g * R
            parallelFor(entries) { range in
                for e in range {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    layout.gatherQueries(
                        unit, kv: kv, rows: R, source: qp, ld: ld, multiplier: scale, into: q + e * gR * D)
                    layout.gatherKeys(
                        unit, column: (H + kv) * D, width: W, qkv: qp, into: k + e * W * D)
                    layout.gatherKeys(
                        unit, column: (H + KV + kv) * D, width: W, qkv: qp, into: v + e * W * D)
                }
            }
            guard
                MatmulPrimitives.shared.runBatched(
                    bf16: E.isBF16, batch: entries, transA: false, transB: true, m: gR, n: W, k: D, a: q,
                    b: k,
                    c: sp)
            else { return false }
            parallelFor(entries * gR, minimumPerTask: 32) { range in
                for i in range {
                    let (e, row) = i.quotientAndRemainder(dividingBy: gR)
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    let (j, r) = row.quotientAndRemainder(dividingBy: R)
                    let (s, pRow) = (sp + i * W, p + i * W)
                    guard r < unit.rows else {
                        pRow.update(repeating: E.zero, count: W)
                        continue
                    }
                    let visible = unit.prefix + unit.first + r + 1
                    let m = rowMax(s, visible)
                    let total = exponentiate(s, visible, shift: m)
                    for c in 0..<visible { pRow[c] = E.from(s[c]) }
                    (pRow + visible).update(repeating: E.zero, count: W - visible)
                    inverses[i] = 1 / total
                    let token = sequences.offsets[unit.sequence] + unit.first + r
                    lp[token * H + kv * g + j] = m + Foundation.log(total)
                }
            }
            guard
                MatmulPrimitives.shared.runBatched(
                    bf16: E.isBF16, batch: entries, transA: false, transB: false, m: gR, n: D, k: W, a: p,
                    b: v, c: o)
            else { return false }
            parallelFor(entries) { range in
                for e in range {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    let start = sequences.offsets[unit.sequence] + unit.first
                    for j in 0..<g {
                        for r in 0..<unit.rows {
                            let i = e * gR + j * R + r
                            let (from, to) = (o + i * D, op + (start + r) * H * D + (kv * g + j) * D)
                            let inverse = inverses[i]
                            for d in 0..<D { to[d] = from[d] * inverse }
                        }
                    }
                }
            }
        }
        return true
    }

    /// Batched `attentionBackward` (dQKV overwritten); false if oneDNN has no batched product.
    func batchedAttentionBackward(
        dQKV: Tensor, dOut: Tensor, out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences,
        heads: AttentionHeads, scale: Float, bf16: Bool
    ) -> Bool {
        bf16
            ? batchedBackward(
                UInt16.self, dQKV: dQKV, dOut: dOut, out: out, lse: lse, qkv: qkv, sequences: sequences,
                heads: heads, scale: scale)
            : batchedBackward(
                Float.self, dQKV: dQKV, dOut: dOut, out: out, lse: lse, qkv: qkv, sequences: sequences,
                heads: heads, scale: scale)
    }

    private func batchedBackward<E: AttentionOperand>(
        _: E.Type, dQKV: Tensor, dOut: Tensor, out: Tensor, lse: Tensor, qkv: Tensor,
        sequences: PackedSequences,
        heads: AttentionHeads, scale: Float
    ) -> Bool {
        let layout = BatchedLayout(sequences: sequences, heads: heads)
        let (H, KV, g, D, ld) = (
            heads.queryHeads, heads.keyValueHeads, heads.group, heads.headDim, heads.qkvWidth
        )
        let N = sequences.tokenCount
        let size = layout.largest
        let scratch = AttentionScratch.shared
        scratch.lock.lock()
        defer { scratch.lock.unlock() }
        let q = scratch.buffer(0, E.self, size.queries)
        let dO = scratch.buffer(7, E.self, size.queries)
        let k = scratch.buffer(1, E.self, size.keys)
        let v = scratch.buffer(2, E.self, size.keys)
        let p = scratch.buffer(3, E.self, size.scores)
        let dS = scratch.buffer(8, E.self, size.scores)
        let (sp, dPp) = (
            scratch.buffer(4, Float.self, size.scores), scratch.buffer(9, Float.self, size.scores)
        )
        let dq = scratch.buffer(5, Float.self, size.queries)
        let (dk, dv) = (scratch.buffer(10, Float.self, size.keys), scratch.buffer(11, Float.self, size.keys))
        let delta = Tensor(zeros: [N * H])
        let (qp, dqp, op, dop, lp, dp) = (
            UnsafePointer(qkv.pointer), dQKV.pointer, out.pointer, UnsafePointer(dOut.pointer), lse.pointer,
            delta.pointer
        )
        dQKV.zero()
        parallelFor(N * H, minimumPerTask: 256) { range in
            for r in range { dp[r] = dotProduct(dop + r * D, op + r * D, D) }
        }
        for group in layout.groups {
            let (R, W, entries) = (group.rows, group.width, group.units.count * KV)
            let gR = g * R
            parallelFor(entries) { range in
                for e in range {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    layout.gatherQueries(
                        unit, kv: kv, rows: R, source: qp, ld: ld, multiplier: scale, into: q + e * gR * D)
                    layout.gatherQueries(
                        unit, kv: kv, rows: R, source: dop, ld: H * D, multiplier: 1, into: dO + e * gR * D)
                    layout.gatherKeys(unit, column: (H + kv) * D, width: W, qkv: qp, into: k + e * W * D)
                    layout.gatherKeys(unit, column: (H + KV + kv) * D, width: W, qkv: qp, into: v + e * W * D)
                }
            }
            let run = {
                (
                    transA: Bool, transB: Bool, m: Int, n: Int, kk: Int, a: UnsafeRawPointer,
                    b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>
                ) in
                MatmulPrimitives.shared.runBatched(
                    bf16: E.isBF16, batch: entries, transA: transA, transB: transB, m: m, n: n, k: kk, a: a,
                    b: b,
                    c: c)
            }
            guard run(false, true, gR, W, D, q, k, sp), run(false, true, gR, W, D, dO, v, dPp)
            else { return false }
            // P from the saved log-sum-exps, dS = P ⊙ (dP - δ).
            parallelFor(entries * gR, minimumPerTask: 32) { range in
                for i in range {
                    let (e, row) = i.quotientAndRemainder(dividingBy: gR)
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    let (j, r) = row.quotientAndRemainder(dividingBy: R)
                    let (s, ds, pRow, dsRow) = (sp + i * W, dPp + i * W, p + i * W, dS + i * W)
                    guard r < unit.rows else {
                        pRow.update(repeating: E.zero, count: W)
                        dsRow.update(repeating: E.zero, count: W)
                        continue
                    }
                    let visible = unit.prefix + unit.first + r + 1
                    let entry = (sequences.offsets[unit.sequence] + unit.first + r) * H + kv * g + j
                    softmaxRow(s, count: visible, shift: lp[entry], multiplier: 1)
                    let di = dp[entry]
                    for c in 0..<visible {
                        pRow[c] = E.from(s[c])
                        dsRow[c] = E.from(s[c] * (ds[c] - di))
                    }
                    (pRow + visible).update(repeating: E.zero, count: W - visible)
                    (dsRow + visible).update(repeating: E.zero, count: W - visible)
                }
            }
            // dq = scale dS k; dk = dSᵀ (scale q); dv = Pᵀ dO. The transposed products sum over
            // the g query heads stacked in their inner dimension.
            guard run(false, false, gR, D, W, dS, k, dq),
                run(true, false, W, D, gR, dS, q, dk),
                run(true, false, W, D, gR, p, dO, dv)
            else { return false }
            parallelFor(entries) { range in
                for e in range {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    let start = sequences.offsets[unit.sequence] + unit.first
                    for j in 0..<g {
                        for r in 0..<unit.rows {
                            let from = dq + (e * gR + j * R + r) * D
                            let to = dqp + (start + r) * ld + (kv * g + j) * D
                            for d in 0..<D { to[d] = from[d] * scale }
                        }
                    }
                }
            }
            // Entries add into the same rows (a parent's, a sequence's blocks'): each core takes
            // its own columns of every key and value row.
            parallelFor(D, minimumPerTask: 16) { columns in
                for (u, unit) in group.units.enumerated() {
                    for kv in 0..<KV {
                        let e = u * KV + kv
                        for t in 0..<(unit.prefix + unit.own) {
                            let row = dqp + layout.keyRow(unit, t)! * ld
                            let (keyRow, valueRow) = (row + (H + kv) * D, row + (H + KV + kv) * D)
                            let (fromK, fromV) = (dk + (e * W + t) * D, dv + (e * W + t) * D)
                            for d in columns {
                                keyRow[d] += fromK[d]
                                valueRow[d] += fromV[d]
                            }
                        }
                    }
                }
            }
        }
        return true
    }
#endif

/// Bytes training attention keeps between calls for its bf16 batched products (0 without
/// oneDNN).
public func attentionScratchBytes() -> Int {
    #if canImport(Accelerate)
        return 0
    #else
        return AttentionScratch.shared.bytes
    #endif
}

/// Bytes bf16 training attention's kept buffers take for a batch packed as `sequences` (forward
/// and backward share them; 0 without oneDNN).
public func attentionScratchBytes(sequences: PackedSequences, heads: AttentionHeads) -> Int {
    #if canImport(Accelerate)
        return 0
    #else
        let size = BatchedLayout(sequences: sequences, heads: heads).largest
        let D = heads.headDim
        // bf16: queries and dOut, keys and values, P and dS; float32: scores and dP, o or dq,
        // dk and dv, the row sums' reciprocals.
        let slots = [
            2 * size.queries, 2 * size.keys, 2 * size.keys, 2 * size.scores, 4 * size.scores,
            4 * size.queries,
            4 * size.queries / D, 2 * size.queries, 2 * size.scores, 4 * size.scores, 4 * size.keys,
            4 * size.keys,
        ]
        return slots.reduce(0) { $0 + max($1, 64) }
    #endif
}
