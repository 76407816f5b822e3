import Foundation

/// How the sampler/trainer mismatch is corrected: TRL's `vllm_importance_sampling_mode`.
public enum ImportanceSamplingMode: String, Sendable, CaseIterable, Codable {
    /// Each token's ratio clipped to [clip_min, clip_max].
    case tokenTruncate = "token_truncate"
    /// Each token's ratio, zero outside [clip_min, clip_max].
    case tokenMask = "token_mask"
    /// One ratio per sequence (the product of its tokens'), clipped, on all its tokens.
    case sequenceTruncate = "sequence_truncate"
    /// One ratio per sequence, zero (the sequence leaves the loss) outside [clip_min, clip_max].
    case sequenceMask = "sequence_mask"

    var perSequence: Bool { self == .sequenceTruncate || self == .sequenceMask }
}

/// Truncated importance sampling between the sampler and the trainer (TRL's
/// `vllm_importance_sampling_correction`): the sampler's log-probs (decoding against a KV cache,
/// possibly in another precision) are not exactly the ones the trainer recomputes, so each token's
/// surrogate loss is weighted by ρ = exp(old_logp - sampling_logp), bounded as `mode` says.
public struct SamplingCorrection: Sendable, Equatable {
    public var mode = ImportanceSamplingMode.sequenceMask
    public var clipMin: Float?
    public var clipMax: Float? = 3

    public init() {}

    /// Per-token weights for tokens flat over sequences of `lengths`; masked tokens get 1 and count
    /// in no sum (TRL zeroes their difference).
    public func weights(old: [Float], sampled: [Float], lengths: [Int], mask: [Float]) -> [Float] {
        precondition(
            old.count == sampled.count && old.count == mask.count, "samplingCorrection: token counts")
        let low = clipMin ?? -.infinity
        let high = clipMax ?? .infinity
        func bound(_ ratio: Float) -> Float {
            switch mode {
            case .tokenTruncate, .sequenceTruncate: return min(max(ratio, low), high)
            case .tokenMask, .sequenceMask: return ratio < low || ratio > high ? 0 : ratio
            }
        }
        // A sampler log-prob that is NaN (unknown) gives no correction, as TRL's nan_to_num.
        func difference(_ t: Int) -> Float {
            let d = (old[t] - sampled[t]) * mask[t]
            return d.isNaN ? 0 : d
        }
        var result = [Float](repeating: 1, count: old.count)
        var t = 0
        for length in lengths {
            let tokens = t..<(t + length)
            if mode.perSequence {
                let ratio = bound(exp(tokens.reduce(0) { $0 + difference($1) }))
                for i in tokens { result[i] = ratio }
            } else {
                for i in tokens { result[i] = bound(exp(difference(i))) }
            }
            t += length
        }
        return result
    }
}

/// TRL's `sampling/...` statistics of the sampler/trainer mismatch, accumulated over a step's chunks.
struct SamplingMismatch {
    private var absoluteSum = 0.0
    private var maximum = 0.0
    private var tokens = 0.0
    private var ratios: (min: Double, sum: Double, max: Double, count: Double) = (.infinity, 0, -.infinity, 0)

    /// Adds the masked tokens' |old - sampled| (NaN sampler log-probs left out) and, when given, the
    /// importance ratios (one per sequence in the sequence modes, else one per masked token).
    mutating func add(
        old: [Float], sampled: [Float], mask: [Float], lengths: [Int], weights: [Float]?,
        perSequence: Bool
    ) {
        for t in old.indices where mask[t] != 0 {
            let d = Double(abs(old[t] - sampled[t]))
            guard !d.isNaN else { continue }
            absoluteSum += d
            maximum = max(maximum, d)
            tokens += 1
        }
        guard let weights else { return }
        var t = 0
        for length in lengths {
            let picked = perSequence ? (length > 0 ? [t] : []) : (t..<(t + length)).filter { mask[$0] != 0 }
            for i in picked {
                let r = Double(weights[i])
                ratios = (min(ratios.min, r), ratios.sum + r, max(ratios.max, r), ratios.count + 1)
            }
            t += length
        }
    }

    var metrics: [String: Double] {
        var result = [
            "sampling/sampling_logp_difference/mean": tokens > 0 ? absoluteSum / tokens : 0,
            "sampling/sampling_logp_difference/max": maximum,
        ]
        if ratios.count > 0 {
            result["sampling/importance_sampling_ratio/min"] = ratios.min
            result["sampling/importance_sampling_ratio/mean"] = ratios.sum / ratios.count
            result["sampling/importance_sampling_ratio/max"] = ratios.max
        }
        return result
    }
}
