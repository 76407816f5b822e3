import Tensors

/// Keys and values of one sequence's past tokens for every layer, after RoPE.
///
/// A `final class`: it owns a buffer of layers x capacity x 2 x (K*D) values, float32, or bf16 for
/// a bf16 model (as vLLM's and transformers' caches hold a bf16 model's: half the memory, and
/// half the bytes decoding's attention reads). A group's prompt is prefilled once and its cache
/// copied (`fork`) into each of the group's completions.
///
///     let (logits, caches) = model.prefill([prompt], capacity: prompt.count + maxNewTokens)
///     let copies = caches[0].fork(count: 8)
public final class KVCache {
    public let capacity: Int
    public private(set) var length = 0
    let layers: Int
    let width: Int  // K*D
    /// Keys and values held in bf16 (`halves`), else in float32 (`floats`).
    public let bf16: Bool
    private let floats: TensorStorage?
    private let halves: BFloat16Buffer?

    init(layers: Int, width: Int, capacity: Int, bf16: Bool = false) {
        self.layers = layers
        self.width = width
        self.capacity = capacity
        self.bf16 = bf16
        let count = layers * 2 * capacity * width
        (floats, halves) = bf16 ? (nil, BFloat16Buffer(count: count)) : (TensorStorage(count: count), nil)
    }

    /// Bytes held by this cache.
    public var byteCount: Int { layers * 2 * capacity * width * (bf16 ? 2 : 4) }

    /// Where layer l's keys (`value` 0) or values (1) start, in elements.
    private func offset(_ l: Int, _ value: Int) -> Int { (2 * l + value) * capacity * width }

    /// Rows 0..<rows of layer l's keys: (rows, K*D), float32 caches only.
    func keys(_ l: Int, rows: Int) -> Tensor {
        Tensor(storage: floats!, offset: offset(l, 0), shape: [rows, width])
    }

    func values(_ l: Int, rows: Int) -> Tensor {
        Tensor(storage: floats!, offset: offset(l, 1), shape: [rows, width])
    }

    /// Layer l's keys and values in bf16, (capacity, K*D) rows each; bf16 caches only.
    func bf16Keys(_ l: Int) -> UnsafePointer<UInt16> { UnsafePointer(halves!.pointer + offset(l, 0)) }
    func bf16Values(_ l: Int) -> UnsafePointer<UInt16> { UnsafePointer(halves!.pointer + offset(l, 1)) }

    /// Copies `count` rows of keys and values for layer l, starting at row `at`, from qkv rows.
    func write(layer l: Int, at row: Int, qkv: Tensor, qkvRow: Int, count: Int, keyColumn: Int) {
        precondition(row + count <= capacity, "KV cache of \(capacity) tokens is full")
        let ld = qkv.count / qkv.shape[0]
        for r in 0..<count {
            let source = qkv.pointer + (qkvRow + r) * ld + keyColumn
            for value in 0..<2 {
                let at = offset(l, value) + (row + r) * width
                if let halves {
                    BFloat16.convert(source + value * width, into: halves.pointer + at, count: width)
                } else {
                    (floats!.pointer + at).update(from: source + value * width, count: width)
                }
            }
        }
    }

    func advance(by count: Int) { length += count }

    /// `count` independent copies holding the same tokens, each with this cache's capacity.
    public func fork(count: Int, capacity newCapacity: Int? = nil) -> [KVCache] {
        (0..<count).map { _ in
            let copy = KVCache(layers: layers, width: width, capacity: newCapacity ?? capacity, bf16: bf16)
            precondition(copy.capacity >= length, "a fork of \(copy.capacity) tokens cannot hold \(length)")
            for l in 0..<layers {
                for value in 0..<2 {
                    let (from, to, n) = (offset(l, value), copy.offset(l, value), length * width)
                    if let halves {
                        (copy.halves!.pointer + to).update(from: halves.pointer + from, count: n)
                    } else {
                        (copy.floats!.pointer + to).update(from: floats!.pointer + from, count: n)
                    }
                }
            }
            copy.length = length
            return copy
        }
    }
}
