import Foundation
import Generation
import Models
import Rewards
import Tokenizers

/// Which passing completions of a prompt rejection sampling keeps.
public enum KeepRule: String, Sendable, CaseIterable {
    /// The highest-scoring completion, if it passes.
    case best
    /// Every distinct passing completion.
    case all
}

/// What `grpo sample` reports.
public struct RejectionSampleReport: Sendable {
    /// One JSON line per kept completion, in the form `grpo sft` reads.
    public var lines: [String]
    public var prompts: Int
    public var sampled: Int
    /// Prompts with at least one kept completion.
    public var promptsKept: Int
    public var meanScore: Double
}

/// Rejection sampling (DeepSeek-R1's third stage): k completions per prompt, scored by the combined
/// rewards; those scoring at least `threshold` are kept by `rule` and written as SFT data.
///
/// A `messages` line gives `{"messages": [..., {"role": "assistant", "content": completion}], ...}`;
/// a `prompt` line gives `{"prompt": ..., "completion": ...}`. Each line keeps the input's other
/// fields and adds `"reward"`.
public func rejectionSample(
    model: Transformer, tokenizer: Tokenizer, tokenizerConfig: TokenizerConfig, datasetPath: String,
    rewards: [any Reward], weights: [Double], sampling: SamplingParameters, threshold: Double, rule: KeepRule
) throws -> RejectionSampleReport {
    let lines = try readJSONLObjects(datasetPath)
    let examples = try promptExamples(
        lines, path: datasetPath, tokenizer: tokenizer, config: tokenizerConfig, maxPromptLength: nil,
        requiredFields: requiredFields(of: rewards))
    let objects = Dictionary(uniqueKeysWithValues: lines.map { ($0.line, $0.object) })
    let generator = Generator(model: model, tokenizer: tokenizer)
    let groups = try generator.generate(prompts: examples.map(\.tokens), parameters: sampling)
    let scores = combineRewards(
        try scoreCompletions(rewardInputs(examples, groups), rewards: rewards), weights: weights)
    let k = sampling.numGenerations
    var kept: [String] = []
    var promptsKept = 0
    for (p, example) in examples.enumerated() {
        var passing = groups[p].indices.filter { scores[p * k + $0] >= threshold }
            .sorted { scores[p * k + $0] > scores[p * k + $1] }
        if rule == .best { passing = Array(passing.prefix(1)) }
        var seen: Set<String> = []
        let source = objects[example.line]!
        for g in passing {
            let text = groups[p][g].text ?? ""
            guard seen.insert(text).inserted else { continue }
            var object = Object()
            if case .array(let messages)? = source["messages"] {
                let reply = Value.object(
                    Object([("role", .string("assistant")), ("content", .string(text))]))
                object["messages"] = .array(messages + [reply])
            } else {
                object["prompt"] = source["prompt"]
                object["completion"] = .string(text)
            }
            for key in source.keys where key != "messages" && key != "prompt" { object[key] = source[key] }
            object["reward"] = .double(scores[p * k + g])
            kept.append(Value.object(object).jsonText)
        }
        if !seen.isEmpty { promptsKept += 1 }
    }
    return RejectionSampleReport(
        lines: kept, prompts: examples.count, sampled: scores.count, promptsKept: promptsKept,
        meanScore: scores.reduce(0, +) / Double(max(scores.count, 1)))
}
