import Foundation

/// The learning-rate curve after warmup: TRL/transformers' `lr_scheduler_type`.
public enum LRSchedulerType: String, Sendable, CaseIterable, Codable {
    case constant
    case constantWithWarmup = "constant_with_warmup"
    case linear
    case cosine
    case cosineWithMinLR = "cosine_with_min_lr"
}

/// Learning rate at optimizer step `step` (0-based), as transformers' schedules with warmup.
///
/// `constant` holds the rate from the first step (transformers' `constant` has no warmup); for the
/// others warmup rises linearly from 0 over `warmupSteps`, then `constant_with_warmup` holds,
/// `linear` falls to 0 at `totalSteps`, `cosine` follows half a cosine to 0 at `totalSteps`, and
/// `cosine_with_min_lr` follows it down to `minRate` x the rate.
public func learningRate(
    step: Int, base: Double, schedule: LRSchedulerType, warmupSteps: Int, totalSteps: Int, minRate: Double = 0
) -> Double {
    if schedule == .constant { return base }
    if step < warmupSteps { return base * Double(step) / Double(max(1, warmupSteps)) }
    let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
    switch schedule {
    case .constant, .constantWithWarmup: return base
    case .linear: return base * max(0, 1 - progress)
    case .cosine: return base * max(0, 0.5 * (1 + cos(Double.pi * progress)))
    case .cosineWithMinLR:
        let factor = max(0, 0.5 * (1 + cos(Double.pi * progress)))
        return base * (factor * (1 - minRate) + minRate)
    }
}
