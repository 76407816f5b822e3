import Foundation
import Models
import Rewards
import Tokenizers

/// Every knob of a GRPO run, under TRL's names (camelCased here, snake_case in YAML and flags).
///
///     var values = ConfigValues()
///     values.merge(try loadYAML("grpo.yaml"), source: "grpo.yaml")
///     values.merge(["learning_rate": "1e-5"], source: "command line")
///     let config = try GRPOConfig(values)
public struct GRPOConfig: Sendable {
    // Data and model
    public var model = ""
    public var dataset = ""
    public var outputDir = "grpo-output"
    public var maxPromptLength: Int?
    public var shuffleDataset = true
    public var seed: UInt64 = 42

    // Sampling
    public var numGenerations = 8
    public var perStepPrompts = 4
    public var maxCompletionLength = 256
    public var temperature: Float = 1
    public var topP: Float = 1
    public var topK = 0
    public var minP: Float = 0
    public var repetitionPenalty: Float = 1

    // Algorithm
    public var beta: Float = 0
    public var epsilon: Float = 0.2
    public var epsilonHigh: Float = 0.2
    public var lossType: LossType = .dapo
    public var scaleRewards: RewardScaling = .group
    public var numIterations = 1
    public var maskTruncatedCompletions = false
    public var dynamicSampling = false
    /// Extra sampling rounds dynamic sampling may take per step before training on what it has.
    public var dynamicSamplingMaxRounds = 8
    /// Truncated importance sampling between the sampler and the trainer, or nil (off).
    public var samplingCorrection: SamplingCorrection?
    public var rewards: [RewardSpec] = [RewardSpec(name: "accuracy")]
    public var rewardWeights: [Double] = [1]

    // Optimizer
    /// AdamW, the learning-rate schedule, clipping and gradient accumulation.
    public var optimizer = OptimizerConfig()
    public var gradientCheckpointing = false
    /// The projections' and lm_head's matmul precision (`precision`, or TRL's `bf16: true`).
    public var precision = PrecisionSetting.float32
    /// Tokens per forward/backward pass at most: a memory knob that leaves the result unchanged
    /// (each sequence's loss weight is fixed before its chunk runs).
    public var forwardBatchTokens = 1024

    // Length of the run, logging, saving
    public var maxSteps = 100
    public var saveSteps = 50
    public var logCompletionsSteps = 10
    /// Steps with a NaN or infinite loss or gradient are skipped; this many stop the run.
    public var maxNonfiniteSteps = 5
    public var maxCacheMiB = 4096

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

    /// Reads and checks every key; unknown keys and invalid combinations are errors naming the key.
    public init(_ v: ConfigValues) throws {
        (model, dataset, outputDir, seed) = try v.runBasics(defaultOutputDir: outputDir)
        maxPromptLength = try v.int("max_prompt_length")
        chatTemplateKwargs = try v.templateKwargs("chat_template_kwargs")
        overwriteOutputDir = try v.bool("overwrite_output_dir", default: false)
        lora = try v.loraSettings()
        adapter = try v.string("adapter")

        shuffleDataset = try v.bool("shuffle_dataset", default: shuffleDataset)

        numGenerations = try v.int("num_generations", default: numGenerations)
        guard numGenerations >= 2 else {
            throw v.error("num_generations", "must be at least 2: group-relative advantages need a group")
        }
        if v.has("generation_batch_size") || v.has("per_device_train_batch_size") {
            let key = v.has("generation_batch_size") ? "generation_batch_size" : "per_device_train_batch_size"
            let completions = try v.int(key)!
            guard completions > 0, completions % numGenerations == 0 else {
                throw v.error(
                    key,
                    "\(completions) completions do not divide into whole groups of num_generations = "
                        + "\(numGenerations)")
            }
            perStepPrompts = completions / numGenerations
        }
        perStepPrompts = try v.int("per_step_prompts", default: perStepPrompts)
        maxCompletionLength = try v.int("max_completion_length", default: maxCompletionLength)
        temperature = Float(try v.double("temperature", default: 1))
        topP = Float(try v.double("top_p", default: 1))
        topK = try v.int("top_k", default: 0)
        minP = Float(try v.double("min_p", default: 0))
        repetitionPenalty = Float(try v.double("repetition_penalty", default: 1))

        beta = Float(try v.double("beta", default: 0))
        epsilon = Float(try v.double("epsilon", default: 0.2))
        epsilonHigh = Float(try v.double("epsilon_high", default: Double(epsilon)))
        lossType = try v.choice("loss_type", default: lossType)
        scaleRewards = try v.choice("scale_rewards", default: scaleRewards)
        numIterations = try v.int("num_iterations", default: numIterations)
        maskTruncatedCompletions = try v.bool("mask_truncated_completions", default: false)
        dynamicSampling = try v.bool("dynamic_sampling", default: false)
        dynamicSamplingMaxRounds = try v.int("dynamic_sampling_max_rounds", default: dynamicSamplingMaxRounds)
        samplingCorrection = try Self.samplingCorrection(v)
        rewards = try Self.rewardSpecs(v)
        if let weights = v.list("reward_weights") {
            rewardWeights = try weights.map {
                guard let w = ($0 as? NSNumber)?.doubleValue ?? Double("\($0)"), w.isFinite else {
                    throw v.error("reward_weights", "expected numbers, got '\($0)'")
                }
                return w
            }
        } else {
            rewardWeights = Array(repeating: 1, count: rewards.count)
        }

        optimizer = try OptimizerConfig(v, defaultLearningRate: 1e-6)
        maxSteps = try v.int("max_steps", default: maxSteps)
        gradientCheckpointing = try v.bool("gradient_checkpointing", default: false)
        precision = try v.precisionSetting()
        forwardBatchTokens = try v.int("forward_batch_tokens", default: forwardBatchTokens)
        saveSteps = try v.int("save_steps", default: saveSteps)
        logCompletionsSteps = try v.int("log_completions_steps", default: logCompletionsSteps)
        maxNonfiniteSteps = try v.int("max_nonfinite_steps", default: maxNonfiniteSteps)
        maxCacheMiB = try v.int("max_cache_mib", default: maxCacheMiB)
        try validate(v)
    }

    /// `importance_sampling_correction` and its mode and bounds, also under TRL's `vllm_` names.
    private static func samplingCorrection(_ v: ConfigValues) throws -> SamplingCorrection? {
        func key(_ name: String) -> String { v.has("vllm_" + name) && !v.has(name) ? "vllm_" + name : name }
        guard try v.bool(key("importance_sampling_correction"), default: false) else {
            for name in [
                "importance_sampling_mode", "importance_sampling_clip_max", "importance_sampling_clip_min",
            ]
            where v.has(key(name)) {
                throw v.error(key(name), "needs importance_sampling_correction: true")
            }
            return nil
        }
        var correction = SamplingCorrection()
        correction.mode = try v.choice(key("importance_sampling_mode"), default: correction.mode)
        correction.clipMax = Float(try v.double(key("importance_sampling_clip_max"), default: 3))
        correction.clipMin = try v.double(key("importance_sampling_clip_min")).map(Float.init)
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

    private static func rewardSpecs(_ v: ConfigValues) throws -> [RewardSpec] {
        guard let items = v.list("rewards") else { return [RewardSpec(name: "accuracy")] }
        guard !items.isEmpty else { throw v.error("rewards", "needs at least one reward") }
        return try items.map { item in
            if let name = item as? String { return RewardSpec(name: name) }
            guard let object = item as? [String: Any], let name = object["name"] as? String else {
                throw v.error("rewards", "each reward is a name or a mapping with 'name', got \(item)")
            }
            var options: [String: String] = [:]
            var lists: [String: [String]] = [:]
            func text(_ value: Any) -> String { (value as? NSNumber)?.stringValue ?? "\(value)" }
            for (key, value) in object where key != "name" {
                if let list = value as? [Any] {
                    lists[key] = list.map(text)
                } else {
                    options[key] = text(value)
                }
            }
            return RewardSpec(name: name, options: options, lists: lists)
        }
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
        try require(numIterations >= 1, "num_iterations", "must be at least 1")
        try require(dynamicSamplingMaxRounds >= 0, "dynamic_sampling_max_rounds", "must not be negative")
        for spec in rewards where !RewardRegistry.names.contains(spec.name) {
            throw v.error(
                "rewards", RewardError.unknownReward(spec.name, known: RewardRegistry.names).description)
        }
        try require(
            rewardWeights.count == rewards.count, "reward_weights",
            "has \(rewardWeights.count) weights for \(rewards.count) rewards")
        try require(maxSteps >= 1, "max_steps", "must be at least 1")
        // A step keeps every completion's tokens, log-probs (sampled, old, reference), advantages and
        // text: about 64 bytes a token. Refuse a step that cannot fit rather than grow until killed.
        let completions = Double(perStepPrompts) * Double(numGenerations)
        let stepBytes = completions * Double(maxCompletionLength) * 64
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        try require(
            stepBytes <= memory / 2, "per_step_prompts",
            String(
                format:
                    "%.0f prompts x %d completions of up to %d tokens need about %.0f GiB a step; this machine has %.0f GiB",
                Double(perStepPrompts), numGenerations, maxCompletionLength, stepBytes / 1_073_741_824,
                memory / 1_073_741_824))
        try require(
            (perStepPrompts * numGenerations) % optimizer.gradientAccumulationSteps == 0,
            "gradient_accumulation_steps",
            "\(optimizer.gradientAccumulationSteps) does not divide the \(perStepPrompts * numGenerations) completions "
                + "of a step (per_step_prompts x num_generations)")
        try require(forwardBatchTokens >= 1, "forward_batch_tokens", "must be at least 1")
        try require(saveSteps >= 1, "save_steps", "must be at least 1")
        try require(logCompletionsSteps >= 0, "log_completions_steps", "must not be negative")
        try require(maxNonfiniteSteps >= 0, "max_nonfinite_steps", "must not be negative")
        try require(maxCacheMiB >= 1, "max_cache_mib", "must be at least 1")
        try v.checkAllKnown()
    }

    /// The YAML keys and values this config resolves to, for checkpoints and logs.
    public var summary: [String: Any] {
        optimizer.summary.merging(
            [
                "model": model, "dataset": dataset, "output_dir": outputDir, "seed": seed,
                "num_generations": numGenerations, "per_step_prompts": perStepPrompts,
                "max_completion_length": maxCompletionLength, "temperature": temperature, "top_p": topP,
                "top_k": topK, "min_p": minP, "beta": beta, "epsilon": epsilon, "epsilon_high": epsilonHigh,
                "loss_type": lossType.rawValue, "scale_rewards": scaleRewards.rawValue,
                "num_iterations": numIterations, "mask_truncated_completions": maskTruncatedCompletions,
                "dynamic_sampling": dynamicSampling, "rewards": rewards.map(\.name),
                "importance_sampling_correction": samplingCorrection != nil,
                "importance_sampling_mode": samplingCorrection?.mode.rawValue ?? NSNull(),
                "importance_sampling_clip_max": (samplingCorrection?.clipMax).map { Double($0) } ?? NSNull(),
                "importance_sampling_clip_min": (samplingCorrection?.clipMin).map { Double($0) } ?? NSNull(),
                "reward_weights": rewardWeights,
                "max_steps": maxSteps,
            ].merging(
                runSummary(
                    trainer: "grpo", chatTemplateKwargs: chatTemplateKwargs, precision: precision, lora: lora,
                    adapter: adapter)
            ) { _, new in new }
        ) { _, new in new }
    }
}
