import Foundation

/// The learning-rate curve after warmup: TRL/transformers' `lr_scheduler_type`.
public enum LRSchedulerType: String, Sendable, CaseIterable, Codable {
    case constant
    case linear
    case cosine
}

/// Learning rate at optimizer step `step` (0-based), as transformers' schedules with warmup.
///
/// Warmup rises linearly from 0 over `warmupSteps`; then `constant` holds, `linear` falls to 0 at
/// `totalSteps`, `cosine` follows half a cosine to 0 at `totalSteps`.
public func learningRate(
    step: Int, base: Double, schedule: LRSchedulerType, warmupSteps: Int, totalSteps: Int
) -> Double {
    if step < warmupSteps { return base * Double(step) / Double(max(1, warmupSteps)) }
    let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
    switch schedule {
    case .constant: return base
    case .linear: return base * max(0, 1 - progress)
    case .cosine: return base * max(0, 0.5 * (1 + cos(Double.pi * progress)))
    }
}
