import Foundation

/// Owns one 64-byte-aligned, zero-initialised Float32 buffer.
///
/// A `final class` so that a buffer of several gigabytes is never copied by accident.
public final class TensorStorage: @unchecked Sendable {
    package let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Bytes mapped on their own (`mapped` storage), else 0.
    private let mappedBytes: Int

    public init(count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        mappedBytes = 0
    }

    /// Zeroed storage in pages of its own, mapped from the system and returned to it on release.
    ///
    /// For buffers made and dropped by the hundred whose lifetimes interleave (KV caches): from the
    /// C heap they fragment it, since glibc's mmap threshold rises to the largest block freed and
    /// then serves such sizes from the heap, which keeps their freed pages. Pages become resident
    /// only when written (`pageBytes(spanning:)` counts them).
    public init(mappedCount count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            raw != MAP_FAILED
        else {
            fatalError("out of memory mapping \(bytes) bytes")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        mappedBytes = bytes
    }

    /// The bytes of whole pages that elements `range` touch: what writing them makes resident in
    /// mapped storage (whose first element starts a page).
    public static func pageBytes(spanning range: Range<Int>) -> Int {
        guard !range.isEmpty else { return 0 }
        let page = Self.pageSize
        let first = range.lowerBound * MemoryLayout<Float>.stride / page
        let last = (range.upperBound * MemoryLayout<Float>.stride - 1) / page
        return (last - first + 1) * page
    }

    public static let pageSize = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))

    deinit {
        if mappedBytes > 0 {
            munmap(UnsafeMutableRawPointer(pointer), mappedBytes)
        } else {
            free(pointer)
        }
    }
}

/// A view of `shape` elements, row-major and contiguous, starting at `offset` in a storage.
///
/// Views have reference semantics, like NumPy arrays: writing through one view is seen by every
/// other view of the same storage.
///
///     let x = Tensor(zeros: [4, 8])
///     x[0] = 1
///     let row1 = x.view(offset: 8, shape: [8])
public struct Tensor: @unchecked Sendable {
    public let storage: TensorStorage
    public let offset: Int
    public let shape: [Int]

    public init(zeros shape: [Int]) {
        let count = shape.reduce(1, *)
        storage = TensorStorage(count: count)
        offset = 0
        self.shape = shape
    }

    public init(_ values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    public init(storage: TensorStorage, offset: Int, shape: [Int]) {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= storage.count, "view outside its storage")
        self.storage = storage
        self.offset = offset
        self.shape = shape
    }

    public var count: Int { shape.reduce(1, *) }
    package var pointer: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// A view of `shape` elements starting `offset` elements into this one.
    public func view(offset: Int = 0, shape: [Int]) -> Tensor {
        precondition(offset + shape.reduce(1, *) <= count, "view \(shape) at \(offset) outside \(self.shape)")
        return Tensor(storage: storage, offset: self.offset + offset, shape: shape)
    }

    /// Rows `range` of a tensor whose first axis is rows.
    public func rows(_ range: Range<Int>) -> Tensor {
        let width = count / shape[0]
        return view(offset: range.lowerBound * width, shape: [range.count] + shape.dropFirst())
    }

    public subscript(index: Int) -> Float {
        get { pointer[index] }
        nonmutating set { pointer[index] = newValue }
    }

    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        pointer.update(from: other.pointer, count: count)
    }

    /// A new tensor with its own storage and the same values.
    public func clone() -> Tensor {
        let result = Tensor(zeros: shape)
        result.copy(from: self)
        return result
    }

    /// self += alpha * other.
    public func add(_ other: Tensor, scale alpha: Float = 1) {
        precondition(other.count == count, "add of \(other.shape) to \(shape)")
        axpy(count, alpha, other.pointer, pointer)
    }
}

/// A `shape` view of `storage`, grown first when it is too small (the old buffer freed before the
/// new one is made): for buffers kept between calls, since fresh pages cost more than the work.
public func reuse(_ storage: inout TensorStorage, shape: [Int]) -> Tensor {
    let count = shape.reduce(1, *)
    if storage.count < count {
        storage = TensorStorage(count: 0)
        storage = TensorStorage(count: count)
    }
    return Tensor(storage: storage, offset: 0, shape: shape)
}

/// y[i] += alpha * x[i] for i in 0..<n, vectorised.
@inline(__always)
func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    for i in 0..<n { y[i] += alpha * x[i] }
}
