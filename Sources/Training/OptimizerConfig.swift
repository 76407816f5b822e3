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

    /// Reads learning_rate, adam_beta1/2, adam_epsilon, weight_decay, lr_scheduler_type,
    /// warmup_steps, warmup_ratio, max_grad_norm and gradient_accumulation_steps, checking each.
    public init(_ v: ConfigValues, defaultLearningRate: Double) throws {
        adamW.learningRate = try v.double("learning_rate", default: defaultLearningRate)
        adamW.adamBeta1 = try v.double("adam_beta1", default: adamW.adamBeta1)
        adamW.adamBeta2 = try v.double("adam_beta2", default: adamW.adamBeta2)
        adamW.adamEpsilon = try v.double("adam_epsilon", default: adamW.adamEpsilon)
        adamW.weightDecay = try v.double("weight_decay", default: adamW.weightDecay)
        lrSchedulerType = try v.choice("lr_scheduler_type", default: lrSchedulerType)
        warmupSteps = try v.int("warmup_steps")
        warmupRatio = try v.double("warmup_ratio")
        let norm = try v.double("max_grad_norm", default: 1)
        maxGradNorm = norm > 0 ? norm : nil
        gradientAccumulationSteps = try v.int("gradient_accumulation_steps", default: 1)

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
            warmupSteps: warmup(totalSteps: totalSteps), totalSteps: totalSteps)
    }

    /// These keys and their values, for checkpoints and logs.
    public var summary: [String: Any] {
        [
            "learning_rate": adamW.learningRate, "adam_beta1": adamW.adamBeta1, "adam_beta2": adamW.adamBeta2,
            "adam_epsilon": adamW.adamEpsilon, "weight_decay": adamW.weightDecay,
            "lr_scheduler_type": lrSchedulerType.rawValue, "warmup_steps": warmupSteps ?? 0,
            "warmup_ratio": warmupRatio ?? 0, "max_grad_norm": maxGradNorm ?? 0,
            "gradient_accumulation_steps": gradientAccumulationSteps,
        ]
    }
}
