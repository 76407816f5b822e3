import Foundation
import Rewards
import Testing

@testable import Training

/// GRPO with the code reward: programs that must print the value of an arithmetic expression.
struct CodeRewardTrainingTests {
    /// A toy model cold-started on half-right programs (`print(3+4)` or `print(3-4)` for "3+4"): GRPO
    /// with the sandboxed stdin/stdout reward must raise the share that prints the right value.
    @Test func theCodeRewardRisesUnderGRPO() throws {
        let root = NSTemporaryDirectory() + "grpo-code-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ToyModel.write(
            to: root + "/model", layers: 2, hiddenSize: 64, heads: 4, keyValueHeads: 2, seed: 11)
        let pairs = [(3, 4), (5, 2), (8, 1), (6, 3), (2, 7), (9, 5)]
        func json(_ object: [String: Any]) throws -> String {
            String(
                decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                as: UTF8.self)
        }
        var sft: [String] = []
        var prompts: [String] = []
        for (a, b) in pairs {
            let prompt = "\(a)+\(b)\n"
            for op in ["+", "-"] {
                sft.append(try json(["prompt": prompt, "completion": "print(\(a)\(op)\(b))"]))
            }
            prompts.append(try json(["prompt": prompt, "inputs": [""], "outputs": ["\(a + b)\n"]]))
        }
        try sft.joined(separator: "\n").write(toFile: root + "/sft.jsonl", atomically: true, encoding: .utf8)
        try prompts.joined(separator: "\n").write(
            toFile: root + "/rl.jsonl", atomically: true, encoding: .utf8)

        let sftValues = ConfigValues()
        sftValues.merge(
            [
                "model": root + "/model", "dataset": root + "/sft.jsonl", "output_dir": root + "/sft",
                "learning_rate": 3e-3, "per_device_train_batch_size": 4, "max_steps": 300, "save_steps": 1000,
                "seed": 3, "logging_steps": 50,
            ], source: "test")
        _ = try SFTTrainer(config: try SFTConfig(sftValues)).train()

        let values = ConfigValues()
        values.merge(
            [
                "model": root + "/sft", "dataset": root + "/rl.jsonl", "output_dir": root + "/grpo",
                "rewards": [["name": "code", "timeout": 5]], "num_generations": 8, "per_step_prompts": 6,
                "max_completion_length": 16, "learning_rate": 2e-3, "max_steps": 16, "save_steps": 1000,
                "seed": 5, "logging_steps": 1, "log_completions_steps": 0, "temperature": 1.0, "beta": 0.04,
            ], source: "test")
        _ = try GRPOTrainer(config: try GRPOConfig(values)).train()

        let lines = try String(contentsOfFile: root + "/grpo/metrics.jsonl", encoding: .utf8)
            .split(separator: "\n")
        let rewards = try lines.compactMap { line -> Double? in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["rewards/code/mean"] as? Double
        }
        #expect(rewards.count == 16)
        let first = rewards.prefix(3).reduce(0, +) / 3
        let last = rewards.suffix(3).reduce(0, +) / 3
        // The cold start prints the right value about half the time; GRPO must move it well up (0.5 to
        // 0.85 by step 12 when measured on an AMD AVX-512 machine).
        #expect(first > 0.2 && first < 0.8, "reward at the start \(rewards)")
        #expect(last > first + 0.2, "code reward \(rewards)")
    }

    /// Rewards scored alongside the log-prob passes give the round that scoring first gives.
    @Test func rewardsAlongsideThePassesChangeNothing() throws {
        let lines = (1...4).map {
            #"{"prompt": "\#($0)+\#($0)=", "inputs": [""], "outputs": ["\#($0 + $0)"], "answer": "\#($0 + $0)"}"#
        }
        let w = try Workspace(lines: lines)
        let settings: [String: Any] = [
            "beta": 0.04, "num_iterations": 2, "rewards": ["accuracy", ["name": "code", "timeout": 2]],
            "reward_weights": [1, 2],
        ]
        let first = try GRPOTrainer(config: try w.config(settings, output: "a"))
        first.rewardOverlap.mode = .never
        let alongside = try GRPOTrainer(config: try w.config(settings, output: "b"))
        alongside.rewardOverlap.mode = .always
        #expect(alongside.needsLogprobPasses)
        let (a, b) = (try first.rollout(), try alongside.rollout())
        #expect(a == b)
        #expect(a.refLogp != nil && a.oldLogp != nil && a.metrics["rewards/code/mean"] != nil)
    }

    /// Scoring alongside follows the measurement: a busy machine scores first, an idle one alongside,
    /// re-measured every 20 rounds; the environment variable fixes it.
    @Test func rewardsGoAlongsideOnlyWhereThatPays() {
        var overlap = RewardOverlap(environment: [:])
        let beforeMeasuring = overlap.alongside()
        #expect(overlap.mode == .measured && !beforeMeasuring)
        overlap.record(busy: 0.9)
        let busy = overlap.alongside()
        #expect(!busy)
        overlap.record(busy: 0.2)
        var verdicts: [Bool] = []
        for _ in 0..<21 { verdicts.append(overlap.alongside()) }
        // 20 rounds alongside, then one scored first to re-measure.
        #expect(verdicts == Array(repeating: true, count: 20) + [false])
        #expect(RewardOverlap(environment: ["GRPO_REWARDS_ALONGSIDE": "0"]).mode == .never)
        var always = RewardOverlap(environment: ["GRPO_REWARDS_ALONGSIDE": "1"])
        let fixed = always.alongside()
        #expect(fixed)
        #expect(busyFraction(from: (10, 100), to: (40, 200)) == 0.3)
        #if os(Linux)
            #expect(cpuTicks() != nil)
        #endif
    }
}
