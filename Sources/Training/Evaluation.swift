import Foundation
import Generation
import Models
import Rewards
import Tokenizers

/// What `grpo eval` reports.
public struct EvaluationReport: Sendable {
    public var prompts: Int
    public var samplesPerPrompt: Int
    /// Mean score of each reward over all completions, by reward name (in the order given).
    public var meanRewards: [(name: String, mean: Double)]
    /// Fraction of completions the first reward scores at least 1 (pass@1 estimated over k samples).
    public var accuracy: Double
    /// Fraction of prompts with at least one of their k completions scoring at least 1.
    public var passAtK: Double
    public var meanCompletionLength: Double
    /// Per prompt: its completions and their first-reward scores.
    public var completions: [[(text: String, score: Double?)]]
}

/// Samples `sampling.numGenerations` completions per example and scores them.
public func evaluate(
    model: Transformer, tokenizer: Tokenizer, examples: [Example], rewards: [any Reward],
    sampling: SamplingParameters
) throws -> EvaluationReport {
    let generator = Generator(model: model, tokenizer: tokenizer)
    let groups = try generator.generate(prompts: examples.map(\.tokens), parameters: sampling)
    let inputs = rewardInputs(examples, groups)
    let scores = try scoreCompletions(inputs, rewards: rewards)
    let k = sampling.numGenerations
    let first = scores[0]
    let solved = stride(from: 0, to: first.count, by: k).filter { start in
        first[start..<(start + k)].contains { ($0 ?? 0) >= 1 }
    }
    let lengths = inputs.map(\.completionLength)
    return EvaluationReport(
        prompts: examples.count, samplesPerPrompt: k,
        meanRewards: zip(rewards, scores).map { ($0.name, meanAndStd($1).mean) },
        accuracy: Double(first.filter { ($0 ?? 0) >= 1 }.count) / Double(max(first.count, 1)),
        passAtK: Double(solved.count) / Double(max(examples.count, 1)),
        meanCompletionLength: Double(lengths.reduce(0, +)) / Double(max(lengths.count, 1)),
        completions: groups.enumerated().map { p, group in
            group.enumerated().map { g, completion in (completion.text ?? "", first[p * k + g]) }
        })
}

/// The ids that end a completion for a model folder: config.json's and generation_config.json's
/// `eos_token_id`s and tokenizer_config.json's `eos_token`.
public func stopTokenIDs(model: Transformer, tokenizer: Tokenizer, config: TokenizerConfig) -> [Int32] {
    var stops = Set(model.config.eosTokenIDs.map(Int32.init) + config.generationEOSTokenIDs.map(Int32.init))
    if let eos = config.eosToken, let id = tokenizer.tokenID(eos) { stops.insert(id) }
    return stops.sorted()
}
