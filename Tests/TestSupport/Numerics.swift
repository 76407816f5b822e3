import Foundation
import Tensors

/// Deterministic pseudo-random floats in [-scale, scale) (SplitMix64), so tests need no global RNG.
public func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Float(z >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}

/// The largest absolute difference and its index, for failure messages that say where.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> (diff: Float, index: Int) {
    precondition(a.count == b.count, "comparing \(a.count) values with \(b.count)")
    var worst: (Float, Int) = (0, 0)
    for i in a.indices where !(abs(a[i] - b[i]) <= worst.0) { worst = (abs(a[i] - b[i]), i) }
    return worst
}

/// Relative error ‖a - b‖∞ / max(‖b‖∞, floor), the measure used for gradient tensors.
public func relativeError(_ a: [Float], _ b: [Float], floor: Float = 1e-6) -> Float {
    let (diff, _) = maxAbsDiff(a, b)
    let scale = max(b.map(abs).max() ?? 0, floor)
    return diff / scale
}

/// Central finite-difference gradient of a scalar function at `x`, in Float32 steps of `h`.
///
/// With `indices`, only those entries are computed (the rest stay 0); compare them with `at:`.
public func numericGradient(
    _ x: [Float], h: Float = 1e-2, indices: [Int]? = nil, _ f: ([Float]) -> Double
) -> [Float] {
    var x = x
    var grad = [Float](repeating: 0, count: x.count)
    for i in indices ?? Array(x.indices) {
        let saved = x[i]
        x[i] = saved + h
        let plus = f(x)
        x[i] = saved - h
        let minus = f(x)
        x[i] = saved
        grad[i] = Float((plus - minus) / Double(2 * h))
    }
    return grad
}

/// Σ w ⊙ y in Double: the scalar loss whose gradient the kernel tests check.
public func weightedSum(_ y: [Float], _ w: [Float]) -> Double {
    zip(y, w).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// Every `stride`-th index of 0..<count, offset by `phase`: a deterministic sample for large checks.
public func sampledIndices(_ count: Int, stride step: Int, phase: Int = 0) -> [Int] {
    Array(Swift.stride(from: phase % step, to: count, by: step))
}

/// Picks `indices` out of `values`.
public func pick(_ values: [Float], at indices: [Int]) -> [Float] { indices.map { values[$0] } }
