/// DAPO's soft overlong punishment, as TRL's `get_soft_overlong_punishment` (DAPO paper, equation 13).
///
///     0                            if L ≤ L_max - L_cache
///     (L_max - L_cache - L) / L_cache  if L_max - L_cache < L ≤ L_max
///     -1                           if L > L_max
///
/// with L the completion length in tokens, L_max `maxCompletionLength`, L_cache `softPunishCache`.
public final class SoftOverlongPunishment: Reward {
    public let name = "soft_overlong_punishment"
    public let requiredFields: [String] = []
    public let maxCompletionLength: Int
    public let softPunishCache: Int

    public init(maxCompletionLength: Int, softPunishCache: Int) throws {
        guard softPunishCache > 0, softPunishCache <= maxCompletionLength else {
            throw RewardError.badOption(
                reward: name, option: "soft_punish_cache",
                expected: "between 1 and max_completion_length (\(maxCompletionLength))")
        }
        self.maxCompletionLength = maxCompletionLength
        self.softPunishCache = softPunishCache
    }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        batch.map { input in
            let length = Double(input.completionLength)
            let threshold = Double(maxCompletionLength - softPunishCache)
            if length <= threshold { return 0 }
            if length <= Double(maxCompletionLength) { return (threshold - length) / Double(softPunishCache) }
            return -1
        }
    }
}

/// Kimi k1.5's length reward (Kimi Team 2025, section 2.3.3) within each group, as open-r1's `len_reward`.
///
/// With λ = 0.5 - (L - min L) / (max L - min L) over the group's completions (0 when all lengths are
/// equal): a correct completion gets λ, an incorrect one min(0, λ). Correctness is the accuracy
/// reward's verdict on the `answer` field, so short right answers are preferred and long wrong ones
/// are punished.
public final class LengthReward: Reward {
    public let name = "length"
    private let accuracy: AccuracyReward
    public var requiredFields: [String] { accuracy.requiredFields }

    public init(field: String = "answer") { accuracy = AccuracyReward(field: field) }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        let correct = try accuracy.score(batch)
        var result = [Double?](repeating: 0, count: batch.count)
        for group in Set(batch.map(\.group)) {
            let members = batch.indices.filter { batch[$0].group == group }
            let lengths = members.map { Double(batch[$0].completionLength) }
            let (shortest, longest) = (lengths.min()!, lengths.max()!)
            guard longest > shortest else { continue }
            for (member, length) in zip(members, lengths) {
                let lambda = 0.5 - (length - shortest) / (longest - shortest)
                result[member] = correct[member] == 1 ? lambda : min(0, lambda)
            }
        }
        return result
    }
}
