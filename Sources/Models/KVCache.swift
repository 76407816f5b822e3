import Tensors

/// Keys and values of one sequence's past tokens for every layer, after RoPE.
///
/// A `final class`: it owns a buffer of layers x capacity x 2 x (K*D) floats. A group's prompt is
/// prefilled once and its cache copied (`fork`) into each of the group's completions.
///
///     let (logits, caches) = model.prefill([prompt], capacity: prompt.count + maxNewTokens)
///     let copies = caches[0].fork(count: 8)
public final class KVCache {
    public let capacity: Int
    public private(set) var length = 0
    let layers: Int
    let width: Int  // K*D
    /// Floats from one layer's keys (or values) to the next block: capacity x width rounded up to
    /// whole pages, so that each block's rows fill pages of their own.
    let blockStride: Int
    private let storage: TensorStorage

    init(layers: Int, width: Int, capacity: Int) {
        self.layers = layers
        self.width = width
        self.capacity = capacity
        let pageFloats = TensorStorage.pageSize / MemoryLayout<Float>.stride
        blockStride = (capacity * width + pageFloats - 1) / pageFloats * pageFloats
        storage = TensorStorage(mappedCount: layers * 2 * blockStride)
    }

    /// The most bytes a cache of `tokens` rows makes resident: whole pages for each layer's keys
    /// and values.
    public static func bytes(layers: Int, width: Int, tokens: Int) -> Int {
        layers * 2 * TensorStorage.pageBytes(spanning: 0..<(tokens * width))
    }

    /// Bytes this cache maps (its capacity, in whole pages per block; resident as rows are written).
    public var byteCount: Int { storage.count * MemoryLayout<Float>.stride }

    /// Bytes of this cache resident now: the pages its `length` rows of keys and values touch
    /// (a cache's pages are mapped on their own and become resident as rows are written).
    public var residentBytes: Int { Self.bytes(layers: layers, width: width, tokens: length) }

    /// Rows 0..<rows of layer l's keys: (rows, K*D).
    func keys(_ l: Int, rows: Int) -> Tensor {
        Tensor(storage: storage, offset: (2 * l) * blockStride, shape: [rows, width])
    }

    func values(_ l: Int, rows: Int) -> Tensor {
        Tensor(storage: storage, offset: (2 * l + 1) * blockStride, shape: [rows, width])
    }

    /// Copies `count` rows of keys and values for layer l, starting at row `at`, from qkv rows.
    func write(layer l: Int, at row: Int, qkv: Tensor, qkvRow: Int, count: Int, keyColumn: Int) {
        precondition(row + count <= capacity, "KV cache of \(capacity) tokens is full")
        let ld = qkv.count / qkv.shape[0]
        let (k, v) = (keys(l, rows: capacity), values(l, rows: capacity))
        for r in 0..<count {
            let source = (qkvRow + r) * ld + keyColumn
            k.view(offset: (row + r) * width, shape: [width]).copy(
                from: qkv.view(offset: source, shape: [width]))
            v.view(offset: (row + r) * width, shape: [width]).copy(
                from: qkv.view(offset: source + width, shape: [width]))
        }
    }

    func advance(by count: Int) { length += count }

    /// `count` independent copies holding the same tokens, each with this cache's capacity.
    public func fork(count: Int, capacity newCapacity: Int? = nil) -> [KVCache] {
        (0..<count).map { _ in
            let copy = KVCache(layers: layers, width: width, capacity: newCapacity ?? capacity)
            for l in 0..<layers {
                copy.keys(l, rows: length).copy(from: keys(l, rows: length))
                copy.values(l, rows: length).copy(from: values(l, rows: length))
            }
            copy.length = length
            return copy
        }
    }
}
