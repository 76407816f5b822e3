import Foundation
import Generation

/// Held-out evaluation during training (`eval_dataset`, `eval_steps`), and the reward-hacking check
/// it feeds.
extension GRPOTrainer {
    /// Samples the held-out prompts with the current policy and scores them: `eval/...` metrics,
    /// and a warning when held-out accuracy fell while the training reward rose.
    func evaluateHeldOut(step: Int) throws -> [String: Double] {
        guard let settings = config.evaluation else { return [:] }
        let clock = Date()
        var sampling = samplingParameters(
            temperature: settings.temperature ?? config.temperature,
            numGenerations: settings.numGenerations ?? config.numGenerations)
        // The same seed at every evaluation: successive measurements differ by the policy alone.
        sampling.seed = config.seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x5EED_E7A1
        // Accuracy is the accuracy reward's when there is one, else the first reward's.
        let order = rewards.indices.sorted {
            (rewards[$0].name == "accuracy" ? 0 : 1, $0) < (rewards[$1].name == "accuracy" ? 0 : 1, $1)
        }
        let report = try evaluate(
            model: policy, tokenizer: tokenizer, examples: evalExamples, rewards: order.map { rewards[$0] },
            sampling: sampling, maxCacheBytes: config.maxCacheMiB << 20)
        evaluationCacheBytes = max(evaluationCacheBytes, report.peakCacheBytes)
        var metrics: [String: Double] = [
            "eval/accuracy": report.accuracy, "eval/pass@\(report.samplesPerPrompt)": report.passAtK,
            "eval/completions/mean_length": report.meanCompletionLength,
        ]
        var combined = 0.0
        for (position, index) in order.enumerated() {
            let mean = report.meanRewards[position].mean
            metrics["eval/rewards/\(rewards[index].name)/mean"] = mean
            combined += config.rewardWeights[index] * (mean.isFinite ? mean : 0)
        }
        metrics["eval/reward"] = combined
        metrics["eval/seconds"] = Date().timeIntervalSince(clock)
        checkRewardHacking(
            step: step, accuracy: report.accuracy, completions: report.prompts * report.samplesPerPrompt)
        return metrics
    }

    /// Warns when held-out accuracy fell while the training reward rose (see `rewardHackingWarning`).
    private func checkRewardHacking(step: Int, accuracy: Double, completions: Int) {
        let now = HeldOutMeasurement(step: step, accuracy: accuracy, completions: completions)
        if let warning = rewardHackingWarning(evaluations: evalHistory, now: now, trainRewards: trainRewards)
        {
            onEvent(.warning(warning))
        }
        evalHistory.append(now)
    }
}
