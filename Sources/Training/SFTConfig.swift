import Foundation
import Models
import Tokenizers

/// Every knob of a supervised fine-tuning run, under TRL's SFTConfig names.
///
/// The keys, their types, defaults and help live in `ConfigTable.sft`; this reads them.
public struct SFTConfig: Sendable {
    public var model: String
    public var dataset: String
    public var outputDir: String
    public var seed: UInt64
    public var shuffleDataset: Bool
    /// Sequences per forward/backward micro-batch; a step takes this x gradient_accumulation_steps.
    public var perDeviceTrainBatchSize: Int
    /// Steps, epochs, saving and logging intervals.
    public var schedule: RunSchedule
    /// Tokens per example at most (longer ones are cut at the end, as TRL does).
    public var maxLength: Int?
    /// Learn only completion tokens (prompt/completion data) and assistant turns (chat data).
    public var completionOnlyLoss: Bool
    /// The field of plain-text examples (TRL's `dataset_text_field`).
    public var datasetTextField: String
    public var optimizer: OptimizerConfig
    public var gradientCheckpointing: Bool
    /// The projections' and lm_head's matmul precision (`precision`, or TRL's `bf16: true`).
    public var precision: PrecisionSetting
    public var forwardBatchTokens: Int
    /// Under `mpirun`, the gradients' all-reduce runs in buckets of this many bytes, each started
    /// as soon as the backward has completed it (`ddp_bucket_cap_mb`, PyTorch DDP's 25 MiB).
    public var bucketCapBytes = 25 << 20

    /// LoRA adapters instead of full fine-tuning (TRL's `use_peft` and `lora_*` keys), or nil.
    public var lora: LoRASettings?
    /// An existing PEFT adapter folder to continue training (implies LoRA).
    public var adapter: String?
    /// Delete an existing run's checkpoints in output_dir and start over (TRL's key); without it a
    /// fresh run into such a folder is refused.
    public var overwriteOutputDir: Bool
    /// Variables for the chat template (TRL's `chat_template_kwargs`; `enable_thinking` and the like).
    public var chatTemplateKwargs: [String: Value]
    /// A chat template replacing the model folder's (open-r1's `chat_template`), or nil.
    public var chatTemplate: String?
    /// `resume_from_checkpoint`: a checkpoint folder, "true" for the newest in output_dir, or nil.
    public var resumeFromCheckpoint: String?
    /// One line per given TRL key this project does not act on, with why (print them once).
    public var notes: [String]
    /// The keys and values this config resolved to, for checkpoints and logs.
    public var summary: [String: Any] { summaryValues.value }
    private var summaryValues: SummaryBox

    /// Reads and checks every key; unknown keys and invalid values are errors naming the key.
    public init(_ v: ConfigValues) throws {
        v.use(ConfigTable.sft)
        var notes: [String] = []
        (model, dataset, outputDir, seed) = try v.runBasics()
        shuffleDataset = try v.bool("shuffle_dataset")
        perDeviceTrainBatchSize = try v.int("per_device_train_batch_size")
        schedule = try RunSchedule(v, evaluation: false, notes: &notes)
        let length = try v.int("max_length")
        maxLength = length > 0 ? length : nil
        _ = try v.choiceName("truncation_mode")
        // TRL names it completion_only_loss for prompt/completion data and assistant_only_loss for chats.
        let assistantOnly = try v.bool("assistant_only_loss")
        completionOnlyLoss = try v.bool("completion_only_loss", default: assistantOnly)
        datasetTextField = try v.string("dataset_text_field")
        if try v.bool("packing") {
            throw v.error(
                "packing",
                "packing examples into rows is not offered; sequences are already packed without padding")
        }
        optimizer = try OptimizerConfig(v)
        gradientCheckpointing = try v.bool("gradient_checkpointing")
        precision = try v.precisionSetting()
        forwardBatchTokens = try v.int("forward_batch_tokens")
        let bucketMiB = try v.optionalDouble("ddp_bucket_cap_mb") ?? 25
        guard bucketMiB > 0 && bucketMiB <= Double(1 << 20) else {
            throw v.error(
                "ddp_bucket_cap_mb", "expected MiB per all-reduce bucket, above 0 and at most 1048576")
        }
        bucketCapBytes = max(4, Int(bucketMiB * Double(1 << 20)))
        chatTemplateKwargs = try v.templateKwargs("chat_template_kwargs")
        chatTemplate = try v.optionalString("chat_template")
        overwriteOutputDir = try v.bool("overwrite_output_dir")
        resumeFromCheckpoint = try v.optionalString("resume_from_checkpoint")
        lora = try v.loraSettings()
        adapter = try v.optionalString("adapter")

        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw v.error(key, message) }
        }
        try require(perDeviceTrainBatchSize >= 1, "per_device_train_batch_size", "must be at least 1")
        try require(forwardBatchTokens >= 1, "forward_batch_tokens", "must be at least 1")
        try v.checkAllKnown()
        self.notes = notes + v.notes
        var resolved = v.resolved
        resolved["trainer"] = "sft"
        resolved["completion_only_loss"] = completionOnlyLoss
        resolved["max_length"] = maxLength ?? -1
        resolved.merge(
            runSummary(
                chatTemplateKwargs: chatTemplateKwargs, precision: precision, lora: lora, adapter: adapter)
        ) { _, new in new }
        summaryValues = SummaryBox(resolved)
    }

    /// Examples one optimizer step learns from.
    public var examplesPerStep: Int { perDeviceTrainBatchSize * optimizer.gradientAccumulationSteps }

    /// The run's length over a dataset of `examples`: `max_steps`, else whole steps covering the epochs.
    public func totalSteps(examples: Int) -> Int {
        schedule.totalSteps(stepsPerEpoch: Double(examples) / Double(examplesPerStep))
    }
}
