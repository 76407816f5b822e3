/// bfloat16 bits -> Float: the upper 16 bits of an IEEE float.
@inline(__always)
public func bfloat16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// Float -> bfloat16 bits, rounding to nearest even as torch's `.to(torch.bfloat16)`; NaN stays NaN.
@inline(__always)
public func floatToBFloat16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(bits >> 16) | 0x40 }
    let roundingBias = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16((bits &+ roundingBias) >> 16)
}

/// IEEE half bits -> Float.
@inline(__always)
public func float16ToFloat(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = Int((bits >> 10) & 0x1F)
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        // Subnormal half: mantissa * 2^-24.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

/// Float -> IEEE half bits, rounding to nearest even; overflow gives infinity.
@inline(__always)
public func floatToFloat16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let magnitude = abs(value)
    if value.isNaN { return sign | 0x7E00 }
    if magnitude >= 65520 { return sign | 0x7C00 }
    if magnitude < 0x1p-14 {
        // Subnormal or zero: round magnitude / 2^-24 to an integer, ties to even.
        let scaled = (magnitude * 0x1p24).rounded(.toNearestOrEven)
        return sign | UInt16(scaled)
    }
    let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
    var mantissa = bits & 0x7F_FFFF
    var half = UInt32(exponent) << 10 | (mantissa >> 13)
    mantissa &= 0x1FFF
    if mantissa > 0x1000 || (mantissa == 0x1000 && half & 1 == 1) { half += 1 }
    return sign | UInt16(half)
}
