import Foundation
import Models
import Tokenizers

/// Every knob of a supervised fine-tuning run, under TRL's SFTConfig names.
public struct SFTConfig: Sendable {
    public var model = ""
    public var dataset = ""
    public var outputDir = "sft-output"
    public var seed: UInt64 = 42
    public var shuffleDataset = true
    /// Sequences per forward/backward micro-batch; a step takes this x gradient_accumulation_steps.
    public var perDeviceTrainBatchSize = 8
    public var numTrainEpochs = 3.0
    /// Steps to run; nil runs `num_train_epochs` over the dataset.
    public var maxSteps: Int?
    /// Tokens per example at most (longer ones are cut at the end, as TRL does).
    public var maxLength: Int? = 1024
    /// Learn only completion tokens (prompt/completion data) and assistant turns (chat data).
    public var completionOnlyLoss = true
    public var optimizer = OptimizerConfig()
    public var gradientCheckpointing = false
    /// The projections' and lm_head's matmul precision (`precision`, or TRL's `bf16: true`).
    public var precision = PrecisionSetting.float32
    public var forwardBatchTokens = 4096
    public var saveSteps = 500
    public var maxNonfiniteSteps = 5

    public init() {}

    /// LoRA adapters instead of full fine-tuning (TRL's `use_peft` and `lora_*` keys), or nil.
    public var lora: LoRASettings?
    /// An existing PEFT adapter folder to continue training (implies LoRA).
    public var adapter: String?
    /// Delete an existing run's checkpoints in output_dir and start over (TRL's key); without it a
    /// fresh run into such a folder is refused.
    public var overwriteOutputDir = false
    /// Variables for the chat template (TRL's `chat_template_kwargs`; `enable_thinking` and the like).
    public var chatTemplateKwargs: [String: Value] = [:]

    /// Reads and checks every key; unknown keys and invalid values are errors naming the key.
    public init(_ v: ConfigValues) throws {
        (model, dataset, outputDir, seed) = try v.runBasics(defaultOutputDir: outputDir)
        shuffleDataset = try v.bool("shuffle_dataset", default: shuffleDataset)
        perDeviceTrainBatchSize = try v.int("per_device_train_batch_size", default: perDeviceTrainBatchSize)
        numTrainEpochs = try v.double("num_train_epochs", default: numTrainEpochs)
        let steps = try v.int("max_steps", default: -1)
        maxSteps = steps > 0 ? steps : nil
        let length = try v.int("max_length", default: 1024)
        maxLength = length > 0 ? length : nil
        // TRL names it completion_only_loss for prompt/completion data and assistant_only_loss for chats.
        completionOnlyLoss = try v.bool(
            "completion_only_loss", default: try v.bool("assistant_only_loss", default: true))
        optimizer = try OptimizerConfig(v, defaultLearningRate: 2e-5)
        gradientCheckpointing = try v.bool("gradient_checkpointing", default: false)
        precision = try v.precisionSetting()
        forwardBatchTokens = try v.int("forward_batch_tokens", default: forwardBatchTokens)
        saveSteps = try v.int("save_steps", default: saveSteps)
        maxNonfiniteSteps = try v.int("max_nonfinite_steps", default: maxNonfiniteSteps)
        chatTemplateKwargs = try v.templateKwargs("chat_template_kwargs")
        overwriteOutputDir = try v.bool("overwrite_output_dir", default: false)
        lora = try v.loraSettings()
        adapter = try v.string("adapter")

        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw v.error(key, message) }
        }
        try require(perDeviceTrainBatchSize >= 1, "per_device_train_batch_size", "must be at least 1")
        try require(
            numTrainEpochs > 0 && numTrainEpochs.isFinite, "num_train_epochs", "must be a positive number")
        try require(forwardBatchTokens >= 1, "forward_batch_tokens", "must be at least 1")
        try require(saveSteps >= 1, "save_steps", "must be at least 1")
        try require(maxNonfiniteSteps >= 0, "max_nonfinite_steps", "must not be negative")
        try v.checkAllKnown()
    }

    /// Examples one optimizer step learns from.
    public var examplesPerStep: Int { perDeviceTrainBatchSize * optimizer.gradientAccumulationSteps }

    /// The run's length over a dataset of `examples`: `max_steps`, else whole steps covering the epochs.
    public func totalSteps(examples: Int) -> Int {
        maxSteps ?? max(1, Int((numTrainEpochs * Double(examples) / Double(examplesPerStep)).rounded(.up)))
    }

    /// The YAML keys and values this config resolves to, for checkpoints and logs.
    public var summary: [String: Any] {
        optimizer.summary.merging(
            [
                "model": model, "dataset": dataset, "output_dir": outputDir, "seed": seed,
                "per_device_train_batch_size": perDeviceTrainBatchSize, "num_train_epochs": numTrainEpochs,
                "max_steps": maxSteps ?? -1, "max_length": maxLength ?? -1,
                "completion_only_loss": completionOnlyLoss,
            ].merging(
                runSummary(
                    trainer: "sft", chatTemplateKwargs: chatTemplateKwargs, precision: precision, lora: lora,
                    adapter: adapter)
            ) { _, new in new }
        ) { _, new in new }
    }
}
