import Foundation

/// bfloat16 numbers: a float32's sign, exponent and top 7 mantissa bits, stored as `UInt16` (the
/// layout oneDNN's `dnnl_bf16` and torch's `bfloat16` use).
public enum BFloat16 {
    /// The bf16 nearest to `x`, ties to even, as torch's `.to(torch.bfloat16)`; NaN stays a NaN.
    @inline(__always)
    public static func bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if b & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    @inline(__always)
    public static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// `x` rounded to the nearest bf16, as a float32.
    public static func rounded(_ x: Float) -> Float { float(bits(x)) }

    /// dst[i] = bits(src[i]) for `count` elements, sixteen at a time on both cores.
    public static func convert(
        _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int
    ) {
        let blocks = count / 16
        parallelFor(blocks, minimumPerTask: 4096) { range in
            for block in range {
                let b = UnsafeRawPointer(src + 16 * block).loadUnaligned(as: SIMD16<UInt32>.self)
                let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
                // All ones in NaN lanes (|b| above infinity's bits), from the sign of a difference:
                // a vector compare and `replacing` compiled to a loop over the lanes.
                let nan = SIMD16<UInt32>(repeating: 0) &- ((0x7F80_0000 &- (b & 0x7FFF_FFFF)) &>> 31)
                let result = (rounded & ~nan) | (((b &>> 16) | 0x0040) & nan)
                UnsafeMutableRawPointer(dst + 16 * block).storeBytes(
                    of: SIMD16<UInt16>(truncatingIfNeeded: result), as: SIMD16<UInt16>.self)
            }
        }
        for i in (16 * blocks)..<count { dst[i] = bits(src[i]) }
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
    private var buffers: [BFloat16Buffer] = [BFloat16Buffer(count: 0), BFloat16Buffer(count: 0)]
    private let lock = NSLock()

    /// Runs `body` with the buffers to itself (a caller's conversions stay valid until it returns).
    func withBuffers<R>(_ body: (BFloat16Scratch) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(self)
    }

    /// Slot `slot`'s buffer holding the conversion of `count` floats at `source`.
    func converted(_ slot: Int, _ source: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<UInt16> {
        if buffers[slot].count < count { buffers[slot] = BFloat16Buffer(count: count) }
        BFloat16.convert(source, into: buffers[slot].pointer, count: count)
        return buffers[slot].pointer
    }
}
