import Foundation
import Models
import Rewards
import Tokenizers

/// Every knob of a GRPO run, under TRL's names (camelCased here, snake_case in YAML and flags).
///
/// The keys, their types, defaults and help live in `ConfigTable.grpo`; this reads them.
///
///     var values = ConfigValues()
///     values.merge(try loadYAML("grpo.yaml"), source: "grpo.yaml")
///     values.merge(["learning_rate": "1e-5"], source: "command line")
///     let config = try GRPOConfig(values)
public struct GRPOConfig: Sendable {
    // Data and model
    public var model: String
    public var dataset: String
    public var outputDir: String
    public var maxPromptLength: Int?
    public var shuffleDataset: Bool
    public var seed: UInt64
    /// How dataset lines become prompts (`dataset_prompt_column`, `system_prompt`).
    public var promptFormat: PromptFormat

    // Sampling
    public var numGenerations: Int
    public var perStepPrompts: Int
    public var maxCompletionLength: Int
    public var temperature: Float
    public var topP: Float
    public var topK: Int
    public var minP: Float
    public var repetitionPenalty: Float

    // Algorithm
    public var beta: Float
    public var epsilon: Float
    public var epsilonHigh: Float
    /// Two-sided clipping (TRL's `delta`), or nil.
    public var delta: Float?
    /// Token ratios, or GSPO's sequence ratios.
    public var importanceSamplingLevel: ImportanceSamplingLevel
    /// TRL's `use_bias_correction_kl` (its default, true).
    public var useBiasCorrectionKL: Bool
    public var lossType: LossType
    public var scaleRewards: RewardScaling
    /// The advantage estimator (`algorithm`).
    public var algorithm: AdvantageEstimator
    /// RLOO's batch whitening (TRL's `normalize_advantages`).
    public var normalizeAdvantages: Bool
    public var numIterations: Int
    /// PPO's critic, GAE and losses (`algorithm: ppo`), else nil.
    public var ppo: PPOSettings?
    /// Prompts sampled per trainer step: `perStepPrompts`, times PPO's `num_mini_batches` (PPO's
    /// step is a rollout batch and every optimizer step on it, as TRL counts).
    public var promptsPerRound: Int { perStepPrompts * (ppo?.numMiniBatches ?? 1) }
    public var maskTruncatedCompletions: Bool
    public var dynamicSampling: Bool
    /// Extra sampling rounds dynamic sampling may take per step before training on what it has.
    public var dynamicSamplingMaxRounds: Int
    /// Truncated importance sampling between the sampler and the trainer, or nil (off).
    public var samplingCorrection: SamplingCorrection?
    public var rewards: [RewardSpec]
    public var rewardWeights: [Double]

    // Optimizer
    /// AdamW, the learning-rate schedule, clipping and gradient accumulation.
    public var optimizer: OptimizerConfig
    public var gradientCheckpointing: Bool
    /// The projections' and lm_head's matmul precision (`precision`, or TRL's `bf16: true`).
    public var precision: PrecisionSetting
    /// Tokens per forward/backward pass at most: a memory knob that leaves the result unchanged
    /// (each sequence's loss weight is fixed before its chunk runs).
    public var forwardBatchTokens: Int
    /// Under `mpirun`, the gradients' all-reduce runs in buckets of this many bytes, each started
    /// as soon as the backward has completed it (`ddp_bucket_cap_mb`, PyTorch DDP's 25 MiB).
    public var bucketCapBytes = 25 << 20

    // Length of the run, logging, saving, evaluation
    /// Steps, epochs, saving, logging and evaluation intervals.
    public var schedule: RunSchedule
    /// Steps between printed samples (0: none); nil: every logging step with `log_completions`,
    /// else 10.
    public var logCompletionsSteps: Int?
    public var logCompletions: Bool?
    public var numCompletionsToPrint: Int
    public var maxCacheMiB: Int
    /// Held-out prompts measured during training, or nil.
    public var evaluation: EvaluationSettings?

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

    /// Reads and checks every key; unknown keys and invalid combinations are errors naming the key.
    public init(_ v: ConfigValues) throws {
        v.use(ConfigTable.grpo)
        var notes: [String] = []
        self.notes = []
        summaryValues = SummaryBox([:])
        (model, dataset, outputDir, seed) = try v.runBasics()
        maxPromptLength = try v.optionalInt("max_prompt_length")
        promptFormat = try PromptFormat(v)
        chatTemplateKwargs = try v.templateKwargs("chat_template_kwargs")
        chatTemplate = try v.optionalString("chat_template")
        overwriteOutputDir = try v.bool("overwrite_output_dir")
        resumeFromCheckpoint = try v.optionalString("resume_from_checkpoint")
        lora = try v.loraSettings()
        adapter = try v.optionalString("adapter")
        shuffleDataset = try v.bool("shuffle_dataset")

        optimizer = try OptimizerConfig(v)
        algorithm = try v.choice("algorithm")
        numGenerations = try v.int("num_generations")
        guard numGenerations >= (algorithm == .ppo ? 1 : 2) else {
            throw v.error(
                "num_generations",
                algorithm == .ppo
                    ? "must be at least 1" : "must be at least 2: group-relative advantages need a group")
        }
        perStepPrompts = try Self.promptsPerStep(
            v, numGenerations: numGenerations, accumulation: optimizer.gradientAccumulationSteps)
        maxCompletionLength = try v.int("max_completion_length")
        temperature = Float(try v.double("temperature"))
        topP = Float(try v.double("top_p"))
        topK = try v.int("top_k")
        minP = Float(try v.double("min_p"))
        repetitionPenalty = Float(try v.double("repetition_penalty"))

        beta = Float(try v.double("beta"))
        epsilon = Float(try v.double("epsilon"))
        epsilonHigh = Float(try v.double("epsilon_high", default: Double(epsilon)))
        delta = try v.optionalDouble("delta").map(Float.init)
        importanceSamplingLevel = try v.choice("importance_sampling_level")
        useBiasCorrectionKL = try v.bool("use_bias_correction_kl")
        lossType = try v.choice("loss_type")
        scaleRewards = try Self.rewardScaling(v)
        ppo = try Self.ppoSettings(v, algorithm: algorithm)
        normalizeAdvantages = try v.bool("normalize_advantages")
        if normalizeAdvantages && algorithm != .rloo {
            throw v.error("normalize_advantages", "applies to algorithm: rloo (grpo has scale_rewards)")
        }
        if algorithm == .rloo {
            for key in ["loss_type", "importance_sampling_level", "delta", "use_bias_correction_kl"]
            where v.has(key) {
                throw v.error(
                    key,
                    "does not apply to algorithm: rloo (TRL's RLOO objective: one ratio per sequence from its summed "
                        + "log-ratio, the mean over sequences, the KL in the reward)")
            }
        }
        if algorithm != .grpo && algorithm != .ppo && v.has("scale_rewards") {
            throw v.error(
                "scale_rewards", "applies to algorithm: grpo (\(algorithm.rawValue) scales its own way)")
        }
        numIterations = try v.int("num_iterations")
        maskTruncatedCompletions = try v.bool("mask_truncated_completions")
        dynamicSampling = try v.bool("dynamic_sampling")
        dynamicSamplingMaxRounds = try v.int("dynamic_sampling_max_rounds")
        samplingCorrection = try Self.samplingCorrection(v)
        let rewardSettings = try RewardSettings(v)
        rewards = rewardSettings.specs
        rewardWeights = rewardSettings.weights

        gradientCheckpointing = try v.bool("gradient_checkpointing")
        precision = try v.precisionSetting()
        forwardBatchTokens = try v.int("forward_batch_tokens")
        let bucketMiB = try v.optionalDouble("ddp_bucket_cap_mb") ?? 25
        guard bucketMiB > 0 && bucketMiB <= Double(1 << 20) else {
            throw v.error(
                "ddp_bucket_cap_mb", "expected MiB per all-reduce bucket, above 0 and at most 1048576")
        }
        bucketCapBytes = max(4, Int(bucketMiB * Double(1 << 20)))
        schedule = try RunSchedule(v, evaluation: true, notes: &notes)
        logCompletions = v.has("log_completions") ? try v.bool("log_completions") : nil
        logCompletionsSteps = try v.optionalInt("log_completions_steps")
        numCompletionsToPrint = try v.int("num_completions_to_print", default: 1)
        maxCacheMiB = try v.int("max_cache_mib")
        evaluation = try EvaluationSettings(v, schedule: schedule, trainingDataset: dataset)
        try validate(v)
        self.notes = notes + v.notes
        var resolved = v.resolved
        resolved["trainer"] = "grpo"
        resolved["per_step_prompts"] = perStepPrompts
        resolved["epsilon_high"] = Double(epsilonHigh)
        resolved["scale_rewards"] = scaleRewards.rawValue
        resolved["rewards"] = rewards.map(\.name)
        resolved["reward_weights"] = rewardWeights
        resolved.merge(
            runSummary(
                chatTemplateKwargs: chatTemplateKwargs, precision: precision, lora: lora, adapter: adapter)
        ) { _, new in new }
        resolved.merge(correctionSummary) { _, new in new }
        summaryValues = SummaryBox(resolved)
    }

    /// PPO's settings (TRL's `PPOConfig` keys) for `algorithm: ppo`, else nil; GRPO's keys that PPO
    /// replaces, and PPO's keys without it, are errors naming the key.
    private static func ppoSettings(_ v: ConfigValues, algorithm: AdvantageEstimator) throws -> PPOSettings? {
        let keys = [
            "value_model", "kl_coef", "kl_estimator", "cliprange", "vf_coef", "cliprange_value", "gamma",
            "lam",
            "num_ppo_epochs", "num_mini_batches", "whiten_rewards", "missing_eos_penalty",
        ]
        guard algorithm == .ppo else {
            if let key = keys.first(where: v.has) { throw v.error(key, "applies to algorithm: ppo") }
            return nil
        }
        let replaced = [
            ("beta", "kl_coef"), ("epsilon", "cliprange"), ("epsilon_high", "cliprange"),
            ("delta", "cliprange"),
            ("num_iterations", "num_ppo_epochs"), ("scale_rewards", "whiten_rewards"),
            ("loss_type", "PPO's token mean per micro-batch"),
            ("importance_sampling_level", "PPO's token ratios"),
            ("use_bias_correction_kl", "kl_estimator"),
            ("normalize_advantages", "PPO's whitened GAE advantages"),
        ]
        for (key, instead) in replaced where v.has(key) {
            throw v.error(key, "does not apply to algorithm: ppo (it has \(instead))")
        }
        var s = PPOSettings()
        s.valueModel = try v.optionalString("value_model")
        s.klCoef = Float(try v.double("kl_coef"))
        s.klEstimator = try v.choice("kl_estimator")
        s.clipRange = Float(try v.double("cliprange"))
        s.vfCoef = Float(try v.double("vf_coef"))
        s.clipRangeValue = Float(try v.double("cliprange_value"))
        s.gamma = Float(try v.double("gamma"))
        s.lam = Float(try v.double("lam"))
        s.numPPOEpochs = try v.int("num_ppo_epochs")
        s.numMiniBatches = try v.int("num_mini_batches")
        s.whitenRewards = try v.bool("whiten_rewards")
        s.missingEOSPenalty = try v.optionalDouble("missing_eos_penalty").map(Float.init)
        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw v.error(key, message) }
        }
        try require(s.klCoef >= 0, "kl_coef", "must not be negative")
        try require(s.clipRange > 0 && s.clipRange < 1, "cliprange", "must be in (0, 1)")
        try require(s.vfCoef > 0, "vf_coef", "must be positive (the critic learns from the value loss alone)")
        try require(s.clipRangeValue > 0, "cliprange_value", "must be positive")
        try require(s.gamma >= 0 && s.gamma <= 1, "gamma", "must be in [0, 1]")
        try require(s.lam >= 0 && s.lam <= 1, "lam", "must be in [0, 1]")
        try require(s.numPPOEpochs >= 1, "num_ppo_epochs", "must be at least 1")
        try require(s.numMiniBatches >= 1, "num_mini_batches", "must be at least 1")
        try require(
            s.missingEOSPenalty.map { $0 >= 0 } ?? true, "missing_eos_penalty",
            "must not be negative (TRL: the penalty is subtracted)")
        if let folder = s.valueModel, !FileManager.default.fileExists(atPath: folder + "/config.json") {
            throw v.error("value_model", "\(folder) is not a model folder (no config.json)")
        }
        return s
    }

    /// Prompts per optimizer step: `per_step_prompts`, or TRL's arithmetic, where a step takes
    /// `per_device_train_batch_size` x `gradient_accumulation_steps` completions (or
    /// `generation_batch_size` of them) in groups of `num_generations`.
    private static func promptsPerStep(_ v: ConfigValues, numGenerations: Int, accumulation: Int) throws
        -> Int
    {
        let perDevice = try v.optionalInt("per_device_train_batch_size")
        let generation = try v.optionalInt("generation_batch_size")
        let stepsPerGeneration = try v.optionalInt("steps_per_generation")
        if generation != nil && stepsPerGeneration != nil {
            throw v.error(
                "steps_per_generation",
                "give generation_batch_size or steps_per_generation, not both (TRL's rule)")
        }
        if let stepsPerGeneration, stepsPerGeneration != accumulation {
            throw v.error(
                "steps_per_generation",
                "is \(stepsPerGeneration) but gradient_accumulation_steps is \(accumulation): here each "
                    + "generation feeds one optimizer step, so they must be equal (use num_iterations to reuse a generation)"
            )
        }
        var completions: (key: String, count: Int)?
        if let generation {
            if let perDevice, generation != perDevice * accumulation {
                throw v.error(
                    "generation_batch_size",
                    "is \(generation) but per_device_train_batch_size x gradient_accumulation_steps is "
                        + "\(perDevice * accumulation): here each generation feeds one optimizer step, so they must be equal"
                )
            }
            completions = ("generation_batch_size", generation)
        } else if let perDevice {
            completions = ("per_device_train_batch_size", perDevice * accumulation)
        }
        guard let completions else { return try v.int("per_step_prompts") }
        guard completions.count > 0, completions.count % numGenerations == 0 else {
            let how =
                completions.key == "per_device_train_batch_size"
                ? " (x gradient_accumulation_steps \(accumulation))" : ""
            throw v.error(
                completions.key,
                "\(completions.count) completions a step\(how) do not divide into whole groups of "
                    + "num_generations = \(numGenerations)")
        }
        let prompts = completions.count / numGenerations
        if v.has("per_step_prompts"), try v.int("per_step_prompts") != prompts {
            throw v.error(
                "per_step_prompts",
                "is \(try v.int("per_step_prompts")) but \(completions.key) gives \(prompts) prompts a step; give one of them"
            )
        }
        return prompts
    }

    /// `scale_rewards`: group, batch or none, or TRL's older true (group) and false (none).
    private static func rewardScaling(_ v: ConfigValues) throws -> RewardScaling {
        guard v.has("scale_rewards") else { return try v.choice("scale_rewards") }
        if let text = try? v.optionalString("scale_rewards") {
            switch text.lowercased() {
            case "true": return .group
            case "false": return RewardScaling.none
            default: break
            }
        }
        return try v.choice("scale_rewards")
    }

    /// The importance-sampling keys as the summary records them.
    private var correctionSummary: [String: Any] {
        [
            "importance_sampling_correction": samplingCorrection != nil,
            "importance_sampling_mode": samplingCorrection?.mode.rawValue ?? NSNull(),
            "importance_sampling_clip_max": (samplingCorrection?.clipMax).map { Double($0) } ?? NSNull(),
            "importance_sampling_clip_min": (samplingCorrection?.clipMin).map { Double($0) } ?? NSNull(),
        ]
    }

    /// `importance_sampling_correction` and its mode and bounds, also under TRL's `vllm_` names.
    private static func samplingCorrection(_ v: ConfigValues) throws -> SamplingCorrection? {
        // TRL names them vllm_importance_sampling_*; either name, the plain one winning.
        func key(_ name: String) -> String { v.has("vllm_" + name) && !v.has(name) ? "vllm_" + name : name }
        let names = [
            "importance_sampling_mode", "importance_sampling_clip_max", "importance_sampling_clip_min",
        ]
        guard try v.bool(key("importance_sampling_correction"), default: false) else {
            for name in names where v.has(key(name)) {
                throw v.error(key(name), "needs importance_sampling_correction: true")
            }
            return nil
        }
        var correction = SamplingCorrection()
        if let text = try v.optionalString(key("importance_sampling_mode")) {
            guard let mode = ImportanceSamplingMode(rawValue: text) else {
                throw v.error(
                    key("importance_sampling_mode"),
                    "expected one of \(ImportanceSamplingMode.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'"
                )
            }
            correction.mode = mode
        }
        correction.clipMax = Float(try v.double(key("importance_sampling_clip_max"), default: 3))
        correction.clipMin = try v.optionalDouble(key("importance_sampling_clip_min")).map(Float.init)
        if let low = correction.clipMin, let high = correction.clipMax, !(low >= 0 && low < high) {
            throw v.error(
                key("importance_sampling_clip_min"),
                "must be at least 0 and below importance_sampling_clip_max (\(high))")
        }
        if let high = correction.clipMax, !(high > 0) {
            throw v.error(key("importance_sampling_clip_max"), "must be positive")
        }
        return correction
    }

    private func validate(_ v: ConfigValues) throws {
        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw v.error(key, message) }
        }
        try require(perStepPrompts >= 1, "per_step_prompts", "must be at least 1")
        try require(maxCompletionLength >= 1, "max_completion_length", "must be at least 1")
        try require(maxPromptLength.map { $0 >= 1 } ?? true, "max_prompt_length", "must be at least 1")
        try require(
            temperature > 0, "temperature", "must be positive for GRPO (sampling a group needs randomness)")
        try require(
            temperature >= 1e-3, "temperature",
            "must be at least 0.001 (below that, logits / temperature overflow float32), got \(temperature)")
        try require(topP > 0 && topP <= 1, "top_p", "must be in (0, 1]")
        try require(topK >= 0, "top_k", "must not be negative")
        try require(minP >= 0 && minP < 1, "min_p", "must be in [0, 1)")
        try require(repetitionPenalty > 0, "repetition_penalty", "must be positive")
        try require(beta >= 0, "beta", "must not be negative")
        try require(epsilon >= 0 && epsilon < 1, "epsilon", "must be in [0, 1)")
        try require(epsilonHigh >= 0, "epsilon_high", "must not be negative")
        try require(
            delta.map { $0 > 1 + epsilonHigh } ?? true, "delta",
            "must exceed 1 + epsilon_high (\(1 + epsilonHigh)): it caps ratios above the clip")
        try require(
            lossType != .cispo || epsilonHigh > 0, "epsilon_high", "must be positive for cispo (its cap)")
        try require(numIterations >= 1, "num_iterations", "must be at least 1")
        try require(dynamicSamplingMaxRounds >= 0, "dynamic_sampling_max_rounds", "must not be negative")
        // A step keeps every completion's tokens, log-probs (sampled, old, reference), advantages and
        // text: about 64 bytes a token. Refuse a step that cannot fit rather than grow until killed.
        let completions = Double(promptsPerRound) * Double(numGenerations)
        let stepBytes = completions * Double(maxCompletionLength) * 64
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        try require(
            stepBytes <= memory / 2, "per_step_prompts",
            String(
                format:
                    "%.0f prompts x %d completions of up to %d tokens need about %.0f GiB a step; this machine has %.0f GiB",
                Double(promptsPerRound), numGenerations, maxCompletionLength, stepBytes / 1_073_741_824,
                memory / 1_073_741_824))
        try require(
            (perStepPrompts * numGenerations) % optimizer.gradientAccumulationSteps == 0,
            "gradient_accumulation_steps",
            "\(optimizer.gradientAccumulationSteps) does not divide the \(perStepPrompts * numGenerations) completions "
                + "of a step (per_step_prompts x num_generations)")
        try require(forwardBatchTokens >= 1, "forward_batch_tokens", "must be at least 1")
        try require((logCompletionsSteps ?? 0) >= 0, "log_completions_steps", "must not be negative")
        try require(numCompletionsToPrint >= 1, "num_completions_to_print", "must be at least 1")
        try require(maxCacheMiB >= 1, "max_cache_mib", "must be at least 1")
        try v.checkAllKnown()
    }
}

/// A summary dictionary held in a Sendable config (its values are plain JSON-like ones).
struct SummaryBox: @unchecked Sendable {
    let value: [String: Any]
    init(_ value: [String: Any]) { self.value = value }
}
