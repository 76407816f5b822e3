import Foundation

// Legend: P parameters (one flat buffer).

/// One AdamW step over a flat parameter buffer, as PyTorch's `torch.optim.AdamW` (decoupled decay).
///
///     p ← p - lr·λ·p                       (only where `decay` is true)
///     m ← β1·m + (1 - β1)·g
///     v ← β2·v + (1 - β2)·g²
///     p ← p - lr · (m / (1 - β1^t)) / (√(v / (1 - β2^t)) + ε)
///
/// values, gradients, m, v: (P). `decayRanges` lists the element ranges that get weight decay
/// (Hugging Face's Trainer exempts biases and norm weights). `step` t counts from 1.
public func adamWStep(
    values: Tensor, gradients: Tensor, m: Tensor, v: Tensor, decayRanges: [Range<Int>], step t: Int,
    learningRate lr: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
) {
    let P = values.count
    precondition(gradients.count == P && m.count == P && v.count == P, "adamW: buffers of different sizes")
    precondition(t >= 1, "adamW: steps count from 1")
    let correction1 = 1 - Float(Foundation.pow(Double(beta1), Double(t)))
    let correction2 = 1 - Float(Foundation.pow(Double(beta2), Double(t)))
    let stepSize = lr / correction1
    let rootCorrection2 = correction2.squareRoot()
    if weightDecay != 0 {
        for range in decayRanges {
            precondition(
                range.lowerBound >= 0 && range.upperBound <= P, "adamW: decay range outside the buffer")
            let keep = 1 - lr * weightDecay
            let p = values.pointer
            parallelFor(range.count, minimumPerTask: 1 << 16) { chunk in
                for i in chunk { p[range.lowerBound + i] *= keep }
            }
        }
    }
    let (p, g, mp, vp) = (values.pointer, gradients.pointer, m.pointer, v.pointer)
    parallelFor(P, minimumPerTask: 1 << 16) { chunk in
        for i in chunk {
            let gi = g[i]
            let mi = beta1 * mp[i] + (1 - beta1) * gi
            let vi = beta2 * vp[i] + (1 - beta2) * gi * gi
            mp[i] = mi
            vp[i] = vi
            p[i] -= stepSize * mi / (vi.squareRoot() / rootCorrection2 + epsilon)
        }
    }
}

/// Σ x², accumulated in Double per chunk so that millions of small squares lose nothing.
public func sumOfSquares(_ x: Tensor) -> Double {
    let n = x.count
    let chunks = max(1, min(64, n / (1 << 16)))
    var partial = [Double](repeating: 0, count: chunks)
    let p = x.pointer
    partial.withUnsafeMutableBufferPointer { out in
        let out = out.baseAddress!
        parallelFor(chunks) { range in
            for c in range {
                let (start, end) = (c * n / chunks, (c + 1) * n / chunks)
                var sum: Double = 0
                var i = start
                while i + 16 <= end {
                    let v = p.loadSIMD16(at: i)
                    sum += Double((v * v).sum())
                    i += 16
                }
                while i < end {
                    sum += Double(p[i] * p[i])
                    i += 1
                }
                out[c] = sum
            }
        }
    }
    return partial.reduce(0, +)
}

/// x *= alpha.
public func scale(_ x: Tensor, by alpha: Float) {
    let p = x.pointer
    parallelFor(x.count, minimumPerTask: 1 << 16) { chunk in
        for i in chunk { p[i] *= alpha }
    }
}
