#if !canImport(Accelerate)
    import Foundation

    // bf16 training attention as batched matmuls: every (sequence, 128-row causal block,
    // key/value head) of a packed batch is one entry; entries of the same padded shape run as one
    // batched oneDNN product per step of the algorithm (one call on both cores instead of
    // thousands of small single-core ones). Legend as in Attention.swift, plus g = H / K query
    // heads per key/value head, R a block's padded rows, W its padded keys. (In float32 the
    // batched products ran slower than the per-core path of Attention.swift, which float32 keeps.)

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

    /// The batched products' operand buffers: bf16 operands, float32 products and row sums.
    private enum Slot: Int, CaseIterable {
        case queries, keys, values, probabilities, scores, outputs, inverses
        case dOut, dScores, dProbabilities, dKeys, dValues

        /// Bytes for the largest group of a layout.
        func bytes(_ size: BatchedLayout.Sizes, headDim D: Int) -> Int {
            switch self {
            case .queries, .dOut: 2 * size.queries
            case .keys, .values: 2 * size.keys
            case .probabilities, .dScores: 2 * size.scores
            case .scores, .dProbabilities: 4 * size.scores
            case .outputs: 4 * size.queries
            case .inverses: 4 * size.queries / D
            case .dKeys, .dValues: 4 * size.keys
            }
        }
    }

    /// The slots' buffers, kept between calls.
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

        /// `slot`'s buffer for a layout's largest group, as E (the caller holds `lock`).
        fileprivate func buffer<E>(
            _ slot: Slot, _: E.Type, _ size: BatchedLayout.Sizes, headDim: Int
        ) -> UnsafeMutablePointer<E> {
            let needed = max(slot.bytes(size, headDim: headDim), 64)
            while buffers.count <= slot.rawValue {
                buffers.append((UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64), 64))
            }
            if buffers[slot.rawValue].bytes < needed {
                buffers[slot.rawValue].pointer.deallocate()
                buffers[slot.rawValue] = (
                    UnsafeMutableRawPointer.allocate(byteCount: needed, alignment: 64), needed
                )
            }
            return buffers[slot.rawValue].pointer.bindMemory(
                to: E.self, capacity: needed / MemoryLayout<E>.stride)
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

        /// Elements of the largest group's (g R, W) scores, (W, D) keys and (g R, D) queries.
        struct Sizes {
            var scores = 0
            var keys = 0
            var queries = 0
        }

        var largest: Sizes {
            let (KV, g, D) = (heads.keyValueHeads, heads.group, heads.headDim)
            var result = Sizes()
            for group in groups {
                let entries = group.units.count * KV
                result.scores = max(result.scores, entries * g * group.rows * group.width)
                result.keys = max(result.keys, entries * group.width * D)
                result.queries = max(result.queries, entries * g * group.rows * D)
            }
            return result
        }

        /// The entry (unit, key/value head) and the head j and row r of stacked row i of a
        /// group's (entries · g R) rows, nil for a padding row.
        func row(_ i: Int, of group: BlockGroup) -> (unit: BlockUnit, kv: Int, j: Int, r: Int)? {
            let KV = heads.keyValueHeads
            let (e, row) = i.quotientAndRemainder(dividingBy: heads.group * group.rows)
            let (unit, (j, r)) = (group.units[e / KV], row.quotientAndRemainder(dividingBy: group.rows))
            return r < unit.rows ? (unit, e % KV, j, r) : nil
        }

        /// The packed token of a stacked row.
        func token(_ unit: BlockUnit, _ r: Int) -> Int { sequences.offsets[unit.sequence] + unit.first + r }

        /// Each entry's query rows of `source` (rows `ld` apart, head h at column h D), times
        /// `multiplier`, in bf16 into `q` ((g R, D) per entry), zero past a block's rows.
        func gatherQueries(
            _ group: BlockGroup, source: UnsafePointer<Float>, ld: Int, multiplier: Float,
            into q: UnsafeMutablePointer<UInt16>
        ) {
            let (KV, g, D, R) = (heads.keyValueHeads, heads.group, heads.headDim, group.rows)
            parallelFor(group.units.count * KV) { entries in
                for e in entries {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    for j in 0..<g {
                        for r in 0..<R {
                            let row = q + ((e * g + j) * R + r) * D
                            guard r < unit.rows else {
                                row.update(repeating: 0, count: D)
                                continue
                            }
                            let from = source + token(unit, r) * ld + (kv * g + j) * D
                            for d in 0..<D { row[d] = BFloat16.bits(from[d] * multiplier) }
                        }
                    }
                }
            }
        }

        /// Each entry's visible keys and values (the parent's, then its own) in bf16 into `k` and
        /// `v` ((W, D) per entry), zero past them.
        func gatherKeysAndValues(
            _ group: BlockGroup, qkv: UnsafePointer<Float>, keys k: UnsafeMutablePointer<UInt16>,
            values v: UnsafeMutablePointer<UInt16>
        ) {
            let (H, KV, D, ld, W) = (
                heads.queryHeads, heads.keyValueHeads, heads.headDim, heads.qkvWidth, group.width
            )
            parallelFor(group.units.count * KV) { entries in
                for e in entries {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    for t in 0..<W {
                        let (keyRow, valueRow) = (k + (e * W + t) * D, v + (e * W + t) * D)
                        guard let source = self.keyRow(unit, t) else {
                            keyRow.update(repeating: 0, count: D)
                            valueRow.update(repeating: 0, count: D)
                            continue
                        }
                        let (key, value) = (
                            qkv + source * ld + (H + kv) * D, qkv + source * ld + (H + KV + kv) * D
                        )
                        for d in 0..<D {
                            keyRow[d] = BFloat16.bits(key[d])
                            valueRow[d] = BFloat16.bits(value[d])
                        }
                    }
                }
            }
        }

        /// Each entry's real rows of `stacked` ((g R, D) per entry, float32), row i times
        /// `factor(i)`, into their heads' columns of `destination` (rows `ld` apart).
        func scatterQueries(
            _ group: BlockGroup, _ stacked: UnsafePointer<Float>, factor: (Int) -> Float,
            into destination: UnsafeMutablePointer<Float>, ld: Int
        ) {
            let (KV, g, D, R) = (heads.keyValueHeads, heads.group, heads.headDim, group.rows)
            parallelFor(group.units.count * KV) { entries in
                for e in entries {
                    let (unit, kv) = (group.units[e / KV], e % KV)
                    for j in 0..<g {
                        for r in 0..<unit.rows {
                            let i = (e * g + j) * R + r
                            let (from, to) = (
                                stacked + i * D, destination + token(unit, r) * ld + (kv * g + j) * D
                            )
                            let multiplier = factor(i)
                            for d in 0..<D { to[d] = from[d] * multiplier }
                        }
                    }
                }
            }
        }

        /// C (entries x (m, n)) = op(A) op(B), every entry's bf16 matrices one after another.
        func product(
            _ group: BlockGroup, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
            _ a: UnsafePointer<UInt16>, _ b: UnsafePointer<UInt16>, into c: UnsafeMutablePointer<Float>
        ) -> Bool {
            MatmulPrimitives.shared.runBatched(
                bf16: true, batch: group.units.count * heads.keyValueHeads, transA: transA, transB: transB,
                m: m, n: n, k: k, a: a, b: b, c: c)
        }

        /// The packed row of the unit's t-th visible key, nil past them.
        func keyRow(_ unit: BlockUnit, _ t: Int) -> Int? {
            if t < unit.prefix {
                return sequences.offsets[sequences.parents[unit.sequence]!] + t
            }
            return t < unit.prefix + unit.own ? sequences.offsets[unit.sequence] + t - unit.prefix : nil
        }
    }

    /// Batched bf16 `attentionForward`; false if oneDNN has no batched product for these shapes.
    func batchedAttentionForward(
        out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences, heads: AttentionHeads, scale: Float
    ) -> Bool {
        let layout = BatchedLayout(sequences: sequences, heads: heads)
        let (H, g, D) = (heads.queryHeads, heads.group, heads.headDim)
        let size = layout.largest
        let scratch = AttentionScratch.shared
        scratch.lock.lock()
        defer { scratch.lock.unlock() }
        let bf16 = { (slot: Slot) in scratch.buffer(slot, UInt16.self, size, headDim: D) }
        let float32 = { (slot: Slot) in scratch.buffer(slot, Float.self, size, headDim: D) }
        let (q, k, v, p) = (bf16(.queries), bf16(.keys), bf16(.values), bf16(.probabilities))
        let (sp, o, inverses) = (float32(.scores), float32(.outputs), float32(.inverses))
        let (qp, lp) = (UnsafePointer(qkv.pointer), lse.pointer)
        for group in layout.groups {
            let (gR, W) = (g * group.rows, group.width)
            layout.gatherQueries(group, source: qp, ld: heads.qkvWidth, multiplier: scale, into: q)
            layout.gatherKeysAndValues(group, qkv: qp, keys: k, values: v)
            guard layout.product(group, transB: true, m: gR, n: W, k: D, q, k, into: sp) else { return false }
            // Unnormalised exp(score - max); the output rows are divided by their sums as they
            // are scattered.
            parallelFor(group.units.count * heads.keyValueHeads * gR, minimumPerTask: 32) { rows in
                for i in rows {
                    let (s, pRow) = (sp + i * W, p + i * W)
                    guard let (unit, kv, j, r) = layout.row(i, of: group) else {
                        pRow.update(repeating: 0, count: W)
                        continue
                    }
                    let visible = unit.prefix + unit.first + r + 1
                    let m = rowMax(s, visible)
                    let total = exponentiate(s, visible, shift: m)
                    for c in 0..<visible { pRow[c] = BFloat16.bits(s[c]) }
                    (pRow + visible).update(repeating: 0, count: W - visible)
                    inverses[i] = 1 / total
                    lp[layout.token(unit, r) * H + kv * g + j] = m + Foundation.log(total)
                }
            }
            guard layout.product(group, m: gR, n: D, k: W, p, v, into: o) else { return false }
            layout.scatterQueries(group, o, factor: { inverses[$0] }, into: out.pointer, ld: H * D)
        }
        return true
    }

    /// Batched bf16 `attentionBackward` (dQKV overwritten); false if oneDNN has no batched product.
    func batchedAttentionBackward(
        dQKV: Tensor, dOut: Tensor, out: Tensor, lse: Tensor, qkv: Tensor, sequences: PackedSequences,
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
        let bf16 = { (slot: Slot) in scratch.buffer(slot, UInt16.self, size, headDim: D) }
        let float32 = { (slot: Slot) in scratch.buffer(slot, Float.self, size, headDim: D) }
        let (q, k, v, p) = (bf16(.queries), bf16(.keys), bf16(.values), bf16(.probabilities))
        let (dO, dS) = (bf16(.dOut), bf16(.dScores))
        let (sp, dPp, dq) = (float32(.scores), float32(.dProbabilities), float32(.outputs))
        let (dk, dv) = (float32(.dKeys), float32(.dValues))
        let delta = rowDeltas(dOut: dOut, out: out, rows: N * H, headDim: D)
        let (qp, dqp, dop, lp, dp) = (
            UnsafePointer(qkv.pointer), dQKV.pointer, UnsafePointer(dOut.pointer), lse.pointer, delta.pointer
        )
        dQKV.zero()
        for group in layout.groups {
            let (gR, W) = (g * group.rows, group.width)
            layout.gatherQueries(group, source: qp, ld: ld, multiplier: scale, into: q)
            layout.gatherQueries(group, source: dop, ld: H * D, multiplier: 1, into: dO)
            layout.gatherKeysAndValues(group, qkv: qp, keys: k, values: v)
            guard layout.product(group, transB: true, m: gR, n: W, k: D, q, k, into: sp),
                layout.product(group, transB: true, m: gR, n: W, k: D, dO, v, into: dPp)
            else { return false }
            // P from the saved log-sum-exps, dS = P ⊙ (dP - δ).
            parallelFor(group.units.count * KV * gR, minimumPerTask: 32) { rows in
                for i in rows {
                    let (s, ds, pRow, dsRow) = (sp + i * W, dPp + i * W, p + i * W, dS + i * W)
                    guard let (unit, kv, j, r) = layout.row(i, of: group) else {
                        pRow.update(repeating: 0, count: W)
                        dsRow.update(repeating: 0, count: W)
                        continue
                    }
                    let visible = unit.prefix + unit.first + r + 1
                    let entry = layout.token(unit, r) * H + kv * g + j
                    softmaxRow(s, count: visible, shift: lp[entry], multiplier: 1)
                    let di = dp[entry]
                    for c in 0..<visible {
                        pRow[c] = BFloat16.bits(s[c])
                        dsRow[c] = BFloat16.bits(s[c] * (ds[c] - di))
                    }
                    (pRow + visible).update(repeating: 0, count: W - visible)
                    (dsRow + visible).update(repeating: 0, count: W - visible)
                }
            }
            // dq = scale dS k; dk = dSᵀ (scale q); dv = Pᵀ dO. The transposed products sum over
            // the g query heads stacked in their inner dimension.
            guard layout.product(group, m: gR, n: D, k: W, dS, k, into: dq),
                layout.product(group, transA: true, m: W, n: D, k: gR, dS, q, into: dk),
                layout.product(group, transA: true, m: W, n: D, k: gR, p, dO, into: dv)
            else { return false }
            layout.scatterQueries(group, dq, factor: { _ in scale }, into: dqp, ld: ld)
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
        return Slot.allCases.reduce(0) { $0 + max($1.bytes(size, headDim: heads.headDim), 64) }
    #endif
}
