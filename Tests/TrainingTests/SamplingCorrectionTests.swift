import Foundation
import Testing

@testable import Training

// Hand-computed against TRL's vLLM importance-sampling equations (grpo_trainer.py): ρ_t =
// exp(old_t - sampled_t), per sequence exp(Σ_t), truncated (clamp) or masked (0 outside the bounds).

private let old: [Float] = [-1.0, -2.0, -0.5]
private let sampled: [Float] = [-1.1, -1.5, -0.5]  // differences 0.1, -0.5, 0
private let lengths = [2, 1]

private func close(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 }
}

@Test func importanceWeightsFollowTRLsModes() {
    var c = SamplingCorrection()
    let all: [Float] = [1, 1, 1]
    c.mode = .tokenTruncate
    #expect(
        close(c.weights(old: old, sampled: sampled, lengths: lengths, mask: all), [1.105171, 0.606531, 1]))
    c.clipMax = 1.05
    c.clipMin = 0.7
    #expect(close(c.weights(old: old, sampled: sampled, lengths: lengths, mask: all), [1.05, 0.7, 1]))
    c.mode = .tokenMask
    #expect(close(c.weights(old: old, sampled: sampled, lengths: lengths, mask: all), [0, 0, 1]))
    c.mode = .sequenceTruncate
    #expect(close(c.weights(old: old, sampled: sampled, lengths: lengths, mask: all), [0.7, 0.7, 1]))
    c.mode = .sequenceMask
    #expect(close(c.weights(old: old, sampled: sampled, lengths: lengths, mask: all), [0, 0, 1]))
    c.clipMin = nil
    c.clipMax = 3
    #expect(
        close(c.weights(old: old, sampled: sampled, lengths: lengths, mask: all), [0.670320, 0.670320, 1]))
    // A masked token counts for nothing; an unknown (NaN) sampler log-prob gives no correction.
    #expect(
        close(
            c.weights(old: old, sampled: sampled, lengths: lengths, mask: [1, 0, 1]), [1.105171, 1.105171, 1])
    )
    #expect(
        close(
            c.weights(old: old, sampled: [.nan, -1.5, -0.5], lengths: lengths, mask: all),
            [0.606531, 0.606531, 1]))
}

@Test func mismatchStatisticsAreTRLs() {
    var m = SamplingMismatch()
    var c = SamplingCorrection()
    c.mode = .tokenTruncate
    let weights = c.weights(old: old, sampled: sampled, lengths: lengths, mask: [1, 1, 1])
    m.add(
        old: old, sampled: sampled, mask: [1, 1, 1], lengths: lengths, weights: weights, perSequence: false)
    let metrics = m.metrics
    #expect(abs(metrics["sampling/sampling_logp_difference/mean"]! - 0.2) < 1e-6)
    #expect(abs(metrics["sampling/sampling_logp_difference/max"]! - 0.5) < 1e-6)
    #expect(abs(metrics["sampling/importance_sampling_ratio/min"]! - 0.606531) < 1e-5)
    #expect(abs(metrics["sampling/importance_sampling_ratio/max"]! - 1.105171) < 1e-5)
    #expect(abs(metrics["sampling/importance_sampling_ratio/mean"]! - (1.105171 + 0.606531 + 1) / 3) < 1e-5)
    // Without a correction only the differences are logged.
    var plain = SamplingMismatch()
    plain.add(
        old: old, sampled: sampled, mask: [1, 1, 0], lengths: lengths, weights: nil, perSequence: false)
    #expect(
        plain.metrics.keys.sorted() == [
            "sampling/sampling_logp_difference/max", "sampling/sampling_logp_difference/mean",
        ])
    #expect(abs(plain.metrics["sampling/sampling_logp_difference/mean"]! - 0.3) < 1e-6)
}

@Test func importanceWeightsScaleTheSurrogateNotTheKL() {
    var s = PolicyLossSettings()
    s.lossType = .dapo
    s.tokensInBatch = 2
    let batch = PolicyBatch(logp: [-1, -2], lengths: [2], advantages: [1], importanceWeights: [0.5, 2])
    let r = policyLoss(batch, settings: s)
    #expect(close(r.dLogp, [-0.25, -1.0]))
    #expect(abs(r.loss - -1.25) < 1e-6)
    // With a KL term: its gradient β(1 - exp(ref - logp)) is not weighted.
    s.beta = 0.1
    let withKL = policyLoss(
        PolicyBatch(
            logp: [-1, -2], refLogp: [-1.5, -2], lengths: [2], advantages: [1], importanceWeights: [0.5, 2]),
        settings: s)
    let klGradient = Float(0.1) * (1 - exp(Float(-0.5)))
    #expect(close(withKL.dLogp, [(-0.5 + klGradient) / 2, -1.0]))
}

@Test func correctionKeysUseTRLsNamesAndBounds() throws {
    func config(_ entries: [String: Any]) throws -> GRPOConfig {
        let values = ConfigValues()
        values.merge(
            ["model": NSTemporaryDirectory(), "dataset": "d.jsonl"].merging(entries) { _, new in new },
            source: "run.yaml")
        return try GRPOConfig(values)
    }
    #expect(try config([:]).samplingCorrection == nil)
    let on = try #require(try config(["importance_sampling_correction": true]).samplingCorrection)
    #expect(on.mode == .sequenceMask && on.clipMax == 3 && on.clipMin == nil)
    let trl = try #require(
        try config([
            "vllm_importance_sampling_correction": true, "vllm_importance_sampling_mode": "token_truncate",
            "vllm_importance_sampling_clip_max": 2.0,
        ]).samplingCorrection)
    #expect(trl.mode == .tokenTruncate && trl.clipMax == 2)
    for bad: [String: Any] in [
        ["importance_sampling_mode": "token_mask"],
        ["importance_sampling_correction": true, "importance_sampling_mode": "tokens"],
        ["importance_sampling_correction": true, "importance_sampling_clip_max": 0],
        ["importance_sampling_correction": true, "importance_sampling_clip_min": 4],
    ] {
        #expect(throws: Training.ConfigError.self, "\(bad)") { try config(bad) }
    }
}

/// A run with the correction on logs TRL's `sampling/...` metrics, and decoding's log-probs are the
/// trainer's to float32 rounding.
@Test func trainingLogsTheSamplerMismatch() throws {
    let w = try Workspace()
    let config = try w.config(["importance_sampling_correction": true, "max_steps": 2, "save_steps": 100])
    var metrics: [[String: Double]] = []
    try GRPOTrainer(config: config) { event in
        if case .step(_, _, let m) = event { metrics.append(m) }
    }.train()
    #expect(metrics.count == 2)
    for m in metrics {
        let difference = try #require(m["sampling/sampling_logp_difference/max"])
        #expect(difference < 1e-3, "decoding and the training forward disagree by \(difference)")
        let mean = try #require(m["sampling/importance_sampling_ratio/mean"])
        #expect(abs(mean - 1) < 1e-2)
    }
}
