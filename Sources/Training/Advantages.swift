/// How group-relative advantages are scaled: TRL's `scale_rewards`.
public enum RewardScaling: String, Sendable, CaseIterable, Codable {
    /// Divide by the group's standard deviation (GRPO).
    case group
    /// Divide by the whole batch's standard deviation.
    case batch
    /// No scaling (Dr. GRPO: the std term biases towards too easy and too hard prompts).
    case none
}

/// Group-relative advantages: A = r - mean(group), scaled per `scaling`.
///
///     group: A / (std(group) + 1e-4)      batch: A / (std(all rewards) + 1e-4)      none: A
///
/// Standard deviations are unbiased (n - 1), as `torch.std`. rewards: (B·G), groups contiguous.
public func groupAdvantages(rewards: [Double], groupSize G: Int, scaling: RewardScaling) -> [Double] {
    precondition(G >= 1 && rewards.count % G == 0, "\(rewards.count) rewards do not form groups of \(G)")
    let batchStd = standardDeviation(rewards[...])
    var advantages: [Double] = []
    advantages.reserveCapacity(rewards.count)
    for start in stride(from: 0, to: rewards.count, by: G) {
        let group = rewards[start..<(start + G)]
        let mean = group.reduce(0, +) / Double(G)
        let divisor: Double =
            switch scaling {
            case .group: standardDeviation(group) + 1e-4
            case .batch: batchStd + 1e-4
            case .none: 1
            }
        advantages.append(contentsOf: group.map { ($0 - mean) / divisor })
    }
    return advantages
}

/// Unbiased standard deviation (n - 1 in the denominator); NaN for fewer than two values, as torch.
public func standardDeviation(_ values: ArraySlice<Double>) -> Double {
    guard values.count >= 2 else { return .nan }
    let mean = values.reduce(0, +) / Double(values.count)
    return (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
}

/// The weighted sum of several rewards per completion, Σ_k w_k · r_k.
///
/// A missing score counts 0 (TRL's `nansum`). scores: [reward][completion].
public func combineRewards(_ scores: [[Double?]], weights: [Double]) -> [Double] {
    precondition(scores.count == weights.count, "\(scores.count) rewards, \(weights.count) weights")
    guard let count = scores.first?.count else { return [] }
    return (0..<count).map { i in zip(scores, weights).reduce(0) { $0 + ($1.0[i] ?? 0) * $1.1 } }
}

/// Indices of the groups whose rewards are not all equal: DAPO's dynamic sampling keeps only these,
/// since a group with one reward value gives every completion advantage 0 and so no gradient.
public func informativeGroups(rewards: [Double], groupSize G: Int) -> [Int] {
    stride(from: 0, to: rewards.count, by: G).enumerated().compactMap { index, start in
        let group = rewards[start..<(start + G)]
        return group.max()! - group.min()! > 1e-9 ? index : nil
    }
}

/// Which advantage estimator a run uses (`algorithm`).
public enum AdvantageEstimator: String, Sendable, CaseIterable, Codable {
    /// Group-relative: r - mean(group), scaled by `scale_rewards`.
    case grpo
    /// Leave-one-out (RLOO, Ahmadian et al. 2024) as TRL's RLOOTrainer: r_i - mean of the group's
    /// other rewards, which is (r_i - mean) · G / (G - 1) (veRL's `rloo` estimator too), with
    /// `normalize_advantages` whitened over the batch ((A - mean) / (std + 1e-4)). The trainer then
    /// also follows TRL's RLOO: the KL (first-order, summed per sequence) comes off the reward, and
    /// the loss is one clipped ratio per sequence from its summed log-ratio, averaged over sequences
    /// (`PolicyLossSettings.sequenceObjective`). veRL's `rloo` keeps its token-level PPO loss instead.
    case rloo
    /// REINFORCE++-baseline (Hu et al. 2025, as OpenRLHF and veRL define it): r - mean(group), then
    /// whitened over every completion token of the batch (each sequence's advantage weighted by its
    /// length, unbiased variance, (A - mean) / sqrt(var + 1e-8)).
    case reinforcePP = "reinforce_pp"
    /// PPO: per-token advantages by GAE over a critic's values (`generalizedAdvantages`), not a
    /// function of the rewards alone.
    case ppo
}

/// Advantages of `rewards` (B·G, groups contiguous) under `estimator`; `lengths` are the
/// completions' token counts (REINFORCE++'s token-weighted whitening).
public func estimateAdvantages(
    rewards: [Double], groupSize G: Int, estimator: AdvantageEstimator, scaling: RewardScaling,
    lengths: [Int], normalize: Bool = false
) -> [Double] {
    precondition(lengths.count == rewards.count, "one length per completion")
    switch estimator {
    case .grpo:
        return groupAdvantages(rewards: rewards, groupSize: G, scaling: scaling)
    case .rloo:
        precondition(G >= 2, "RLOO needs groups of at least 2")
        var advantages = groupAdvantages(rewards: rewards, groupSize: G, scaling: .none).map {
            $0 * Double(G) / Double(G - 1)
        }
        if normalize {
            let mean = advantages.reduce(0, +) / Double(advantages.count)
            let std = advantages.count > 1 ? standardDeviation(advantages[...]) : 0
            advantages = advantages.map { ($0 - mean) / (std + 1e-4) }
        }
        return advantages
    case .reinforcePP:
        let centred = groupAdvantages(rewards: rewards, groupSize: G, scaling: .none)
        let tokens = Double(lengths.reduce(0, +))
        guard tokens > 1 else { return centred }
        let mean = zip(centred, lengths).reduce(0) { $0 + $1.0 * Double($1.1) } / tokens
        let variance =
            zip(centred, lengths).reduce(0) { $0 + Double($1.1) * ($1.0 - mean) * ($1.0 - mean) }
            / (tokens - 1)
        let scale = 1 / (variance + 1e-8).squareRoot()
        return centred.map { ($0 - mean) * scale }
    case .ppo:
        preconditionFailure("PPO's advantages come from GAE over the critic's values (generalizedAdvantages)")
    }
}
