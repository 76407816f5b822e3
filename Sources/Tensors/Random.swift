/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, seedable generator.
///
/// Every random draw in this project comes from an explicit seed, so runs are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal by Box-Muller.
    public mutating func nextNormal() -> Float {
        let u1 = max(nextUniform(), 0x1p-24)
        let u2 = nextUniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
    }
}

@inline(__always) private func _log(_ x: Float) -> Float { Float(log(Double(x))) }
@inline(__always) private func _cos(_ x: Float) -> Float { Float(cos(Double(x))) }
#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif
