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
