import Foundation
import Generation
import Models
import Rewards
import Tokenizers

/// One generation round: G completions for each of the step's prompts, scored, with advantages.
public struct Round: Codable, Sendable, Equatable {
    /// Prompt + completion tokens of each completion, groups contiguous.
    public var sequences: [[Int32]]
    public var promptLengths: [Int]
    public var advantages: [Float]
    /// Completions that hit max_completion_length without a stop token.
    public var truncated: [Bool]
    /// Log-probs of the completion tokens before any update of this round (num_iterations > 1).
    public var oldLogp: [Float]?
    /// Log-probs under the reference model (beta > 0).
    public var refLogp: [Float]?
    /// The sampler's log-probs of the completion tokens (decoding, at the sampling temperature).
    public var samplingLogp: [Float]?
    /// Optimizer steps already taken on this round.
    public var iterationsDone = 0
    /// Reward and length statistics, logged with every step of the round.
    public var metrics: [String: Double]
    /// One sample (prompt, completion, reward) for the log.
    public var sample: [String]

    public var completionLengths: [Int] { zip(sequences, promptLengths).map { $0.count - $1 } }

    /// The loss mask: every completion token, except whole truncated completions when masked.
    public func mask(maskTruncated: Bool) -> [Float] {
        zip(completionLengths, truncated).flatMap { length, cut in
            [Float](repeating: maskTruncated && cut ? 0 : 1, count: length)
        }
    }

    /// A micro-batch of sequences `range` for the model, scoring the completion tokens.
    ///
    /// Neighbouring sequences with the same prompt (a group) share one copy of it.
    public func batch(_ range: Range<Int>) -> TokenBatch {
        var prompts: [[Int32]] = []
        var continuations: [[[Int32]]] = []
        for i in range {
            let completion = Array(sequences[i][promptLengths[i]...])
            if i > range.lowerBound && sharedPromptLength(i) > 0 {
                continuations[continuations.count - 1].append(completion)
            } else {
                prompts.append(Array(sequences[i][..<promptLengths[i]]))
                continuations.append([completion])
            }
        }
        return TokenBatch(prompts: prompts, continuations: continuations)
    }

    /// The length of sequence i's prompt if sequence i-1 has the same prompt (then `batch` packs it
    /// once), else 0.
    public func sharedPromptLength(_ i: Int) -> Int {
        let length = promptLengths[i]
        let same =
            i > 0 && promptLengths[i - 1] == length
            && sequences[i][..<length].elementsEqual(sequences[i - 1][..<length])
        return same ? length : 0
    }

    /// `sharedPromptLength` of every sequence.
    public func sharedPromptLengths() -> [Int] { sequences.indices.map(sharedPromptLength) }

    /// Token offsets of each sequence's completion in the flat log-prob arrays.
    public func tokenOffsets() -> [Int] {
        var offsets = [0]
        for length in completionLengths { offsets.append(offsets.last! + length) }
        return offsets
    }
}

/// What the rewards see of each completion, in order, group p being example p's completions.
func rewardInputs(_ examples: [Example], _ groups: [[Completion]]) -> [RewardInput] {
    zip(examples, groups).enumerated().flatMap { p, pair in
        pair.1.map { completion in
            RewardInput(
                prompt: pair.0.prompt, completion: completion.text ?? "",
                completionLength: completion.tokens.count, group: p, fields: pair.0.fields)
        }
    }
}

/// Scores, per reward, of a batch of completions: [reward][completion].
func scoreCompletions(_ inputs: [RewardInput], rewards: [any Reward]) throws -> [[Double?]] {
    try rewards.map { reward in
        let scores = try reward.score(inputs)
        precondition(scores.count == inputs.count, "reward \(reward.name) returned \(scores.count) scores")
        return scores
    }
}

/// Statistics TRL logs for a round: rewards (each and combined), group spread and lengths.
func roundMetrics(
    scores: [[Double?]], names: [String], combined: [Double], groupSize G: Int, lengths: [Int],
    truncated: [Bool]
) -> [String: Double] {
    var metrics: [String: Double] = [:]
    for (name, values) in zip(names, scores) {
        let (mean, std) = meanAndStd(values)
        metrics["rewards/\(name)/mean"] = mean
        metrics["rewards/\(name)/std"] = std
    }
    metrics["reward"] = combined.reduce(0, +) / Double(combined.count)
    let groupStds = stride(from: 0, to: combined.count, by: G).map {
        standardDeviation(combined[$0..<($0 + G)])
    }
    metrics["reward_std"] = groupStds.reduce(0, +) / Double(groupStds.count)
    metrics["frac_reward_zero_std"] = Double(groupStds.filter { $0 < 1e-9 }.count) / Double(groupStds.count)
    let doubles = lengths.map(Double.init)
    metrics["completions/mean_length"] = doubles.reduce(0, +) / Double(doubles.count)
    metrics["completions/min_length"] = doubles.min()
    metrics["completions/max_length"] = doubles.max()
    metrics["completions/clipped_ratio"] = Double(truncated.filter { $0 }.count) / Double(truncated.count)
    let terminated = zip(doubles, truncated).filter { !$0.1 }.map(\.0)
    metrics["completions/mean_terminated_length"] =
        terminated.isEmpty ? 0 : terminated.reduce(0, +) / Double(terminated.count)
    return metrics
}
