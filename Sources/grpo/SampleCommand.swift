import ArgumentParser
import Foundation
import Generation
import Rewards
import Tokenizers
import Training

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Rejection sampling: keep the completions the rewards pass, as SFT data.",
        discussion: """
            Samples k completions per prompt, scores each with the weighted sum of the rewards, and \
            keeps those scoring at least --threshold: the best one per prompt (--keep best) or every \
            distinct one (--keep all). Output lines are what `grpo sft` reads: {"messages": [..., \
            assistant reply]} for chat prompts, {"prompt": ..., "completion": ...} for text ones, \
            with the input's other fields and "reward".

            Example: grpo sample --model rl1 --dataset prompts.jsonl --reward accuracy \
            --reward format --num-generations 8 --threshold 1.5 --output sft2.jsonl
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var template: TemplateOptions
    @Option(help: "JSONL with \"prompt\" or \"messages\" and the fields the rewards need.") var dataset:
        String
    @Option(
        parsing: .singleValue,
        help: "A reward name or mapping, '{name: reward_model, model: DIR}' (repeatable).") var reward:
        [String] = ["accuracy"]
    @Option(parsing: .unconditionalSingleValue, help: "Weight of each --reward, in order (default 1 each).")
    var rewardWeight: [Double] = []
    @Option(parsing: .unconditional, help: "Completions per prompt (k).") var numGenerations = 8
    @Option(parsing: .unconditional, help: "Keep completions whose combined reward is at least this.")
    var threshold = 1.0
    @Option(help: "best (one per prompt) or all (every distinct passing one).") var keep = "best"
    @Option(parsing: .unconditional, help: "Tokens per completion at most.") var maxCompletionLength = 256
    @Option(parsing: .unconditional, help: "Sampling temperature.") var temperature: Float = 1
    @Option(parsing: .unconditional, help: "Nucleus sampling threshold.") var topP: Float = 1
    @Option(parsing: .unconditional, help: "Min-p sampling threshold.") var minP: Float = 0
    @Option(parsing: .unconditional, help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Where to write the kept completions (JSONL).") var output: String

    func run() throws {
        guard let rule = KeepRule(rawValue: keep) else {
            throw ValidationError("--keep: expected best or all, got '\(keep)'")
        }
        guard rewardWeight.isEmpty || rewardWeight.count == reward.count else {
            throw ValidationError(
                "--reward-weight: \(rewardWeight.count) weights for \(reward.count) rewards")
        }
        guard numGenerations >= 1 else { throw ValidationError("--num-generations must be at least 1") }
        guard threshold.isFinite else {
            throw ValidationError("--threshold must be a finite number, got \(threshold)")
        }
        let (transformer, tokenizer, loadedConfig) = try model.loadWithTokenizer()
        precision.apply(to: transformer)
        let tokenizerConfig = try template.applied(to: loadedConfig)
        let rewards = try reward.map {
            try RewardRegistry.make(try rewardSpec(flag: $0), maxCompletionLength: maxCompletionLength)
        }
        var sampling = SamplingParameters()
        sampling.numGenerations = numGenerations
        sampling.maxNewTokens = maxCompletionLength
        sampling.temperature = temperature
        sampling.topP = topP
        sampling.minP = minP
        sampling.seed = seed
        sampling.stopTokenIDs = stopTokenIDs(
            model: transformer, tokenizer: tokenizer, config: tokenizerConfig)
        try sampling.validate()
        let report = try rejectionSample(
            model: transformer, tokenizer: tokenizer, tokenizerConfig: tokenizerConfig, datasetPath: dataset,
            rewards: rewards, weights: rewardWeight.isEmpty ? reward.map { _ in 1 } : rewardWeight,
            sampling: sampling, threshold: threshold, rule: rule)
        try writeLines(report.lines, to: output)
        print("prompts          \(report.prompts) x \(numGenerations) completions")
        print("mean reward      " + String(format: "%.4f", report.meanScore))
        print(
            "prompts kept     \(report.promptsKept) (\(String(format: "%.1f", 100 * Double(report.promptsKept) / Double(max(report.prompts, 1))))%)"
        )
        print("lines written    \(report.lines.count) to \(output)")
    }
}
