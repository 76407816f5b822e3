import Foundation

/// Vectorised exp for SIMD16<Float>, accurate to about 2 ulp over the float range.
///
/// Range reduction x = n ln2 + r with ln2 split in two parts (Cody-Waite), then the Cephes
/// `expf` polynomial for e^r on |r| <= ln2/2, and 2^n built from the exponent bits. n is rounded
/// by adding 1.5·2²³ (the float's mantissa then holds n), which needs only bit casts: Swift's
/// generic float-to-int SIMD conversion is scalar and was 30% of a training step. Inputs below
/// -87.3 give 0 (so a masked score of -infinity contributes nothing to a softmax).
@inline(__always)
public func simdExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let clamped = simdMin(simdMax(x, SIMD16(repeating: -87.3)), SIMD16(repeating: 88.7))
    let magic = SIMD16<Float>(repeating: 12_582_912)  // 1.5 * 2^23
    let shifted = clamped * 1.442_695_04 + magic
    let n = shifted - magic
    var r = clamped - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let er = p * (r * r) + r + 1
    let integer =
        unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
    let scale = unsafeBitCast((integer &+ 127) &<< 23, to: SIMD16<Float>.self)
    let result = er * scale
    return result.replacing(with: 0, where: x .< -87.3)
}

/// The lanes' sum by halves (four vector adds): the standard library's `sum()` adds the sixteen
/// lanes one after another, and was most of a decode step's attention.
@inline(__always)
public func horizontalSum(_ v: SIMD16<Float>) -> Float {
    let eight = v.lowHalf + v.highHalf
    let four = eight.lowHalf + eight.highHalf
    let two = four.lowHalf + four.highHalf
    return two[0] + two[1]
}

/// Lane-wise maximum, always inlined (the standard library's generic `pointwiseMax` was left as
/// a call in the sampling loop).
@inline(__always)
public func simdMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    a.replacing(with: b, where: a .< b)
}

/// Lane-wise minimum, always inlined.
@inline(__always)
public func simdMin(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    a.replacing(with: b, where: b .< a)
}

/// Scalar exp through the same vector path, for loop tails.
@inline(__always)
public func fastExp(_ x: Float) -> Float { simdExp(SIMD16(repeating: x))[0] }

extension UnsafeMutablePointer where Pointee == Float {
    @inline(__always) func loadSIMD16(at i: Int) -> SIMD16<Float> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD16<Float>.self)
    }
    @inline(__always) func storeSIMD16(_ v: SIMD16<Float>, at i: Int) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}

extension UnsafePointer where Pointee == Float {
    @inline(__always) func loadSIMD16(at i: Int) -> SIMD16<Float> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD16<Float>.self)
    }
}

/// max over x[0..<n].
@inline(__always)
func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = SIMD16<Float>(repeating: -.infinity)
    var i = 0
    while i + 16 <= n {
        m = simdMax(m, x.loadSIMD16(at: i))
        i += 16
    }
    var result = m.max()
    while i < n {
        result = max(result, x[i])
        i += 1
    }
    return result
}

/// sum of exp(scale * x[i] - shift) over x[0..<n]; with `kept`, each term is also stored there in
/// bf16.
@inline(__always)
func sumExp(
    _ x: UnsafePointer<Float>, _ n: Int, scale: Float, shift: Float,
    keeping kept: UnsafeMutablePointer<UInt16>? = nil
) -> Float {
    var s = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= n {
        let e = simdExp(x.loadSIMD16(at: i) * scale - shift)
        if let kept { BFloat16.store(e, at: kept + i) }
        s += e
        i += 16
    }
    var result = horizontalSum(s)
    while i < n {
        let e = fastExp(scale * x[i] - shift)
        if let kept { kept[i] = BFloat16.bits(e) }
        result += e
        i += 1
    }
    return result
}

/// x[i] = exp(x[i] - shift) over x[0..<n], in place; returns their sum.
@inline(__always)
func exponentiate(_ x: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    var s = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= n {
        let e = simdExp(x.loadSIMD16(at: i) - shift)
        x.storeSIMD16(e, at: i)
        s += e
        i += 16
    }
    var result = horizontalSum(s)
    while i < n {
        x[i] = fastExp(x[i] - shift)
        result += x[i]
        i += 1
    }
    return result
}

/// Softmax of `row / temperature` in place, vectorised; returns the log-sum-exp of `row / temperature`
/// (so log p[i] = row[i] / temperature - result, computed from the original row).
public func softmaxInPlace(_ row: inout [Float], temperature: Float) -> Float {
    precondition(temperature > 0, "softmax needs a positive temperature")
    let inverse = 1 / temperature
    return row.withUnsafeMutableBufferPointer { buffer in
        let p = buffer.baseAddress!
        let n = buffer.count
        let shift = rowMax(p, n) * inverse
        let total = sumExp(p, n, scale: inverse, shift: shift)
        softmaxRowScaled(p, count: n, scale: inverse, shift: shift, multiplier: 1 / total)
        return shift + Foundation.log(total)
    }
}

/// Draws a token from softmax(row / temperature) with one uniform number, in token order, without
/// writing the probabilities; returns it with the log-sum-exp of `row / temperature`.
///
/// Two passes find the maximum and the normaliser; the third recomputes exp 16 values at a time and
/// stops in the chunk where the running sum passes `u` times the normaliser (half the row, on
/// average). The same draw as `softmaxInPlace` then `draw(probabilities:)` up to rounding.
public func drawFromSoftmax(
    _ row: UnsafePointer<Float>, count n: Int, temperature: Float, uniform u: Float
) -> (token: Int32, logSumExp: Float) {
    precondition(temperature > 0 && n > 0, "drawing needs a positive temperature and a row")
    let inverse = 1 / temperature
    let shift = rowMax(row, n) * inverse
    let total = sumExp(row, n, scale: inverse, shift: shift)
    let logSumExp = shift + Foundation.log(total)
    let target = u * total
    var cumulative: Float = 0
    var i = 0
    while i + 16 <= n {
        let e = simdExp(row.loadSIMD16(at: i) * inverse - shift)
        let chunk = horizontalSum(e)
        if cumulative + chunk > target {
            for k in 0..<16 {
                cumulative += e[k]
                if target < cumulative { return (Int32(i + k), logSumExp) }
            }
        } else {
            cumulative += chunk
        }
        i += 16
    }
    while i < n {
        cumulative += fastExp(row[i] * inverse - shift)
        if target < cumulative { return (Int32(i), logSumExp) }
        i += 1
    }
    // Rounding left the target past the end: the last token with any probability.
    var last = n - 1
    while last > 0 && fastExp(row[last] * inverse - shift) == 0 { last -= 1 }
    return (Int32(last), logSumExp)
}

/// log Σ exp(row[i] / temperature), vectorised.
public func logSumExp(_ row: ArraySlice<Float>, temperature: Float) -> Float {
    row.withUnsafeBufferPointer { buffer in
        let inverse = 1 / temperature
        let shift = rowMax(buffer.baseAddress!, buffer.count) * inverse
        return shift + Foundation.log(sumExp(buffer.baseAddress!, buffer.count, scale: inverse, shift: shift))
    }
}
