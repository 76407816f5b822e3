import Foundation

/// How per-token losses are averaged: TRL's `loss_type`.
public enum LossType: String, Sendable, CaseIterable, Codable {
    /// Mean over sequences of each sequence's token mean (DeepSeekMath's GRPO).
    case grpo
    /// Token mean over the micro-batch.
    case bnpo
    /// Sum over tokens / (sequences × max_completion_length) (Dr. GRPO, no length bias).
    case drGRPO = "dr_grpo"
    /// Token mean over the whole accumulated batch (DAPO).
    case dapo
}

/// The completions of one backward pass, as the loss sees them: plain arrays, no model.
///
/// Token arrays are flat over the sequences, `lengths[i]` tokens for sequence i.
public struct PolicyBatch: Sendable {
    /// Log-probs of the sampled tokens under the current policy (at the sampling temperature).
    public var logp: [Float]
    /// Log-probs under the policy that sampled them; nil when it is the current one (μ = 1).
    public var oldLogp: [Float]?
    /// Log-probs under the reference model; nil when β = 0.
    public var refLogp: [Float]?
    /// 1 for tokens in the loss, 0 for masked ones (truncated completions, padding).
    public var mask: [Float]
    /// Completion lengths in tokens.
    public var lengths: [Int]
    /// One advantage per sequence.
    public var advantages: [Float]
    /// Per-token importance weights on the surrogate (not the KL) correcting the sampler/trainer
    /// mismatch (`SamplingCorrection`), or nil.
    public var importanceWeights: [Float]?

    public init(
        logp: [Float], oldLogp: [Float]? = nil, refLogp: [Float]? = nil, mask: [Float]? = nil, lengths: [Int],
        advantages: [Float], importanceWeights: [Float]? = nil
    ) {
        self.logp = logp
        self.oldLogp = oldLogp
        self.refLogp = refLogp
        self.mask = mask ?? Array(repeating: 1, count: logp.count)
        self.lengths = lengths
        self.advantages = advantages
        self.importanceWeights = importanceWeights
    }
}

/// The knobs of the clipped objective, TRL's names.
public struct PolicyLossSettings: Sendable {
    public var lossType: LossType = .dapo
    public var epsilonLow: Float = 0.2
    public var epsilonHigh: Float = 0.2
    public var beta: Float = 0
    public var maxCompletionLength = 256
    /// DAPO's normalizer: the number of loss tokens in the whole accumulated batch.
    public var tokensInBatch: Float? = nil
    /// Other loss types are averaged over this many micro-batches (gradient accumulation).
    public var accumulationSteps = 1

    public init() {}
}

/// The loss, d loss / d logp for every token, and TRL's per-batch statistics.
public struct PolicyLossResult: Sendable {
    public var loss: Float
    public var dLogp: [Float]
    /// Masked token sums (divide by `tokens` for means): k3 KL, and the clip indicators.
    public var klSum: Float
    public var lowClipped: Float
    public var highClipped: Float
    public var regionClipped: Float
    public var tokens: Float
}

/// GRPO's clipped surrogate with a k3 KL penalty.
///
/// Per token t of sequence i:
///
///     ρ = exp(logp - old_logp)
///     ℓ = -w·min(ρ·A_i, clip(ρ, 1 - ε_low, 1 + ε_high)·A_i) + β·(exp(ref - logp) - (ref - logp) - 1)
///
/// with w the importance weight of the sampler/trainer correction (1 without it), as TRL applies
/// its vLLM correction to the surrogate only.
///
/// aggregated by `lossType` with the mask m (grpo: mean_i Σ_t m ℓ / Σ_t m; bnpo: Σ m ℓ / Σ m; dr_grpo:
/// Σ m ℓ / (B · max_completion_length); dapo: Σ m ℓ / tokensInBatch). The gradient is exact:
///
///     dℓ/dlogp = -A·ρ  (0 where the clip is active: ρ > 1 + ε_high with A > 0, ρ < 1 - ε_low with A < 0)
///                + β·(1 - exp(ref - logp))
///
/// With μ = 1 the old log-probs are the current ones detached, so ρ = 1 and dℓ/dlogp = -A (+ KL).
/// Clip statistics are TRL's `clip_ratio/low_mean`, `high_mean` and `region_mean` numerators.
///
/// `weights` (one per sequence, from `sequenceWeights`) let a batch be split into chunks that each
/// run forward and backward on their own: every token's gradient depends only on its own log-prob
/// and its sequence's weight, so the chunks' gradients add up to the whole batch's exactly.
public func policyLoss(
    _ batch: PolicyBatch, settings s: PolicyLossSettings, weights: [Float]? = nil
) -> PolicyLossResult {
    let T = batch.logp.count
    precondition(batch.mask.count == T && batch.lengths.reduce(0, +) == T, "policyLoss: token counts differ")
    precondition(batch.advantages.count == batch.lengths.count, "policyLoss: one advantage per sequence")
    precondition(batch.oldLogp.map { $0.count == T } ?? true, "policyLoss: old log-probs")
    precondition(batch.refLogp.map { $0.count == T } ?? true, "policyLoss: reference log-probs")
    precondition(batch.importanceWeights.map { $0.count == T } ?? true, "policyLoss: importance weights")
    precondition(s.beta == 0 || batch.refLogp != nil, "policyLoss: beta > 0 needs reference log-probs")
    let B = batch.lengths.count
    let totalMask = batch.mask.reduce(0, +)
    let weights = weights ?? sequenceWeights(lengths: batch.lengths, mask: batch.mask, settings: s)
    precondition(weights.count == B, "policyLoss: one weight per sequence")
    var result = PolicyLossResult(
        loss: 0, dLogp: [Float](repeating: 0, count: T), klSum: 0, lowClipped: 0, highClipped: 0,
        regionClipped: 0, tokens: totalMask)
    var t = 0
    for i in 0..<B {
        let A = batch.advantages[i]
        for _ in 0..<batch.lengths[i] {
            defer { t += 1 }
            let m = batch.mask[t]
            guard m != 0 else { continue }
            let logp = batch.logp[t]
            let ratio = batch.oldLogp.map { exp(logp - $0[t]) } ?? 1
            let clipped = min(max(ratio, 1 - s.epsilonLow), 1 + s.epsilonHigh)
            let isLow = ratio < 1 - s.epsilonLow && A < 0
            let isHigh = ratio > 1 + s.epsilonHigh && A > 0
            let w = batch.importanceWeights?[t] ?? 1
            var loss = -min(ratio * A, clipped * A) * w
            var dLoss: Float = isLow || isHigh ? 0 : -A * ratio * w
            if let ref = batch.refLogp {
                let delta = ref[t] - logp
                let kl = exp(delta) - delta - 1
                result.klSum += m * kl
                loss += s.beta * kl
                dLoss += s.beta * (1 - exp(delta))
            }
            result.loss += weights[i] * m * loss
            result.dLogp[t] = weights[i] * m * dLoss
            result.lowClipped += isLow ? m : 0
            result.highClipped += isHigh ? m : 0
            result.regionClipped += isLow || isHigh ? m : 0
        }
    }
    return result
}

/// The weight of each token's loss in the aggregate, per sequence, for `settings.lossType`.
///
///     grpo: 1 / (B · Σ_t m_i,t)   bnpo: 1 / Σ m   dr_grpo: 1 / (B · max_completion_length)
///     dapo: 1 / tokensInBatch
///
/// The first three are also divided by the accumulation steps (each micro-batch a mean, then averaged).
public func sequenceWeights(lengths: [Int], mask: [Float], settings s: PolicyLossSettings) -> [Float] {
    let B = lengths.count
    let totalMask = mask.reduce(0, +)
    let accumulation = Float(s.accumulationSteps)
    var start = 0
    return lengths.map { length in
        defer { start += length }
        let sequenceMask = mask[start..<(start + length)].reduce(0, +)
        switch s.lossType {
        case .grpo: return 1 / (Float(B) * max(sequenceMask, 1) * accumulation)
        case .bnpo: return 1 / (max(totalMask, 1) * accumulation)
        case .drGRPO: return 1 / (Float(B) * Float(s.maxCompletionLength) * accumulation)
        case .dapo: return 1 / max(s.tokensInBatch ?? totalMask, 1)
        }
    }
}
