import Foundation

/// The optimizer and schedule keys `grpo train` and `grpo sft` share, under TRL's names.
public struct OptimizerConfig: Sendable {
    public var adamW = AdamWSettings()
    public var lrSchedulerType: LRSchedulerType = .linear
    /// Warmup steps given directly; `warmup_ratio` resolves against the run's length.
    public var warmupSteps: Int?
    public var warmupRatio: Double?
    public var maxGradNorm: Double? = 1
    public var gradientAccumulationSteps = 1

    public init() {}

    /// The minimum learning rate as a fraction of the peak (`cosine_with_min_lr`).
    public var minLearningRateRate = 0.0

    /// Reads learning_rate, adam_beta1/2, adam_epsilon, weight_decay, optim, lr_scheduler_type and
    /// its kwargs, warmup_steps, warmup_ratio, max_grad_norm and gradient_accumulation_steps.
    public init(_ v: ConfigValues) throws {
        adamW.learningRate = try v.double("learning_rate")
        adamW.adamBeta1 = try v.double("adam_beta1")
        adamW.adamBeta2 = try v.double("adam_beta2")
        adamW.adamEpsilon = try v.double("adam_epsilon")
        adamW.weightDecay = try v.double("weight_decay")
        _ = try v.choiceName("optim")
        lrSchedulerType = try v.choice("lr_scheduler_type")
        let kwargs = try v.mapping("lr_scheduler_kwargs") ?? [:]
        for key in kwargs.keys.sorted() where !["min_lr", "min_lr_rate", "num_cycles"].contains(key) {
            throw v.error("lr_scheduler_kwargs", "'\(key)' is not offered (min_lr, min_lr_rate)")
        }
        if let cycles = kwargs["num_cycles"], "\(cycles)" != "0.5" {
            throw v.error("lr_scheduler_kwargs", "num_cycles other than 0.5 is not offered")
        }
        if let rate = (kwargs["min_lr_rate"] as? NSNumber)?.doubleValue {
            minLearningRateRate = rate
        } else if let lr = (kwargs["min_lr"] as? NSNumber)?.doubleValue {
            minLearningRateRate = adamW.learningRate > 0 ? lr / adamW.learningRate : 0
        } else if !kwargs.isEmpty || lrSchedulerType == .cosineWithMinLR {
            if lrSchedulerType == .cosineWithMinLR {
                throw v.error(
                    "lr_scheduler_kwargs", "cosine_with_min_lr needs min_lr or min_lr_rate (a number)")
            }
        }
        if !kwargs.isEmpty && lrSchedulerType != .cosineWithMinLR {
            throw v.error("lr_scheduler_kwargs", "min_lr and min_lr_rate apply to cosine_with_min_lr only")
        }
        // transformers 5 takes a warmup_steps below 1 as a fraction of the run.
        let warmup = try v.double("warmup_steps")
        if v.has("warmup_steps") && warmup > 0 && warmup < 1 {
            warmupRatio = warmup
        } else {
            guard warmup >= 0, warmup == warmup.rounded() else {
                throw v.error("warmup_steps", "must be a whole number of steps, or a fraction below 1")
            }
            warmupSteps = v.has("warmup_steps") ? Int(warmup) : nil
        }
        if let ratio = try v.optionalDouble("warmup_ratio") {
            if warmupSteps != nil || warmupRatio != nil {
                throw v.error("warmup_ratio", "give warmup_steps or warmup_ratio, not both")
            }
            warmupRatio = ratio
        }
        let norm = try v.double("max_grad_norm")
        maxGradNorm = norm > 0 ? norm : nil
        gradientAccumulationSteps = try v.int("gradient_accumulation_steps")

        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw v.error(key, message) }
        }
        try require(adamW.learningRate >= 0, "learning_rate", "must not be negative")
        try require((0..<1).contains(adamW.adamBeta1), "adam_beta1", "must be in [0, 1)")
        try require((0..<1).contains(adamW.adamBeta2), "adam_beta2", "must be in [0, 1)")
        try require(adamW.adamEpsilon > 0, "adam_epsilon", "must be positive")
        try require(adamW.weightDecay >= 0, "weight_decay", "must not be negative")
        try require((warmupSteps ?? 0) >= 0, "warmup_steps", "must not be negative")
        try require((0...1).contains(warmupRatio ?? 0), "warmup_ratio", "must be between 0 and 1")
        try require(
            (0...1).contains(minLearningRateRate), "lr_scheduler_kwargs",
            "min_lr_rate must be between 0 and 1")
        try require(gradientAccumulationSteps >= 1, "gradient_accumulation_steps", "must be at least 1")
    }

    /// Warmup steps for a run of `totalSteps`: `warmup_steps` if given, else `warmup_ratio` of the run.
    public func warmup(totalSteps: Int) -> Int {
        warmupSteps ?? Int(((warmupRatio ?? 0) * Double(totalSteps)).rounded(.up))
    }

    /// The learning rate at 0-based optimizer step `step` of `totalSteps`.
    public func learningRate(step: Int, totalSteps: Int) -> Double {
        Training.learningRate(
            step: step, base: adamW.learningRate, schedule: lrSchedulerType,
            warmupSteps: warmup(totalSteps: totalSteps), totalSteps: totalSteps, minRate: minLearningRateRate)
    }

    /// These keys and their values, for checkpoints and logs.
    public var summary: [String: Any] {
        [
            "learning_rate": adamW.learningRate, "adam_beta1": adamW.adamBeta1, "adam_beta2": adamW.adamBeta2,
            "adam_epsilon": adamW.adamEpsilon, "weight_decay": adamW.weightDecay,
            "lr_scheduler_type": lrSchedulerType.rawValue, "warmup_steps": warmupSteps ?? 0,
            "warmup_ratio": warmupRatio ?? 0, "max_grad_norm": maxGradNorm ?? 0,
            "min_lr_rate": minLearningRateRate,
            "gradient_accumulation_steps": gradientAccumulationSteps,
        ]
    }
}
