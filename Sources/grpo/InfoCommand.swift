import ArgumentParser
import Foundation
import Models
import Training

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Architecture, parameter count and memory by category.",
        discussion: """
            With --algorithm, also a dry-run estimate of what one training step holds, by the \
            categories the trainer logs as memory/... in metrics.jsonl: policy weights, gradients, \
            AdamW moments, the reference model, PPO's critic (weights, gradients and moments), \
            activations, the KV cache and the logits chunk.
            """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Estimate a training step's memory under grpo, rloo, reinforce_pp or ppo.")
    var algorithm: AdvantageEstimator?
    @Option(help: "GRPO's KL weight (a reference model is held when positive). (default: 0)") var beta:
        Double?
    @Option(name: .customLong("kl_coef"), help: "PPO's KL weight. (default: 0.05)") var klCoef: Double?
    @Option(
        name: .customLong("lora_r"), help: "LoRA rank on all linear projections (default: full fine-tune).")
    var loraR: Int?
    @Option(help: "Matmul precision: float32, bf16 or auto. (default: float32)") var precision:
        PrecisionSetting?
    @Option(help: "Completions per optimizer step.") var completions = 64
    @Option(name: .customLong("num_generations"), help: "Completions per prompt.") var numGenerations = 8
    @Option(name: .customLong("max_prompt_length"), help: "Prompt tokens.") var promptLength = 128
    @Option(name: .customLong("max_completion_length"), help: "Completion tokens.") var completionLength = 256
    @Option(name: .customLong("forward_batch_tokens"), help: "Tokens per forward/backward pass.")
    var forwardBatchTokens = 1024
    @Option(name: .customLong("num_mini_batches"), help: "PPO's mini-batches per rollout.")
    var numMiniBatches = 1
    @Flag(name: .customLong("gradient_checkpointing"), help: "Keep one layer's activations.")
    var gradientCheckpointing = false

    func run() throws {
        let config = try model.load().config
        print(ModelInfo(config: config).report())
        guard let algorithm else { return }
        guard completions >= 1, numGenerations >= 1, promptLength >= 1, completionLength >= 1,
            forwardBatchTokens >= 1, numMiniBatches >= 1, (loraR ?? 1) >= 1
        else {
            throw ValidationError("the batch options and --lora_r must be at least 1")
        }
        if algorithm == .ppo && beta != nil {
            throw ValidationError("--beta is GRPO's; PPO's KL weight is --kl_coef")
        }
        if algorithm != .ppo && klCoef != nil {
            throw ValidationError("--kl_coef applies to --algorithm ppo")
        }
        var batch = MemoryEstimate.Batch()
        batch.completions = completions
        batch.numGenerations = numGenerations
        batch.promptLength = promptLength
        batch.completionLength = completionLength
        batch.forwardBatchTokens = forwardBatchTokens
        let lora = loraR.map { rank -> LoRASettings in
            var settings = LoRASettings()
            settings.rank = rank
            settings.targetModules = ["all-linear"]
            return settings
        }
        let resolved = (precision ?? .float32).resolved()
        if let warning = resolved.note {
            FileHandle.standardError.write(Data(("warning: " + warning + "\n").utf8))
        }
        let estimate = MemoryEstimate(
            config: config, algorithm: algorithm,
            referenceWeight: algorithm == .ppo ? klCoef ?? 0.05 : beta ?? 0, lora: lora,
            precision: resolved.0,
            gradientCheckpointing: gradientCheckpointing, batch: batch, numMiniBatches: numMiniBatches)
        let how = lora.map { "LoRA r \($0.rank), all-linear" } ?? "full fine-tune"
        print("")
        print(
            "training step estimate: \(algorithm.rawValue), \(how), \(resolved.0), \(completions) completions "
                + "of \(promptLength) + \(completionLength) tokens")
        for (name, bytes) in estimate.categories {
            print(pad("  memory/" + name, 36) + formatBytes(bytes))
        }
        print(pad("  total", 36) + formatBytes(estimate.total))
    }
}

extension AdvantageEstimator: ExpressibleByArgument {}
