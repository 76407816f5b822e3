import Foundation

// Legend: N tokens, D head dim, P positions.

/// How rotary frequencies are rescaled for long context (config.json `rope_scaling` / `rope_parameters`).
public enum RoPEScaling: Equatable, Sendable {
    case none
    /// Positions divided by `factor` (transformers' "linear").
    case linear(factor: Double)
    /// Llama 3.1's frequency-dependent scaling (transformers' `_compute_llama3_parameters`).
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
}

/// Rotary position embedding in transformers' rotate-half convention.
///
/// For a head vector x = [x1, x2] (two halves of D/2) at position p with angles θ_i = p * invFreq_i:
/// y1 = x1 cos θ - x2 sin θ, y2 = x2 cos θ + x1 sin θ (matches transformers' `apply_rotary_pos_emb`).
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    /// invFreq: (D/2), in float32 as transformers keeps it.
    public let invFreq: [Float]

    public init(headDim: Int, theta: Double, scaling: RoPEScaling = .none) {
        precondition(headDim % 2 == 0, "RoPE needs an even head dimension, got \(headDim)")
        self.headDim = headDim
        let half = headDim / 2
        var freqs = (0..<half).map { i in
            Float(1.0 / pow(theta, Double(Float(2 * i) / Float(headDim))))
        }
        switch scaling {
        case .none:
            break
        case .linear(let factor):
            freqs = freqs.map { $0 / Float(factor) }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelen = Double(original) / low
            let highWavelen = Double(original) / high
            freqs = freqs.map { f in
                let wavelen = 2 * Double.pi / Double(f)
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return Float(Double(f) / factor) }
                let smooth = (Double(original) / wavelen - low) / (high - low)
                return Float((1 - smooth) * Double(f) / factor + smooth * Double(f))
            }
        }
        invFreq = freqs
    }

    /// cos and sin tables for positions 0..<count: (P, D/2) each.
    public func tables(positions count: Int) -> (cos: [Float], sin: [Float]) {
        let half = headDim / 2
        var cosTable = [Float](repeating: 0, count: count * half)
        var sinTable = [Float](repeating: 0, count: count * half)
        for p in 0..<count {
            for i in 0..<half {
                let angle = Float(p) * invFreq[i]  // float32 product, as transformers computes it
                cosTable[p * half + i] = Float(Foundation.cos(Double(angle)))
                sinTable[p * half + i] = Float(Foundation.sin(Double(angle)))
            }
        }
        return (cosTable, sinTable)
    }
}

/// Rotates, in place, `heads` consecutive heads of width D starting at column 0 of each row.
///
/// x: (N, rowStride) with the heads in its first heads*D columns; positions: (N);
/// cos, sin: (P, D/2) from `RotaryEmbedding.tables`. `inverse` applies the transposed rotation,
/// which is the backward pass: dx1 = dy1 cos + dy2 sin, dx2 = dy2 cos - dy1 sin.
public func ropeForward(
    x: Tensor, rowStride: Int, heads: Int, headDim D: Int, positions: [Int32],
    cos: [Float], sin: [Float], inverse: Bool = false
) {
    let half = D / 2
    let N = positions.count
    precondition(x.count >= N * rowStride, "rope: x \(x.shape) too small for \(N) rows of \(rowStride)")
    let xp = x.pointer
    let sign: Float = inverse ? -1 : 1
    cos.withUnsafeBufferPointer { cosp in
        sin.withUnsafeBufferPointer { sinp in
            positions.withUnsafeBufferPointer { pos in
                parallelFor(N, minimumPerTask: 16) { rows in
                    for n in rows {
                        let p = Int(pos[n])
                        precondition((p + 1) * half <= cosp.count, "position \(p) past the RoPE table")
                        let (c, s) = (cosp.baseAddress! + p * half, sinp.baseAddress! + p * half)
                        for h in 0..<heads {
                            let x1 = xp + n * rowStride + h * D
                            let x2 = x1 + half
                            for i in 0..<half {
                                let (a, b) = (x1[i], x2[i])
                                let si = sign * s[i]
                                x1[i] = a * c[i] - b * si
                                x2[i] = b * c[i] + a * si
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Backward of `ropeForward`: the inverse rotation applied in place to the gradient.
public func ropeBackward(
    dX: Tensor, rowStride: Int, heads: Int, headDim D: Int, positions: [Int32], cos: [Float], sin: [Float]
) {
    ropeForward(
        x: dX, rowStride: rowStride, heads: heads, headDim: D, positions: positions, cos: cos, sin: sin,
        inverse: true)
}
