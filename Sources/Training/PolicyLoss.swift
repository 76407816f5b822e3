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
    /// CISPO (MiniMax-M1): the importance ratio, clipped at `epsilon_high` and detached, weights the
    /// policy gradient, so no token's gradient is dropped; aggregated as dapo.
    case cispo
}

/// Where the importance ratio is taken: TRL's `importance_sampling_level`.
public enum ImportanceSamplingLevel: String, Sendable, CaseIterable, Codable {
    /// One ratio per token.
    case token
    /// One ratio per sequence, exp of its tokens' mean log-ratio (GSPO), on all its tokens.
    case sequence
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
    /// One advantage per token (GAE's), or nil: each token takes its sequence's (the broadcast case).
    public var tokenAdvantages: [Float]?
    /// Per-token importance weights on the surrogate (not the KL) correcting the sampler/trainer
    /// mismatch (`SamplingCorrection`), or nil.
    public var importanceWeights: [Float]?

    public init(
        logp: [Float], oldLogp: [Float]? = nil, refLogp: [Float]? = nil, mask: [Float]? = nil, lengths: [Int],
        advantages: [Float], importanceWeights: [Float]? = nil, tokenAdvantages: [Float]? = nil
    ) {
        self.logp = logp
        self.oldLogp = oldLogp
        self.refLogp = refLogp
        self.mask = mask ?? Array(repeating: 1, count: logp.count)
        self.lengths = lengths
        self.advantages = advantages
        self.importanceWeights = importanceWeights
        self.tokenAdvantages = tokenAdvantages
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
    /// Token ratios, or GSPO's one ratio per sequence.
    public var importanceSamplingLevel = ImportanceSamplingLevel.token
    /// Two-sided clipping (TRL's `delta`): the unclipped ratio is capped at delta too, or nil.
    public var delta: Float?
    /// TRL's `use_bias_correction_kl`: the k3 KL times the ratio, so its gradient is the unbiased
    /// reverse-KL one (DeepSeek-V3.2); the ratio's gradient counts even where its value is 1.
    public var biasCorrectedKL = false
    /// TRL's RLOOTrainer objective (no KL term: RLOO puts the KL into the reward).
    ///
    /// One ratio per sequence from its summed log-ratio, one clipped surrogate per sequence, their
    /// mean over sequences (÷ accumulation); see `rlooRewards`. `lossType`, `delta` and the level
    /// do not apply.
    public var sequenceObjective = false

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

/// GRPO's clipped surrogate with a k3 KL penalty, as TRL 1.16 computes it.
///
/// Per token t of sequence i, with s = logp - old_logp (token level) or s_i = Σ_t m·(logp - old) / Σ_t m
/// for every token of i (sequence level, GSPO) and ρ = exp(s):
///
///     ℓ = -w·min(min(ρ, δ)·A_i, clip(ρ, 1 - ε_low, 1 + ε_high)·A_i) + β·KL·(ρ if bias-corrected, else 1)
///     KL = exp(ref - logp) - (ref - logp) - 1
///
/// (δ: two-sided clipping, off when nil), and for `cispo` the surrogate -w·sg(min(ρ, ε_high))·A_i·logp
/// (sg: no gradient). w is the importance weight of the sampler/trainer correction (1 without it), as
/// TRL applies its vLLM correction to the surrogate only. Aggregated by `lossType` with the mask m
/// (grpo: mean_i Σ_t m ℓ / Σ_t m; bnpo: Σ m ℓ / Σ m; dr_grpo: Σ m ℓ / (B · max_completion_length);
/// dapo and cispo: Σ m ℓ / tokensInBatch). The gradient is exact: each token's own terms, plus what
/// flows through ρ, which at sequence level is shared out over the sequence's tokens as m_t / Σ m.
///
/// With μ = 1 the old log-probs are the current ones detached, so ρ = 1, yet dρ/dlogp = ρ still
/// carries the surrogate's -A and, bias-corrected, the KL's value into the gradient.
/// Clip statistics are TRL's `clip_ratio/low_mean`, `high_mean` and `region_mean` numerators (for
/// cispo, `high` counts the tokens whose ratio the cap held).
///
/// `weights` (one per sequence, from `sequenceWeights`) let a batch be split into chunks that each
/// run forward and backward on their own: every sequence's gradient depends only on its own tokens
/// and weight, so the chunks' gradients add up to the whole batch's exactly.
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
    precondition(batch.tokenAdvantages.map { $0.count == T } ?? true, "policyLoss: one advantage per token")
    precondition(
        !(s.sequenceObjective && batch.tokenAdvantages != nil),
        "policyLoss: RLOO's objective takes sequence advantages")
    let B = batch.lengths.count
    let totalMask = batch.mask.reduce(0, +)
    let weights = weights ?? sequenceWeights(lengths: batch.lengths, mask: batch.mask, settings: s)
    precondition(weights.count == B, "policyLoss: one weight per sequence")
    var result = PolicyLossResult(
        loss: 0, dLogp: [Float](repeating: 0, count: T), klSum: 0, lowClipped: 0, highClipped: 0,
        regionClipped: 0, tokens: totalMask)
    let perSequence = s.importanceSamplingLevel == .sequence
    var start = 0
    for i in 0..<B {
        let A = batch.advantages[i]
        let range = start..<(start + batch.lengths[i])
        defer { start = range.upperBound }
        if s.sequenceObjective {
            rlooSequence(batch, range: range, advantage: A, weight: weights[i], settings: s, into: &result)
            continue
        }
        var sequenceMask: Float = 0
        var sequenceLogRatio: Float = 0
        if perSequence, let old = batch.oldLogp {
            for t in range where batch.mask[t] != 0 {
                sequenceMask += batch.mask[t]
                sequenceLogRatio += batch.mask[t] * (batch.logp[t] - old[t])
            }
            sequenceLogRatio /= max(sequenceMask, 1)
        } else if perSequence {
            for t in range { sequenceMask += batch.mask[t] }
        }
        // d(aggregate)/dρ summed over the sequence's tokens (sequence level), spread back below.
        var throughRatio: Float = 0
        for t in range {
            let m = batch.mask[t]
            guard m != 0 else { continue }
            let logp = batch.logp[t]
            let A = batch.tokenAdvantages?[t] ?? A
            let logRatio = perSequence ? sequenceLogRatio : batch.oldLogp.map { logp - $0[t] } ?? 0
            let ratio = exp(logRatio)
            let w = batch.importanceWeights?[t] ?? 1
            var loss: Float
            var direct: Float = 0  // dℓ/dlogp other than through ρ
            var slope: Float = 0  // dℓ/dρ
            var (isLow, isHigh) = (false, false)
            if s.lossType == .cispo {
                let capped = min(ratio, s.epsilonHigh)
                isHigh = ratio > s.epsilonHigh && A > 0
                loss = -capped * A * logp * w
                direct = -capped * A * w
            } else {
                let first = s.delta.map { min(ratio, $0) } ?? ratio
                let clipped = min(max(ratio, 1 - s.epsilonLow), 1 + s.epsilonHigh)
                isLow = ratio < 1 - s.epsilonLow && A < 0
                isHigh = ratio > 1 + s.epsilonHigh && A > 0
                if first * A <= clipped * A {
                    loss = -first * A * w
                    slope = (s.delta.map { ratio > $0 } ?? false) ? 0 : -A * w
                } else {
                    loss = -clipped * A * w
                    slope = isLow || isHigh ? 0 : -A * w
                }
            }
            if let ref = batch.refLogp {
                let delta = ref[t] - logp
                let kl = exp(delta) - delta - 1
                let scale = s.biasCorrectedKL ? ratio : 1
                result.klSum += m * kl * scale
                loss += s.beta * kl * scale
                direct += s.beta * (1 - exp(delta)) * scale
                if s.biasCorrectedKL { slope += s.beta * kl }
            }
            result.loss += weights[i] * m * loss
            if perSequence {
                result.dLogp[t] = weights[i] * m * direct
                throughRatio += weights[i] * m * slope * ratio
            } else {
                result.dLogp[t] = weights[i] * m * (direct + slope * ratio)
            }
            result.lowClipped += isLow ? m : 0
            result.highClipped += isHigh ? m : 0
            result.regionClipped += isLow || isHigh ? m : 0
        }
        // ds_i/dlogp_t = m_t / Σ m at sequence level (the ratio is the current one detached when old is nil).
        if perSequence && throughRatio != 0 {
            for t in range where batch.mask[t] != 0 {
                result.dLogp[t] += throughRatio * batch.mask[t] / max(sequenceMask, 1)
            }
        }
    }
    return result
}

/// TRL's RLOO surrogate for one sequence, into `result`.
///
/// s = Σ_t m (logp - old), ρ = exp(s), ℓ = -min(ρ·A, clip(ρ, 1 - ε_low, 1 + ε_high)·A), weighted
/// by `weight`; dℓ/dlogp_t = -A·ρ·m_t where the clip is not active. Clip statistics count the
/// sequence's tokens.
private func rlooSequence(
    _ batch: PolicyBatch, range: Range<Int>, advantage A: Float, weight: Float,
    settings s: PolicyLossSettings,
    into result: inout PolicyLossResult
) {
    var logRatio: Float = 0
    if let old = batch.oldLogp {
        for t in range { logRatio += batch.mask[t] * (batch.logp[t] - old[t]) }
    }
    let ratio = exp(logRatio)
    let clipped = min(max(ratio, 1 - s.epsilonLow), 1 + s.epsilonHigh)
    let isLow = ratio < 1 - s.epsilonLow && A < 0
    let isHigh = ratio > 1 + s.epsilonHigh && A > 0
    result.loss += weight * -min(ratio * A, clipped * A)
    let slope: Float = isLow || isHigh ? 0 : -A * ratio
    var tokens: Float = 0
    for t in range where batch.mask[t] != 0 {
        result.dLogp[t] = weight * slope * batch.mask[t]
        tokens += batch.mask[t]
    }
    result.lowClipped += isLow ? tokens : 0
    result.highClipped += isHigh ? tokens : 0
    result.regionClipped += isLow || isHigh ? tokens : 0
}

/// RLOO's rewards with the KL to the reference folded in, as TRL's RLOOTrainer.
///
/// Each completion's reward minus beta times its summed first-order KL, Σ_t m (old_logp - ref_logp).
/// Returns the rewards and the KL sum over all tokens (for the `kl` metric).
public func rlooRewards(
    _ rewards: [Double], oldLogp: [Float], refLogp: [Float], lengths: [Int], mask: [Float], beta: Double
) -> (rewards: [Double], klSum: Double) {
    var start = 0
    var total = 0.0
    let adjusted = zip(rewards, lengths).map { reward, length in
        defer { start += length }
        var kl = 0.0
        for t in start..<(start + length) { kl += Double(mask[t]) * Double(oldLogp[t] - refLogp[t]) }
        total += kl
        return reward - beta * kl
    }
    return (adjusted, total)
}

/// The weight of each token's loss in the aggregate, per sequence, for `settings.lossType`.
///
///     grpo: 1 / (B · Σ_t m_i,t)   bnpo: 1 / Σ m   dr_grpo: 1 / (B · max_completion_length)
///     dapo, cispo: 1 / tokensInBatch
///
/// The first three are also divided by the accumulation steps (each micro-batch a mean, then averaged).
public func sequenceWeights(lengths: [Int], mask: [Float], settings s: PolicyLossSettings) -> [Float] {
    let B = lengths.count
    let totalMask = mask.reduce(0, +)
    let accumulation = Float(s.accumulationSteps)
    var start = 0
    if s.sequenceObjective { return [Float](repeating: 1 / (Float(B) * accumulation), count: B) }
    return lengths.map { length in
        defer { start += length }
        let sequenceMask = mask[start..<(start + length)].reduce(0, +)
        switch s.lossType {
        case .grpo: return 1 / (Float(B) * max(sequenceMask, 1) * accumulation)
        case .bnpo: return 1 / (max(totalMask, 1) * accumulation)
        case .drGRPO: return 1 / (Float(B) * Float(s.maxCompletionLength) * accumulation)
        case .dapo, .cispo: return 1 / max(s.tokensInBatch ?? totalMask, 1)
        }
    }
}
