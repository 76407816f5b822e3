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
        for r in rows {
            let xr = xp + r * C
            let yr = yp + r * C
            var sumSquares: Float = 0
            for c in 0..<C { sumSquares += xr[c] * xr[c] }
            let s = 1 / (sumSquares / Float(C) + eps).squareRoot()
            rp[r] = s
            for c in 0..<C { yr[c] = wp[c] * (xr[c] * s) }
        }
    }
}

/// Backward of `rmsNormForward`.
///
/// dX = rstd * (weight ⊙ dY) - x * rstd³ * mean(x ⊙ weight ⊙ dY)  (written, or added when `accumulate`);
/// dWeight += Σ_r dY ⊙ x * rstd.
public func rmsNormBackward(
    dX: Tensor, accumulate: Bool = false, dWeight: Tensor, dY: Tensor, x: Tensor, weight: Tensor, rstd: Tensor
) {
    let C = weight.count
    let R = x.count / C
    precondition(dX.count == R * C && dY.count == R * C, "rmsNormBackward: shapes disagree")
    let (dxp, dyp, xp, wp, rp) = (dX.pointer, dY.pointer, x.pointer, weight.pointer, rstd.pointer)
    let tasks = min(coreCount, max(1, R / 16))
    let partial = Tensor(zeros: [tasks, C])
    let pp = partial.pointer
    parallelTasks(tasks) { t in
        let dw = pp + t * C
        for r in (R * t / tasks)..<(R * (t + 1) / tasks) {
            let (xr, dyr, dxr) = (xp + r * C, dyp + r * C, dxp + r * C)
            let s = rp[r]
            var dot: Float = 0
            for c in 0..<C { dot += xr[c] * wp[c] * dyr[c] }
            let k = dot * s * s * s / Float(C)
            if accumulate {
                for c in 0..<C { dxr[c] += s * wp[c] * dyr[c] - xr[c] * k }
            } else {
                for c in 0..<C { dxr[c] = s * wp[c] * dyr[c] - xr[c] * k }
            }
            for c in 0..<C { dw[c] += dyr[c] * xr[c] * s }
        }
    }
    for t in 0..<tasks { axpy(C, 1, pp + t * C, dWeight.pointer) }
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
    parallelFor(N, minimumPerTask: 8) { rows in
        for n in rows {
            for h in 0..<heads {
                let base = n * rowStride + column + h * D
                let (xr, yr) = (xp + base, yp + base)
                var sumSquares: Float = 0
                for d in 0..<D { sumSquares += xr[d] * xr[d] }
                let s = 1 / (sumSquares / Float(D) + eps).squareRoot()
                rp[n * heads + h] = s
                for d in 0..<D { yr[d] = wp[d] * (xr[d] * s) }
            }
        }
    }
}

/// Backward of `headRMSNormForward`; `dX` and `dY` share the packed layout and may alias.
public func headRMSNormBackward(
    dX: Tensor, dWeight: Tensor, dY: Tensor, x: Tensor, weight: Tensor, rstd: Tensor,
    rows N: Int, rowStride: Int, column: Int, heads: Int
) {
    let D = weight.count
    let (dxp, dyp, xp, wp, rp) = (dX.pointer, dY.pointer, x.pointer, weight.pointer, rstd.pointer)
    let tasks = min(coreCount, max(1, N / 8))
    let partial = Tensor(zeros: [tasks, D])
    let pp = partial.pointer
    parallelTasks(tasks) { t in
        let dw = pp + t * D
        for n in (N * t / tasks)..<(N * (t + 1) / tasks) {
            for h in 0..<heads {
                let base = n * rowStride + column + h * D
                let (xr, dyr, dxr) = (xp + base, dyp + base, dxp + base)
                let s = rp[n * heads + h]
                var dot: Float = 0
                for d in 0..<D { dot += xr[d] * wp[d] * dyr[d] }
                let k = dot * s * s * s / Float(D)
                for d in 0..<D {
                    let g = dyr[d]
                    dw[d] += g * xr[d] * s
                    dxr[d] = s * wp[d] * g - xr[d] * k
                }
            }
        }
    }
    for t in 0..<tasks { axpy(D, 1, pp + t * D, dWeight.pointer) }
}
