import ArgumentParser
import Foundation
import Generation
import Models
import Rewards
import Tokenizers
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean reward, accuracy and pass@k of a model on a JSONL prompt dataset.",
        discussion: """
            Accuracy counts completions the first --reward scores at least 1; pass@k counts prompts \
            with at least one such completion among their k. With k = 1 decoding is greedy unless \
            --temperature is given.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var template: TemplateOptions
    @Option(help: "JSONL with \"prompt\" or \"messages\" and the fields the rewards need.") var dataset:
        String
    @Option(
        parsing: .singleValue,
        help:
            "A reward name or mapping, '{name: reward_model, model: DIR}' (repeatable); the first decides accuracy."
    )
    var reward: [String] = ["accuracy"]
    @Option(parsing: .unconditional, help: "Completions per prompt (k).") var numGenerations = 1
    @Option(parsing: .unconditional, help: "Tokens per completion at most.") var maxCompletionLength = 256
    @Option(parsing: .unconditional, help: "Sampling temperature (default 0 for k = 1, else 1).")
    var temperature: Float?
    @Option(parsing: .unconditional, help: "Nucleus sampling threshold.") var topP: Float = 1
    @Option(parsing: .unconditional, help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write every completion and score as JSONL here.") var output: String?

    func run() throws {
        let (transformer, tokenizer, loadedConfig) = try model.loadWithTokenizer()
        precision.apply(to: transformer)
        let tokenizerConfig = try template.applied(to: loadedConfig)
        let rewards = try reward.map {
            try RewardRegistry.make(try rewardSpec(flag: $0), maxCompletionLength: maxCompletionLength)
        }
        let examples = try loadPromptDataset(
            path: dataset, tokenizer: tokenizer, config: tokenizerConfig, maxPromptLength: nil,
            requiredFields: requiredFields(of: rewards))
        var sampling = SamplingParameters()
        sampling.numGenerations = numGenerations
        sampling.maxNewTokens = maxCompletionLength
        sampling.temperature = temperature ?? (numGenerations == 1 ? 0 : 1)
        sampling.topP = topP
        sampling.seed = seed
        sampling.stopTokenIDs = stopTokenIDs(
            model: transformer, tokenizer: tokenizer, config: tokenizerConfig)
        let report = try evaluate(
            model: transformer, tokenizer: tokenizer, examples: examples, rewards: rewards, sampling: sampling
        )
        print("prompts             \(report.prompts) x \(report.samplesPerPrompt) completions")
        for (name, mean) in report.meanRewards {
            print(
                "reward \(name)".padding(toLength: 20, withPad: " ", startingAt: 0)
                    + String(format: "%.4f", mean))
        }
        print("accuracy            " + String(format: "%.4f", report.accuracy))
        print(
            "pass@\(numGenerations)".padding(toLength: 20, withPad: " ", startingAt: 0)
                + String(format: "%.4f", report.passAtK))
        print("mean length         " + String(format: "%.1f", report.meanCompletionLength))
        if let output {
            let lines = report.completions.map { group in
                "{\"completions\": ["
                    + group.map {
                        "{\"text\": \(jsonString($0.text)), \"score\": \($0.score.map { "\($0)" } ?? "null")}"
                    }.joined(separator: ", ") + "]}"
            }
            try writeLines(lines, to: output)
        }
    }
}
