import Foundation
import Tensors

/// Keys and values of one sequence's past tokens for every layer, after RoPE.
///
/// A `final class`: it owns, for each layer, a key block and a value block of capacity x (K*D)
/// numbers in the layouts `attentionDecode` reads (keys in 16-token tiles, values in rows; see
/// `keyOffset` and `valueOffset`), as float32 or, for a bf16 model, bf16. A group's prompt is
/// prefilled once and its cache copied (`fork`) into each of the group's completions.
///
///     let (logits, caches) = model.prefill([prompt], capacity: prompt.count + maxNewTokens)
///     let copies = caches[0].fork(count: 8)
public final class KVCache {
    public let capacity: Int
    public private(set) var length = 0
    let layers: Int
    let width: Int  // K*D
    public let elements: CacheElements
    /// Bytes from one layer's keys (or values) to the next block: a key block of `capacity` tokens
    /// rounded up to whole pages, so that each block's rows fill pages of their own.
    let blockStride: Int
    private let storage: TensorStorage

    init(layers: Int, width: Int, capacity: Int, elements: CacheElements) {
        self.layers = layers
        self.width = width
        self.capacity = capacity
        self.elements = elements
        blockStride = Self.pages(keyBlockCount(tokens: capacity, width: width) * elements.bytes)
        storage = TensorStorage(mappedCount: layers * 2 * blockStride / MemoryLayout<Float>.stride)
    }

    private static func pages(_ bytes: Int) -> Int {
        (bytes + TensorStorage.pageSize - 1) / TensorStorage.pageSize * TensorStorage.pageSize
    }

    /// The most bytes a cache of `tokens` rows makes resident: whole pages for each layer's keys
    /// and values.
    public static func bytes(layers: Int, width: Int, tokens: Int, elements: CacheElements) -> Int {
        layers
            * (pages(keyBlockCount(tokens: tokens, width: width) * elements.bytes)
                + pages(tokens * width * elements.bytes))
    }

    /// Bytes this cache maps (its capacity, in whole pages per block; resident as rows are written).
    public var byteCount: Int { storage.count * MemoryLayout<Float>.stride }

    /// Bytes of this cache resident now: the pages its `length` rows of keys and values touch
    /// (a cache's pages are mapped on their own and become resident as rows are written).
    public var residentBytes: Int {
        Self.bytes(layers: layers, width: width, tokens: length, elements: elements)
    }

    /// Layer l's key block.
    func keys(_ l: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(storage.pointer) + 2 * l * blockStride
    }

    /// Layer l's value block.
    func values(_ l: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(storage.pointer) + (2 * l + 1) * blockStride
    }

    /// Copies `count` rows of keys and values for layer l, starting at row `at`, from qkv rows.
    func write(layer l: Int, at row: Int, qkv: Tensor, qkvRow: Int, count: Int, keyColumn: Int) {
        precondition(row + count <= capacity, "KV cache of \(capacity) tokens is full")
        let ld = qkv.count / qkv.shape[0]
        let (k, v, qp) = (keys(l), values(l), qkv.pointer)
        for r in 0..<count {
            let (source, token) = ((qkvRow + r) * ld + keyColumn, row + r)
            for f in 0..<width {
                storeCacheElement(
                    qp[source + f], at: k,
                    offset: keyOffset(token: token, feature: f, width: width, elements: elements),
                    elements: elements)
                storeCacheElement(
                    qp[source + width + f], at: v,
                    offset: valueOffset(token: token, column: f, width: width, elements: elements),
                    elements: elements)
            }
        }
    }

    func advance(by count: Int) { length += count }

    /// `count` independent copies holding the same tokens, each with this cache's capacity.
    public func fork(count: Int, capacity newCapacity: Int? = nil) -> [KVCache] {
        (0..<count).map { _ in
            let copy = KVCache(
                layers: layers, width: width, capacity: newCapacity ?? capacity, elements: elements)
            precondition(copy.capacity >= length, "a fork's capacity below the cache's \(length) tokens")
            for l in 0..<layers {
                copy.keys(l).copyMemory(
                    from: keys(l), byteCount: keyBlockCount(tokens: length, width: width) * elements.bytes)
                copy.values(l).copyMemory(from: values(l), byteCount: length * width * elements.bytes)
            }
            copy.length = length
            return copy
        }
    }
}
