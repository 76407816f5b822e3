import Foundation

// Legend: R rows, C normalised width.

/// RMSNorm as transformers' LlamaRMSNorm: y = weight * x / sqrt(mean(x²) + eps).
///
/// x: (R, C), weight: (C) -> y: (R, C); saves rstd: (R) = 1 / sqrt(mean(x²) + eps) for backward.
/// `y` may alias `x`.
public func rmsNormForward(y: Tensor, rstd: Tensor, x: Tensor, weight: Tensor, eps: Float) {
    let C = weight.count
    let R = x.count / C
    precondition(y.count == R * C && rstd.count == R, "rmsNorm: x \(x.shape) y \(y.shape) rstd \(rstd.shape)")
    let (yp, rp, xp, wp) = (y.pointer, rstd.pointer, x.pointer, weight.pointer)
    parallelFor(R, minimumPerTask: 16) { rows in
        for r in rows { rp[r] = rmsNormRow(y: yp + r * C, x: xp + r * C, weight: wp, width: C, eps: eps) }
    }
}

/// Backward of `rmsNormForward`.
///
/// dX = rstd * (weight ⊙ dY) - x * rstd³ * mean(x ⊙ weight ⊙ dY)  (written, or added when `accumulate`);
/// dWeight += Σ_r dY ⊙ x * rstd (skipped when `dWeight` is nil: a frozen weight).
public func rmsNormBackward(
    dX: Tensor, accumulate: Bool = false, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor,
    rstd: Tensor
) {
    let C = weight.count
    let R = x.count / C
    precondition(dX.count == R * C && dY.count == R * C, "rmsNormBackward: shapes disagree")
    let (dxp, dyp, xp, wp, rp) = (dX.pointer, dY.pointer, x.pointer, weight.pointer, rstd.pointer)
    backwardRows(R, width: C, dWeight: dWeight, minimumPerTask: 16) { r, dw in
        rmsNormRowBackward(
            dX: dxp + r * C, dY: dyp + r * C, x: xp + r * C, weight: wp, rstd: rp[r], width: C, dWeight: dw,
            accumulate: accumulate)
    }
}

/// Per-head RMSNorm inside packed rows (Qwen3's q_norm / k_norm), normalising each head of width D.
///
/// Row n of `x` holds `heads` heads of D values starting at column `column`, with `rowStride`
/// elements between rows; `y` has the same layout and may alias `x`. rstd: (N, heads).
public func headRMSNormForward(
    y: Tensor, rstd: Tensor, x: Tensor, weight: Tensor, eps: Float,
    rows N: Int, rowStride: Int, column: Int, heads: Int
) {
    let D = weight.count
    let (yp, rp, xp, wp) = (y.pointer, rstd.pointer, x.pointer, weight.pointer)
    parallelFor(N * heads, minimumPerTask: 16) { range in
        for r in range {
            let base = (r / heads) * rowStride + column + (r % heads) * D
            rp[r] = rmsNormRow(y: yp + base, x: xp + base, weight: wp, width: D, eps: eps)
        }
    }
}

/// Backward of `headRMSNormForward`; `dX` and `dY` share the packed layout and may alias.
public func headRMSNormBackward(
    dX: Tensor, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor, rstd: Tensor,
    rows N: Int, rowStride: Int, column: Int, heads: Int
) {
    let D = weight.count
    let (dxp, dyp, xp, wp, rp) = (dX.pointer, dY.pointer, x.pointer, weight.pointer, rstd.pointer)
    backwardRows(N * heads, width: D, dWeight: dWeight, minimumPerTask: 16) { r, dw in
        let base = (r / heads) * rowStride + column + (r % heads) * D
        rmsNormRowBackward(
            dX: dxp + base, dY: dyp + base, x: xp + base, weight: wp, rstd: rp[r], width: D, dWeight: dw,
            accumulate: false)
    }
}

// MARK: - One row

/// One row of RMSNorm, returning its rstd.
///
/// y = weight ⊙ x · s with s = 1 / sqrt(mean(x²) + eps), over `width` values; y may alias x.
@inline(__always)
private func rmsNormRow(
    y: UnsafeMutablePointer<Float>, x: UnsafeMutablePointer<Float>, weight: UnsafeMutablePointer<Float>,
    width C: Int, eps: Float
) -> Float {
    var sumSquares: Float = 0
    for c in 0..<C { sumSquares += x[c] * x[c] }
    let s = 1 / (sumSquares / Float(C) + eps).squareRoot()
    for c in 0..<C { y[c] = weight[c] * (x[c] * s) }
    return s
}

/// One row of RMSNorm's backward.
///
/// dX (=, or += when `accumulate`) s w⊙dY - x s³ mean(x⊙w⊙dY); dWeight += dY⊙x s. dX may alias dY.
@inline(__always)
private func rmsNormRowBackward(
    dX: UnsafeMutablePointer<Float>, dY: UnsafeMutablePointer<Float>, x: UnsafeMutablePointer<Float>,
    weight: UnsafeMutablePointer<Float>, rstd s: Float, width C: Int, dWeight: UnsafeMutablePointer<Float>?,
    accumulate: Bool
) {
    var dot: Float = 0
    for c in 0..<C { dot += x[c] * weight[c] * dY[c] }
    let k = dot * s * s * s / Float(C)
    if let dWeight { for c in 0..<C { dWeight[c] += dY[c] * x[c] * s } }
    for c in 0..<C {
        let g = dY[c]
        let value = s * weight[c] * g - x[c] * k
        dX[c] = accumulate ? dX[c] + value : value
    }
}

/// Runs `row(r, dWeightPartial)` for r in 0..<count across the cores, each task adding into its own
/// (width) slice of partial weight gradients, then sums the slices into `dWeight`.
private func backwardRows(
    _ count: Int, width: Int, dWeight: Tensor?, minimumPerTask: Int,
    _ row: (Int, UnsafeMutablePointer<Float>?) -> Void
) {
    let tasks = min(coreCount, max(1, count / minimumPerTask))
    guard let dWeight else {
        parallelTasks(tasks) { t in
            for r in (count * t / tasks)..<(count * (t + 1) / tasks) { row(r, nil) }
        }
        return
    }
    let partial = Tensor(zeros: [tasks, width])
    let pp = partial.pointer
    parallelTasks(tasks) { t in
        for r in (count * t / tasks)..<(count * (t + 1) / tasks) { row(r, pp + t * width) }
    }
    for t in 0..<tasks { axpy(width, 1, pp + t * width, dWeight.pointer) }
}
