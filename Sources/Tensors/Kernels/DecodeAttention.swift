// Decoding's attention: one new token per sequence against its KV cache, and the cache layouts it
// reads.
//
// Keys are kept in tiles of 16 tokens so that one vector load holds one feature of 16 keys: a
// loaded vector is multiplied into four query heads' score vectors (one score per key, no
// horizontal sums). Values are rows, read 16 (float32) or 32 (bf16) columns at a time into four
// heads' output sums. bf16 caches store the bits of each number's nearest bf16 and lay pairs out so
// that one 64-byte load widens to two float vectors by a shift and a mask.

/// The numbers a decoding cache holds: float32, or bf16 (half the bytes to store and to read).
public enum CacheElements: Sendable {
    case float32, bf16

    public var bytes: Int { self == .float32 ? 4 : 2 }

    /// bf16 where asked and every head's columns are whole 32-column blocks (the widening loads
    /// take 32 at a time); float32 otherwise.
    public static func forHeads(dim: Int, bf16: Bool) -> CacheElements {
        bf16 && dim % 32 == 0 ? .bf16 : .float32
    }
}

/// Tokens per tile of a decoding key cache.
public let keyTileTokens = 16

/// Elements a tiled key block of `tokens` keys of `width` (K·D) features spans: whole tiles.
public func keyBlockCount(tokens: Int, width: Int) -> Int {
    (tokens + keyTileTokens - 1) / keyTileTokens * keyTileTokens * width
}

/// Where token j's feature f sits in a key block of `width` features, in elements.
///
/// A tile is 16 tokens' features. float32: feature f of the tile's tokens is 16 adjacent numbers.
/// bf16: features 2i and 2i + 1 are interleaved over 32 numbers (token t's at 2t and 2t + 1), so a
/// 64-byte load holds both for 16 tokens.
@inline(__always)
public func keyOffset(token j: Int, feature f: Int, width: Int, elements: CacheElements) -> Int {
    let (tile, t) = ((j / keyTileTokens) * keyTileTokens * width, j % keyTileTokens)
    switch elements {
    case .float32: return tile + f * keyTileTokens + t
    case .bf16: return tile + (f / 2) * 2 * keyTileTokens + 2 * t + f % 2
    }
}

/// Where token j's column c sits in a value block of `width` columns, in elements.
///
/// Row j; bf16 interleaves each 32-column block's halves (column i at 2i, column 16 + i at
/// 2i + 1).
@inline(__always)
public func valueOffset(token j: Int, column c: Int, width: Int, elements: CacheElements) -> Int {
    switch elements {
    case .float32: return j * width + c
    case .bf16:
        let (block, i) = (c / 32, c % 32)
        return j * width + block * 32 + (i < 16 ? 2 * i : 2 * (i - 16) + 1)
    }
}

/// Stores x at element `offset` of a cache block of `elements`.
@inline(__always)
public func storeCacheElement(
    _ x: Float, at block: UnsafeMutableRawPointer, offset: Int, elements: CacheElements
) {
    switch elements {
    case .float32: block.assumingMemoryBound(to: Float.self)[offset] = x
    case .bf16: block.assumingMemoryBound(to: UInt16.self)[offset] = BFloat16.bits(x)
    }
}

/// One sequence's keys and values of one layer in a decoding cache's layout, made from rows (the
/// layout `KVCache` writes in place; for tests and benchmarks).
public final class DecodeCacheBlock {
    public let keys: UnsafeMutableRawPointer
    public let values: UnsafeMutableRawPointer

    /// keys, values: (T, width) rows.
    public init(keys: Tensor, values: Tensor, elements: CacheElements) {
        let (T, width) = (keys.shape[0], keys.shape[1])
        let keyBytes = keyBlockCount(tokens: T, width: width) * elements.bytes
        self.keys = UnsafeMutableRawPointer.allocate(byteCount: max(keyBytes, 64), alignment: 64)
        self.keys.initializeMemory(as: UInt8.self, repeating: 0, count: max(keyBytes, 64))
        self.values = UnsafeMutableRawPointer.allocate(
            byteCount: max(T * width * elements.bytes, 64), alignment: 64)
        for j in 0..<T {
            for f in 0..<width {
                storeCacheElement(
                    keys[j * width + f], at: self.keys,
                    offset: keyOffset(token: j, feature: f, width: width, elements: elements),
                    elements: elements)
                storeCacheElement(
                    values[j * width + f], at: self.values,
                    offset: valueOffset(token: j, column: f, width: width, elements: elements),
                    elements: elements)
            }
        }
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }
}

/// One new token per sequence attending to its cached keys and values (the decode step).
///
/// q: (B, H*D) for B sequences (rows `qRowStride` apart, so q can be read in place from qkv rows);
/// keys[b], values[b]: sequence b's key and value blocks of `elements` (`keyOffset`,
/// `valueOffset`) with L_b = lengths[b] tokens, the new token's own key and value already written
/// -> out: (B, H*D).
public func attentionDecode(
    out: Tensor, q: Tensor, keys: [UnsafeRawPointer], values: [UnsafeRawPointer], elements: CacheElements,
    lengths: [Int], heads: AttentionHeads, scale: Float, qRowStride: Int? = nil
) {
    let (H, KV, D) = (heads.queryHeads, heads.keyValueHeads, heads.headDim)
    precondition(elements == .float32 || D % 32 == 0, "bf16 caches need head dims in 32-column blocks")
    let B = lengths.count
    let (op, qp) = (out.pointer, q.pointer)
    let qStride = qRowStride ?? H * D
    let tile = keyTileTokens
    let rowStride = ((lengths.max() ?? 0) + tile - 1) / tile * tile
    let group = heads.group
    // A task is a sequence with all its heads when there are sequences enough for the cores, so
    // its cached K and V are read front to back once; with fewer sequences than cores, a
    // (sequence, key/value head) pair.
    let headSplit = B >= coreCount ? 1 : KV
    let units = B * headSplit
    let scratch = Tensor(zeros: [coreCount, H * rowStride])
    let tasks = min(coreCount, units)
    parallelTasks(tasks) { t in
        let scores = scratch.pointer + t * H * rowStride
        for unit in (units * t / tasks)..<(units * (t + 1) / tasks) {
            let b = unit / headSplit
            let kvHeads = headSplit == 1 ? 0..<KV : (unit % headSplit)..<(unit % headSplit + 1)
            let L = lengths[b]
            let (qb, ob) = (qp + b * qStride, op + b * H * D)
            for g in kvHeads {
                for first in Swift.stride(from: g * group, to: (g + 1) * group, by: 4) {
                    // Four heads, the last repeated when fewer are left (its sums are stored twice).
                    let last = min(first + 3, (g + 1) * group - 1)
                    let h: Four<Int> = (first, min(first + 1, last), min(first + 2, last), last)
                    let rows: Four<UnsafeMutablePointer<Float>> = (
                        scores + h.0 * rowStride, scores + h.1 * rowStride, scores + h.2 * rowStride,
                        scores + h.3 * rowStride
                    )
                    let queries: Four<UnsafePointer<Float>> = (
                        UnsafePointer(qb + h.0 * D), UnsafePointer(qb + h.1 * D), UnsafePointer(qb + h.2 * D),
                        UnsafePointer(qb + h.3 * D)
                    )
                    let outputs: Four<UnsafeMutablePointer<Float>> = (
                        ob + h.0 * D, ob + h.1 * D, ob + h.2 * D, ob + h.3 * D
                    )
                    let tiles = (L + tile - 1) / tile
                    switch elements {
                    case .float32:
                        tiledScores(
                            into: rows, q: queries,
                            keys: keys[b].assumingMemoryBound(to: Float.self) + g * D * tile, tiles: tiles,
                            tileStride: tile * KV * D, features: D, scale: scale)
                    case .bf16:
                        tiledScores(
                            into: rows, q: queries,
                            keys: keys[b].assumingMemoryBound(to: UInt16.self) + g * D * tile, tiles: tiles,
                            tileStride: tile * KV * D, features: D, scale: scale)
                    }
                    for r in first...last {
                        let row = scores + r * rowStride
                        let m = rowMax(row, L)
                        let total = sumExp(row, L, scale: 1, shift: m)
                        softmaxRow(row, count: L, shift: m, multiplier: 1 / total)
                    }
                    switch elements {
                    case .float32:
                        weightedValues(
                            into: outputs, p: rows,
                            values: values[b].assumingMemoryBound(to: Float.self) + g * D,
                            rowStride: KV * D, count: L, columns: D)
                    case .bf16:
                        _ = weightedValueBlocks(
                            into: outputs, p: rows,
                            values: values[b].assumingMemoryBound(to: UInt16.self) + g * D, rowStride: KV * D,
                            count: L, columns: D)
                    }
                }
            }
        }
    }
}

/// float32 key rows (L_b, K·D) and value rows as decoding caches, then `attentionDecode` (tests).
public func attentionDecode(
    out: Tensor, q: Tensor, keys: [Tensor], values: [Tensor], lengths: [Int], heads: AttentionHeads,
    scale: Float, elements: CacheElements = .float32
) {
    let blocks = zip(keys, values).map { DecodeCacheBlock(keys: $0, values: $1, elements: elements) }
    attentionDecode(
        out: out, q: q, keys: blocks.map { UnsafeRawPointer($0.keys) },
        values: blocks.map { UnsafeRawPointer($0.values) }, elements: elements, lengths: lengths,
        heads: heads,
        scale: scale)
    withExtendedLifetime(blocks) {}
}

private typealias Four<T> = (T, T, T, T)

/// How a decoding cache's numbers load as float vectors: float32 as they are, bf16 widened from
/// pairs interleaved by `keyOffset` / `valueOffset`.
private protocol CacheScalar {
    /// Two vectors: the first at `p`, the second `secondAt` numbers on (float32); the even and odd
    /// places of the 32 numbers at `p` (bf16, whose pairs are interleaved; `secondAt` unused).
    static func pair(_ p: UnsafePointer<Self>, secondAt: Int) -> (SIMD16<Float>, SIMD16<Float>)
    /// The vector of `pair`'s first half alone (a key's last feature when D is odd).
    static func single(_ p: UnsafePointer<Self>) -> SIMD16<Float>
}

extension Float: CacheScalar {
    @inline(__always)
    fileprivate static func pair(_ p: UnsafePointer<Float>, secondAt: Int) -> (SIMD16<Float>, SIMD16<Float>) {
        (p.loadSIMD16(at: 0), p.loadSIMD16(at: secondAt))
    }

    @inline(__always)
    fileprivate static func single(_ p: UnsafePointer<Float>) -> SIMD16<Float> { p.loadSIMD16(at: 0) }
}

extension UInt16: CacheScalar {
    /// One 64-byte load widened by a shift and a mask.
    @inline(__always)
    fileprivate static func pair(_ p: UnsafePointer<UInt16>, secondAt: Int) -> (SIMD16<Float>, SIMD16<Float>)
    {
        let w = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt32>.self)
        return (
            unsafeBitCast(w &<< 16, to: SIMD16<Float>.self),
            unsafeBitCast(w & SIMD16(repeating: 0xFFFF_0000), to: SIMD16<Float>.self)
        )
    }

    @inline(__always)
    fileprivate static func single(_ p: UnsafePointer<UInt16>) -> SIMD16<Float> { pair(p, secondAt: 0).0 }
}

/// s_r[j] = scale · q_r · key_j for four query heads r, over whole 16-key tiles of one key/value
/// head (`keys` at that head's first feature in the first tile).
///
/// Even and odd features go to separate sums: eight chains of multiply-adds in flight.
@inline(__always)
private func tiledScores<E: CacheScalar>(
    into s: Four<UnsafeMutablePointer<Float>>, q: Four<UnsafePointer<Float>>, keys: UnsafePointer<E>,
    tiles: Int, tileStride: Int, features D: Int, scale: Float
) {
    let tile = keyTileTokens
    for t in 0..<tiles {
        let k = keys + t * tileStride
        var a: Four<SIMD16<Float>> = (.zero, .zero, .zero, .zero)
        var b: Four<SIMD16<Float>> = (.zero, .zero, .zero, .zero)
        var d = 0
        while d + 2 <= D {
            // Features d and d + 1 of the tile's 16 keys (a bf16 pair sits at d's place).
            let (even, odd) = E.pair(k + d * tile, secondAt: tile)
            a.0 += even * q.0[d]
            a.1 += even * q.1[d]
            a.2 += even * q.2[d]
            a.3 += even * q.3[d]
            b.0 += odd * q.0[d + 1]
            b.1 += odd * q.1[d + 1]
            b.2 += odd * q.2[d + 1]
            b.3 += odd * q.3[d + 1]
            d += 2
        }
        if d < D {
            let even = E.single(k + d * tile)
            a.0 += even * q.0[d]
            a.1 += even * q.1[d]
            a.2 += even * q.2[d]
            a.3 += even * q.3[d]
        }
        s.0.storeSIMD16((a.0 + b.0) * scale, at: t * tile)
        s.1.storeSIMD16((a.1 + b.1) * scale, at: t * tile)
        s.2.storeSIMD16((a.2 + b.2) * scale, at: t * tile)
        s.3.storeSIMD16((a.3 + b.3) * scale, at: t * tile)
    }
}

/// o_r = Σ_j p_r[j] · value_j for four query heads r over `count` value rows of one key/value head,
/// 32 columns at a time (eight sums in flight): the whole 32-column blocks, returning the first
/// column left (bf16 caches have only whole blocks).
@inline(__always)
private func weightedValueBlocks<E: CacheScalar>(
    into o: Four<UnsafeMutablePointer<Float>>, p: Four<UnsafeMutablePointer<Float>>,
    values: UnsafePointer<E>, rowStride: Int, count L: Int, columns D: Int
) -> Int {
    var c = 0
    while c + 32 <= D {
        var a: Four<SIMD16<Float>> = (.zero, .zero, .zero, .zero)
        var b: Four<SIMD16<Float>> = (.zero, .zero, .zero, .zero)
        var row = values + c
        for j in 0..<L {
            let (low, high) = E.pair(row, secondAt: 16)
            a.0 += low * p.0[j]
            a.1 += low * p.1[j]
            a.2 += low * p.2[j]
            a.3 += low * p.3[j]
            b.0 += high * p.0[j]
            b.1 += high * p.1[j]
            b.2 += high * p.2[j]
            b.3 += high * p.3[j]
            row += rowStride
        }
        store(a, b, into: o, at: c)
        c += 32
    }
    return c
}

/// `weightedValueBlocks` over float32 value rows, then the columns past the last whole block: 16
/// at a time, then one.
@inline(__always)
private func weightedValues(
    into o: Four<UnsafeMutablePointer<Float>>, p: Four<UnsafeMutablePointer<Float>>,
    values: UnsafePointer<Float>, rowStride: Int, count L: Int, columns D: Int
) {
    var c = weightedValueBlocks(into: o, p: p, values: values, rowStride: rowStride, count: L, columns: D)
    while c + 16 <= D {
        var a: Four<SIMD16<Float>> = (.zero, .zero, .zero, .zero)
        var row = values + c
        for j in 0..<L {
            let v = row.loadSIMD16(at: 0)
            a.0 += v * p.0[j]
            a.1 += v * p.1[j]
            a.2 += v * p.2[j]
            a.3 += v * p.3[j]
            row += rowStride
        }
        o.0.storeSIMD16(a.0, at: c)
        o.1.storeSIMD16(a.1, at: c)
        o.2.storeSIMD16(a.2, at: c)
        o.3.storeSIMD16(a.3, at: c)
        c += 16
    }
    while c < D {
        var a: Four<Float> = (0, 0, 0, 0)
        for j in 0..<L {
            let v = values[j * rowStride + c]
            a.0 += v * p.0[j]
            a.1 += v * p.1[j]
            a.2 += v * p.2[j]
            a.3 += v * p.3[j]
        }
        (o.0[c], o.1[c], o.2[c], o.3[c]) = a
        c += 1
    }
}

/// Four heads' 32 output columns from c: a the first sixteen, b the next.
@inline(__always)
private func store(
    _ a: Four<SIMD16<Float>>, _ b: Four<SIMD16<Float>>, into o: Four<UnsafeMutablePointer<Float>>, at c: Int
) {
    o.0.storeSIMD16(a.0, at: c)
    o.1.storeSIMD16(a.1, at: c)
    o.2.storeSIMD16(a.2, at: c)
    o.3.storeSIMD16(a.3, at: c)
    o.0.storeSIMD16(b.0, at: c + 16)
    o.1.storeSIMD16(b.1, at: c + 16)
    o.2.storeSIMD16(b.2, at: c + 16)
    o.3.storeSIMD16(b.3, at: c + 16)
}
