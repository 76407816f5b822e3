import Foundation

// PPO's pieces beside the policy loss (Schulman et al. 2017; the RLHF form of Ziegler et al. 2019
// and Ouyang et al. 2022), as TRL 1.16's `trl.experimental.ppo.PPOTrainer` defines them. Token
// arrays are flat over the sequences, `lengths[i]` tokens for sequence i; a value at token t is
// the critic's estimate for the state before completion token t.

/// The per-token KL estimate between the rollout policy and the reference (TRL's `kl_estimator`,
/// from Schulman's "Approximating KL Divergence"), with log r = ref_logp - logp.
public enum KLEstimator: String, Sendable, CaseIterable, Codable {
    /// -log r = logp - ref_logp: unbiased, one sample can be negative.
    case k1
    /// (r - 1) - log r: unbiased, lower variance, never negative.
    case k3

    func estimate(logp: Float, refLogp: Float) -> Float {
        let logRatio = refLogp - logp
        return self == .k1 ? -logRatio : exp(logRatio) - 1 - logRatio
    }
}

/// PPO's token rewards: r_t = -kl_coef · KL_t at every token, plus the sequence's score at its
/// last token.
///
/// Returns them and the KL of each token (zeros without a reference).
///
/// TRL adds the score one position past the last token when the response has room (its
/// `sequence_lengths_p1`, a pad position whose value it also trains); here, as veRL's
/// `token_level_rewards`, it lands on the last completion token, so values and losses cover the
/// completion's own tokens exactly.
public func ppoTokenRewards(
    scores: [Double], logp: [Float], refLogp: [Float]?, lengths: [Int], klCoef: Float, estimator: KLEstimator
) -> (rewards: [Float], kl: [Float]) {
    precondition(
        scores.count == lengths.count && lengths.reduce(0, +) == logp.count, "ppoTokenRewards: shapes")
    precondition(refLogp.map { $0.count == logp.count } ?? true, "ppoTokenRewards: reference log-probs")
    let kl =
        refLogp.map { ref in zip(logp, ref).map { estimator.estimate(logp: $0, refLogp: $1) } }
        ?? [Float](repeating: 0, count: logp.count)
    var rewards = kl.map { -klCoef * $0 }
    var end = 0
    for (score, length) in zip(scores, lengths) {
        end += length
        if length > 0 { rewards[end - 1] += Float(score) }
    }
    return (rewards, kl)
}

/// (x - mean) / sqrt(var + 1e-8) over the tokens where `mask` is 1 (TRL's `masked_whiten`).
///
/// The variance is unbiased; with `shiftMean` false the mean is added back (only the scale changes).
/// Masked tokens come out 0.
public func maskedWhiten(_ values: [Float], mask: [Float], shiftMean: Bool = true) -> [Float] {
    precondition(values.count == mask.count, "maskedWhiten: one mask value per value")
    let n = Double(mask.reduce(0, +))
    guard n > 0 else { return [Float](repeating: 0, count: values.count) }
    let mean = zip(values, mask).reduce(0.0) { $0 + Double($1.0 * $1.1) } / n
    var variance = zip(values, mask).reduce(0.0) { $0 + Double($1.1) * pow(Double($1.0) - mean, 2) } / n
    if n > 1 { variance *= n / (n - 1) }
    let scale = 1 / (variance + 1e-8).squareRoot()
    return zip(values, mask).map { value, m in
        guard m != 0 else { return 0 }
        let whitened = (Double(value) - mean) * scale
        return Float(shiftMean ? whitened : whitened + mean)
    }
}

/// Generalized advantage estimation (Schulman et al. 2016) within each sequence:
///
///     δ_t = r_t + γ·V_{t+1} - V_t   (V after the last token is 0)
///     A_t = δ_t + γ·λ·A_{t+1}       returns_t = A_t + V_t
///
/// Returns the raw advantages and the returns (the value loss's targets); PPO then whitens the
/// advantages over the batch (`maskedWhiten`).
public func generalizedAdvantages(
    rewards: [Float], values: [Float], lengths: [Int], gamma: Float, lambda: Float
) -> (advantages: [Float], returns: [Float]) {
    precondition(
        rewards.count == values.count && lengths.reduce(0, +) == rewards.count,
        "generalizedAdvantages: shapes")
    var advantages = [Float](repeating: 0, count: rewards.count)
    var start = 0
    for length in lengths {
        var next: Float = 0
        var running: Float = 0
        for t in stride(from: start + length - 1, through: start, by: -1) {
            let delta = rewards[t] + gamma * next - values[t]
            running = delta + gamma * lambda * running
            advantages[t] = running
            next = values[t]
        }
        start += length
    }
    return (advantages, zip(advantages, values).map(+))
}

/// The clipped value loss over one pass, with its gradient.
public struct ValueLossResult: Sendable {
    /// Σ_t m·ℓ_t · scale.
    public var loss: Float
    /// d loss / d value for every token.
    public var dValues: [Float]
    /// Masked count of tokens where the clipped branch was the larger (TRL's `val/clipfrac`).
    public var clipped: Float
    /// Masked token count.
    public var tokens: Float
}

/// PPO's clipped value loss, TRL's form.
///
///     ℓ_t = ½ · max((v_t - R_t)², (clip(v_t, v_old - c, v_old + c) - R_t)²)
///
/// summed over the tokens where `mask` is 1 and multiplied by `scale` (TRL: vf_coef over the
/// micro-batch's token count, over the accumulation steps). Where the clipped branch is the larger
/// and v is outside the clip range its gradient is 0, as autograd's through `clamp`.
public func clippedValueLoss(
    values: [Float], oldValues: [Float], returns: [Float], mask: [Float], clipRange: Float, scale: Float
) -> ValueLossResult {
    let T = values.count
    precondition(oldValues.count == T && returns.count == T && mask.count == T, "clippedValueLoss: shapes")
    var result = ValueLossResult(
        loss: 0, dValues: [Float](repeating: 0, count: T), clipped: 0, tokens: mask.reduce(0, +))
    for t in 0..<T where mask[t] != 0 {
        let v = values[t]
        let low = oldValues[t] - clipRange
        let high = oldValues[t] + clipRange
        let vc = min(max(v, low), high)
        let plain = (v - returns[t]) * (v - returns[t])
        let clipped = (vc - returns[t]) * (vc - returns[t])
        if clipped > plain {
            result.loss += scale * mask[t] * 0.5 * clipped
            result.dValues[t] = v > low && v < high ? scale * mask[t] * (vc - returns[t]) : 0
            result.clipped += mask[t]
        } else {
            result.loss += scale * mask[t] * 0.5 * plain
            result.dValues[t] = scale * mask[t] * (v - returns[t])
        }
    }
    return result
}

/// What PPO adds to a GRPO run's settings: TRL's `PPOConfig` names and defaults.
public struct PPOSettings: Sendable, Equatable {
    /// A value model folder (a `*ForSequenceClassification` with one label, or any causal LM of
    /// the policy's vocabulary, which gets a new score head), or nil: initialised from the policy.
    public var valueModel: String?
    /// Weight of the per-token KL to the reference in the reward (0: no reference model).
    public var klCoef: Float = 0.05
    public var klEstimator = KLEstimator.k1
    /// The policy ratio's clip (1 ± cliprange).
    public var clipRange: Float = 0.2
    /// The value loss's weight beside the policy loss.
    public var vfCoef: Float = 0.1
    /// How far a new value may move from the rollout's before its loss is clipped.
    public var clipRangeValue: Float = 0.2
    public var gamma: Float = 1
    public var lam: Float = 0.95
    /// Passes over each rollout batch.
    public var numPPOEpochs = 4
    /// Optimizer steps per pass: the batch is split into this many shuffled mini-batches.
    public var numMiniBatches = 1
    /// Whiten the token rewards over the batch (scale only) before GAE.
    public var whitenRewards = false
    /// Subtracted from the score of a completion without a stop token, or nil.
    public var missingEOSPenalty: Float?

    public init() {}
}
