import Foundation

/// bfloat16 numbers: a float32's sign, exponent and top 7 mantissa bits, stored as `UInt16` (the
/// layout oneDNN's `dnnl_bf16` and torch's `bfloat16` use).
public enum BFloat16 {
    /// The bf16 nearest to `x`, ties to even, as torch's `.to(torch.bfloat16)`; NaN stays a NaN.
    @inline(__always)
    public static func bits(_ x: Float) -> UInt16 { bits(ofPattern: x.bitPattern) }

    /// `bits` of a float32's bit pattern, without branches, so loops of it vectorise (AVX-512:
    /// sixteen lanes rounded, NaNs picked by a mask, narrowed by one `vpmovdw`).
    @inline(__always)
    static func bits(ofPattern b: UInt32) -> UInt16 {
        let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
        let isNaN = b & 0x7FFF_FFFF > 0x7F80_0000
        return UInt16(truncatingIfNeeded: isNaN ? (b &>> 16) | 0x0040 : rounded)
    }

    @inline(__always)
    public static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// `x` rounded to the nearest bf16, as a float32.
    public static func rounded(_ x: Float) -> Float { float(bits(x)) }

    /// dst[i] = bits(src[i]) for `count` elements, on both cores.
    ///
    /// A plain loop, which the compiler vectorises: the SIMD types' lane conversions
    /// (`SIMD16<UInt16>(truncatingIfNeeded:)`, `evenHalf`) stayed calls narrowing lane by lane.
    public static func convert(
        _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int
    ) {
        let patterns = UnsafeRawPointer(src).assumingMemoryBound(to: UInt32.self)
        parallelFor(count, minimumPerTask: 65536) { range in
            for i in range { dst[i] = bits(ofPattern: patterns[i]) }
        }
    }

    /// Stores the bf16 nearest to each of the sixteen values at `dst` (as `bits`).
    @inline(__always)
    static func store(_ v: SIMD16<Float>, at dst: UnsafeMutablePointer<UInt16>) {
        withUnsafeBytes(of: v) { raw in
            let patterns = raw.baseAddress!.assumingMemoryBound(to: UInt32.self)
            for i in 0..<16 { dst[i] = bits(ofPattern: patterns[i]) }
        }
    }
}

/// A buffer of bf16 numbers, 64-byte aligned.
public final class BFloat16Buffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<UInt16>
    public let count: Int

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 2, alignment: 64)
        pointer = raw.bindMemory(to: UInt16.self, capacity: max(count, 1))
    }

    /// The bf16 nearest to each of `source`'s values.
    public convenience init(rounding source: Tensor) {
        self.init(count: source.count)
        BFloat16.convert(source.pointer, into: pointer, count: source.count)
    }

    deinit { pointer.deallocate() }

    public var bytes: Int { 2 * count }
}

/// Reusable bf16 buffers for the operands a matmul converts on the way in (activations and their
/// gradients), kept between calls: fresh pages for every call cost more than the conversion.
final class BFloat16Scratch: @unchecked Sendable {
    static let shared = BFloat16Scratch()
    private var buffers = [BFloat16Buffer(count: 0), BFloat16Buffer(count: 0), BFloat16Buffer(count: 0)]
    private let lock = NSLock()

    /// Runs `body` with the buffers to itself (a caller's conversions stay valid until it returns).
    func withBuffers<R>(_ body: (BFloat16Scratch) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(self)
    }

    /// Slot `slot`'s buffer holding the conversion of `count` floats at `source`.
    func converted(_ slot: Int, _ source: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<UInt16> {
        let pointer = buffer(slot, count: count)
        BFloat16.convert(source, into: pointer, count: count)
        return pointer
    }

    /// Slot `slot`'s buffer, at least `count` values long.
    func buffer(_ slot: Int, count: Int) -> UnsafeMutablePointer<UInt16> {
        if buffers[slot].count < count { buffers[slot] = BFloat16Buffer(count: count) }
        return buffers[slot].pointer
    }
}

/// A weight W (O, I) of `y = x Wᵀ` in bf16, held in the layouts asked for: row-major, which the
/// backward's dX = dY W reads, and prepacked in oneDNN's blocked format, which its forward kernels
/// read 1.15-1.4x faster at decoding's few rows (about 5% at training's thousands).
///
/// Where packing is unavailable the row-major layout stands in for it.
public final class BFloat16Weight: @unchecked Sendable {
    public struct Layouts: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let rowMajor = Layouts(rawValue: 1)
        public static let packed = Layouts(rawValue: 2)
    }

    public let outputs: Int
    public let inputs: Int
    /// (O, I) row-major, when asked for (or when packing is unavailable).
    public let rowMajor: BFloat16Buffer?
    /// The packed layout's bytes, 64-byte aligned, when asked for and available.
    let packed: UnsafeMutableRawPointer?
    private let packedBytes: Int

    /// Storage for the layouts; `update(from:)` fills it.
    public init(outputs: Int, inputs: Int, layouts: Layouts) {
        self.outputs = outputs
        self.inputs = inputs
        let packedBytes =
            layouts.contains(.packed) ? BFloat16Matmul.packedBytes(outputs: outputs, inputs: inputs) : nil
        self.packedBytes = packedBytes ?? 0
        packed = packedBytes.map { UnsafeMutableRawPointer.allocate(byteCount: $0, alignment: 64) }
        rowMajor =
            layouts.contains(.rowMajor) || packedBytes == nil ? BFloat16Buffer(count: outputs * inputs) : nil
    }

    /// The bf16 nearest to each of `source`'s values (O, I), in the given layouts.
    public convenience init(rounding source: Tensor, layouts: Layouts = .rowMajor) {
        precondition(source.shape.count == 2, "a bf16 weight is a matrix, got \(source.shape)")
        self.init(outputs: source.shape[0], inputs: source.shape[1], layouts: layouts)
        update(from: source.pointer)
    }

    deinit { packed?.deallocate() }

    /// Rounds the float32 weight at `source` (O, I) into every layout held.
    public func update(from source: UnsafePointer<Float>) {
        let count = outputs * inputs
        if let rowMajor {
            BFloat16.convert(source, into: rowMajor.pointer, count: count)
            if let packed { BFloat16Matmul.pack(self, from: rowMajor.pointer, into: packed) }
        } else if let packed {
            let staging = BFloat16Buffer(count: count)
            BFloat16.convert(source, into: staging.pointer, count: count)
            BFloat16Matmul.pack(self, from: staging.pointer, into: packed)
        }
    }

    /// The layouts held.
    public var layouts: Layouts {
        var held: Layouts = []
        if rowMajor != nil { held.insert(.rowMajor) }
        if packed != nil { held.insert(.packed) }
        return held
    }

    public var bytes: Int { (rowMajor?.bytes ?? 0) + packedBytes }
}
