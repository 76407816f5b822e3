import Foundation
import Generation
import Models
import Rewards
import Tokenizers

/// A completion the log prints: its prompt, text and combined reward.
public struct LoggedSample: Codable, Sendable, Equatable {
    public var prompt: String
    public var completion: String
    public var reward: Double

    public init(prompt: String, completion: String, reward: Double) {
        self.prompt = prompt
        self.completion = completion
        self.reward = reward
    }
}

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
    /// Each completion's combined reward (Σ_k w_k · r_k), before any advantage estimator.
    public var rewards: [Double]
    /// Reward and length statistics, logged with every step of the round.
    public var metrics: [String: Double]
    /// Completions to print (`num_completions_to_print`), with their prompts and rewards.
    public var samples: [LoggedSample]

    public init(
        sequences: [[Int32]], promptLengths: [Int], advantages: [Float], truncated: [Bool],
        oldLogp: [Float]? = nil, refLogp: [Float]? = nil, samplingLogp: [Float]? = nil,
        iterationsDone: Int = 0, rewards: [Double] = [],
        metrics: [String: Double], samples: [LoggedSample]
    ) {
        self.rewards = rewards
        self.sequences = sequences
        self.promptLengths = promptLengths
        self.advantages = advantages
        self.truncated = truncated
        self.oldLogp = oldLogp
        self.refLogp = refLogp
        self.samplingLogp = samplingLogp
        self.iterationsDone = iterationsDone
        self.metrics = metrics
        self.samples = samples
    }

    private enum CodingKeys: String, CodingKey {
        case sequences, promptLengths, advantages, truncated, oldLogp, refLogp, samplingLogp, iterationsDone
        case rewards, metrics, samples
        /// Checkpoints before typed samples: [prompt, completion, reward as text].
        case sample
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sequences = try c.decode([[Int32]].self, forKey: .sequences)
        promptLengths = try c.decode([Int].self, forKey: .promptLengths)
        advantages = try c.decode([Float].self, forKey: .advantages)
        truncated = try c.decode([Bool].self, forKey: .truncated)
        oldLogp = try c.decodeIfPresent([Float].self, forKey: .oldLogp)
        refLogp = try c.decodeIfPresent([Float].self, forKey: .refLogp)
        samplingLogp = try c.decodeIfPresent([Float].self, forKey: .samplingLogp)
        iterationsDone = try c.decodeIfPresent(Int.self, forKey: .iterationsDone) ?? 0
        rewards = try c.decodeIfPresent([Double].self, forKey: .rewards) ?? []
        metrics = try c.decode([String: Double].self, forKey: .metrics)
        if let typed = try c.decodeIfPresent([LoggedSample].self, forKey: .samples) {
            samples = typed
        } else {
            let legacy = try c.decodeIfPresent([String].self, forKey: .sample) ?? []
            samples = stride(from: 0, to: legacy.count - 2, by: 3).map {
                LoggedSample(
                    prompt: legacy[$0], completion: legacy[$0 + 1], reward: Double(legacy[$0 + 2]) ?? 0)
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sequences, forKey: .sequences)
        try c.encode(promptLengths, forKey: .promptLengths)
        try c.encode(advantages, forKey: .advantages)
        try c.encode(truncated, forKey: .truncated)
        try c.encodeIfPresent(oldLogp, forKey: .oldLogp)
        try c.encodeIfPresent(refLogp, forKey: .refLogp)
        try c.encodeIfPresent(samplingLogp, forKey: .samplingLogp)
        try c.encode(iterationsDone, forKey: .iterationsDone)
        try c.encode(rewards, forKey: .rewards)
        try c.encode(metrics, forKey: .metrics)
        try c.encode(samples, forKey: .samples)
    }

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

    /// The sequences at `indices` (in that order), with their token arrays: a mini-batch.
    public func subset(_ indices: [Int]) -> Round {
        let offsets = tokenOffsets()
        func tokens(_ array: [Float]?) -> [Float]? {
            array.map { gatherTokens($0, offsets: offsets, indices) }
        }
        return Round(
            sequences: indices.map { sequences[$0] }, promptLengths: indices.map { promptLengths[$0] },
            advantages: indices.map { advantages[$0] }, truncated: indices.map { truncated[$0] },
            oldLogp: tokens(oldLogp), refLogp: tokens(refLogp), samplingLogp: tokens(samplingLogp),
            iterationsDone: iterationsDone, rewards: rewards.isEmpty ? [] : indices.map { rewards[$0] },
            metrics: metrics, samples: samples)
    }

    /// `parts` one after another (blocks of one batch, in order): their sequences and token arrays
    /// concatenated, the first part's metrics and samples.
    public init(joining parts: [Round]) {
        func tokens(_ arrays: [[Float]?]) -> [Float]? {
            arrays.allSatisfy { $0 != nil } ? arrays.flatMap { $0! } : nil
        }
        self.init(
            sequences: parts.flatMap(\.sequences), promptLengths: parts.flatMap(\.promptLengths),
            advantages: parts.flatMap(\.advantages), truncated: parts.flatMap(\.truncated),
            oldLogp: tokens(parts.map(\.oldLogp)), refLogp: tokens(parts.map(\.refLogp)),
            samplingLogp: tokens(parts.map(\.samplingLogp)), iterationsDone: parts.first?.iterationsDone ?? 0,
            rewards: parts.flatMap(\.rewards), metrics: parts.first?.metrics ?? [:],
            samples: parts.first?.samples ?? [])
    }

    /// Token offsets of each sequence's completion in the flat log-prob arrays.
    public func tokenOffsets() -> [Int] {
        var offsets = [0]
        for length in completionLengths { offsets.append(offsets.last! + length) }
        return offsets
    }
}

/// The tokens of sequences `indices` from a flat per-token array whose sequence i spans
/// `offsets[i]..<offsets[i + 1]`, concatenated in the order given.
func gatherTokens<T>(_ array: [T], offsets: [Int], _ indices: [Int]) -> [T] {
    indices.flatMap { array[offsets[$0]..<offsets[$0 + 1]] }
}

/// What the rewards see of each completion, in order, group p being example p's completions.
func rewardInputs(_ examples: [Example], _ groups: [[Completion]]) -> [RewardInput] {
    zip(examples, groups).enumerated().flatMap { p, pair in
        pair.1.map { completion in
            RewardInput(
                prompt: pair.0.prompt, completion: completion.text ?? "",
                completionLength: completion.tokens.count, group: p, fields: pair.0.fields,
                messages: pair.0.messages)
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

/// Rewards scoring on a thread of their own (`Reward.runsAlongside`) while the caller goes on.
final class PendingScores: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<[[Double?]], any Error> = .success([])
    /// How long the scoring took, once `wait` has returned.
    private(set) var seconds = 0.0

    private let rewards: [any Reward]

    /// Starts scoring `inputs` with `rewards`, which nothing else may use until `wait` returns.
    init(_ inputs: [RewardInput], _ rewards: [any Reward]) {
        self.rewards = rewards
        let thread = Thread { [self] in
            let start = Date()
            result = Result { try scoreCompletions(inputs, rewards: self.rewards) }
            seconds = Date().timeIntervalSince(start)
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// The scores, [reward][completion], once scoring has finished; its error, if it threw.
    func wait() throws -> [[Double?]] {
        done.wait()
        return try result.get()
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
