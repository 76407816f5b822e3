import Foundation
import Models
import Rewards
import Tensors
import TestSupport
import Testing

@testable import Training

/// A temporary folder holding a toy model and a dataset, removed when the test ends.
final class Workspace {
    let root: String
    var model: String { root + "/model" }
    var dataset: String { root + "/data.jsonl" }

    init(lines: [String]? = nil) throws {
        root = NSTemporaryDirectory() + "grpo-trainer-\(UUID().uuidString)"
        try ToyModel.write(
            to: root + "/model", layers: 2, hiddenSize: 32, heads: 4, keyValueHeads: 2, seed: 3)
        let data =
            lines ?? (0..<6).map { #"{"prompt": "What is \#($0) + \#($0)? ", "answer": "\#($0 + $0)"}"# }
        try data.joined(separator: "\n").write(toFile: dataset, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func config(_ extra: [String: Any] = [:], output: String = "out") throws -> GRPOConfig {
        let values = ConfigValues()
        values.merge(
            [
                "model": model, "dataset": dataset, "output_dir": root + "/" + output, "num_generations": 4,
                "per_step_prompts": 2, "max_completion_length": 8, "learning_rate": 1e-3, "max_steps": 4,
                "save_steps": 2, "seed": 7, "log_completions_steps": 0, "logging_steps": 1,
            ], source: "test")
        values.merge(extra, source: "test")
        return try GRPOConfig(values)
    }
}

/// A `shouldStop` that answers true at its `checks`-th call (after that many steps): a run cut short
/// as Ctrl-C cuts it, for the resume tests.
func stopAfter(_ checks: Int) -> () -> Bool {
    var calls = 0
    return {
        calls += 1
        return calls == checks
    }
}

struct TrainerTests {
    @Test func resumeContinuesExactly() throws {
        let w = try Workspace()
        // beta > 0 loads the reference model; num_iterations 3 leaves a round pending at step 2.
        let settings: [String: Any] = [
            "beta": 0.04, "num_iterations": 3, "gradient_accumulation_steps": 2,
            "rewards": ["accuracy", ["name": "format", "pattern": ".*[0-9].*"]], "reward_weights": [1, 0.5],
        ]
        let straight = try GRPOTrainer(config: try w.config(settings, output: "a"))
        try straight.train()

        var stopped = try w.config(settings, output: "b")
        stopped.schedule.maxSteps = 4
        let first = try GRPOTrainer(config: stopped)
        first.shouldStop = stopAfter(2)
        let checkpoint = try #require(try first.train())
        #expect(checkpoint.hasSuffix("checkpoint-2"))
        #expect(first.state.pendingRound?.iterationsDone == 2)
        let resumed = try GRPOTrainer(config: stopped, resumeFrom: Checkpoint.latest(in: w.root + "/b"))
        #expect(resumed.state.step == 2)
        try resumed.train()

        let a = straight.policy.parameters.values
        let b = resumed.policy.parameters.values
        let identical = (0..<a.count).allSatisfy { Tensor1(a)[$0] == Tensor1(b)[$0] }
        #expect(identical, "weights after 4 straight steps differ from 2 + resume + 2")
        let changed = try ModelLoader.load(folder: w.model).parameters.values
        #expect((0..<a.count).contains { Tensor1(a)[$0] != Tensor1(changed)[$0] }, "training changed nothing")
        // The metrics of both runs agree line for line.
        let logA = try String(contentsOfFile: w.root + "/a/metrics.jsonl", encoding: .utf8)
        let logB = try String(contentsOfFile: w.root + "/b/metrics.jsonl", encoding: .utf8)
        let strip = { (text: String) in
            text.split(separator: "\n").map { line -> String in
                let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return "\(object["step"]!) \(object["loss"]!) \(object["reward"]!) \(object["kl"]!)"
            }
        }
        #expect(strip(logA) == strip(logB))
        #expect(strip(logA).count == 4)
        let keys =
            try JSONSerialization.jsonObject(with: Data(logA.split(separator: "\n")[0].utf8))
            as! [String: Any]
        for key in [
            "reward", "reward_std", "rewards/accuracy/mean", "rewards/accuracy/std", "rewards/format/mean",
            "kl", "clip_ratio/low_mean",
            "clip_ratio/high_mean", "clip_ratio/region_mean", "completions/mean_length",
            "completions/min_length",
            "completions/max_length", "completions/clipped_ratio", "frac_reward_zero_std", "grad_norm",
            "learning_rate", "step_seconds", "tokens_per_second",
        ] {
            #expect(keys[key] != nil, "metrics.jsonl lacks \(key)")
        }
    }

    @Test func checkpointIsAHuggingFaceFolder() throws {
        let w = try Workspace()
        var config = try w.config()
        config.schedule.maxSteps = 1
        config.schedule.saveSteps = 1
        let folder = try #require(try GRPOTrainer(config: config).train())
        for file in [
            "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "optimizer.safetensors",
            "trainer_state.json",
        ] {
            #expect(FileManager.default.fileExists(atPath: folder + "/" + file), "checkpoint lacks \(file)")
        }
        _ = try ModelLoader.load(folder: folder)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: config.outputDir).filter {
            $0.hasPrefix(".")
        }
        #expect(leftovers.isEmpty)
    }

    /// The rewards of 24 steps on the toy model with the digit reward under `extra` keys.
    ///
    /// Reward: the completion contains a digit. A random toy model does so about a quarter of the
    /// time; a few steps must raise that.
    func digitRewardCurve(_ extra: [String: Any]) throws -> (before: Double, after: Double, rewards: [Double])
    {
        let w = try Workspace()
        let config = try w.config(
            [
                "rewards": [["name": "format", "pattern": ".*[0-9].*"]], "max_steps": 24,
                "learning_rate": 1e-2,
                "per_step_prompts": 4, "num_generations": 8, "save_steps": 100,
                "lr_scheduler_type": "constant",
            ].merging(extra) { $1 })
        var rewards: [Double] = []
        try GRPOTrainer(config: config) { event in
            if case .step(_, _, let metrics) = event { rewards.append(metrics["reward"]!) }
        }.train()
        return (rewards.prefix(4).reduce(0, +) / 4, rewards.suffix(4).reduce(0, +) / 4, rewards)
    }

    /// In float32 and in bf16 (float32 where the CPU lacks bf16).
    @Test(arguments: [PrecisionSetting.float32, .bf16])
    func learnsASimpleReward(precision: PrecisionSetting) throws {
        let (before, after, rewards) = try digitRewardCurve(["precision": precision.rawValue])
        #expect(after > before + 0.25, "reward \(before) -> \(after): \(rewards)")
    }

    /// The other estimators learn the same reward: RLOO with TRL's objective and its KL in the reward.
    @Test(arguments: ["rloo", "reinforce_pp"])
    func otherEstimatorsLearnTheReward(algorithm: String) throws {
        let (before, after, rewards) = try digitRewardCurve(
            ["algorithm": algorithm, "num_iterations": 2, "beta": 0.04])
        #expect(after > before + 0.25, "\(algorithm): reward \(before) -> \(after): \(rewards)")
    }
}

/// Element access to a raw parameter storage in tests.
struct Tensor1 {
    let storage: Tensors.TensorStorage
    init(_ storage: Tensors.TensorStorage) { self.storage = storage }
    subscript(i: Int) -> Float { Tensors.Tensor(storage: storage, offset: 0, shape: [storage.count])[i] }
}

struct TrainerEdgeTests {
    @Test func dynamicSamplingKeepsOnlyGroupsWithSignal() throws {
        let w = try Workspace()
        let config = try w.config([
            "rewards": [["name": "format", "pattern": ".*[0-9].*"]], "dynamic_sampling": true,
            "num_iterations": 2,
            "max_steps": 1,
        ])
        var metrics: [String: Double] = [:]
        let trainer = try GRPOTrainer(config: config) { event in
            if case .step(_, _, let m) = event { metrics = m }
        }
        try trainer.train()
        let round = try #require(trainer.state.pendingRound)
        #expect(round.sequences.count == 8)
        for group in stride(from: 0, to: 8, by: 4) {
            #expect(
                round.advantages[group..<(group + 4)].contains { $0 != 0 }, "group \(group / 4) has no signal"
            )
        }
        #expect(metrics["dynamic_sampling/rounds"]! >= 1)
    }

    @Test func nonFiniteStepsAreSkippedThenStop() throws {
        // An absurd learning rate turns the weights to inf/NaN after the first update.
        let w = try Workspace()
        let config = try w.config([
            "rewards": [["name": "format", "pattern": ".*[0-9].*"]], "learning_rate": 1e30,
            "max_grad_norm": 0,
            "max_nonfinite_steps": 1, "max_steps": 6, "save_steps": 1,
        ])
        var warnings: [String] = []
        let trainer = try GRPOTrainer(config: config) { event in
            if case .warning(let message) = event { warnings.append(message) }
        }
        #expect(throws: TrainingError.self) { try trainer.train() }
        #expect(trainer.state.nonfiniteSteps == 2)
        #expect(warnings.contains { $0.contains("non-finite") })
        // The checkpoints written before the failure are intact.
        let latest = try #require(Checkpoint.latest(in: config.outputDir))
        _ = try ModelLoader.load(folder: latest)
    }

    @Test func roundsFromOlderCheckpointsDecodeTheirSamples() throws {
        let legacy =
            #"{"sequences": [[1, 2]], "promptLengths": [1], "advantages": [0.5], "truncated": [false], "metrics": {"reward": 1}, "iterationsDone": 1, "sample": ["1+1=", "2", "1.5"]}"#
        let round = try JSONDecoder().decode(Round.self, from: Data(legacy.utf8))
        #expect(round.samples == [LoggedSample(prompt: "1+1=", completion: "2", reward: 1.5)])
        #expect(round.iterationsDone == 1)
        let again = try JSONDecoder().decode(Round.self, from: try JSONEncoder().encode(round))
        #expect(again == round)
    }

    @Test func truncatedCompletionsCanBeMasked() {
        let round = Round(
            sequences: [[1, 2, 3], [1, 4, 5, 6]], promptLengths: [1, 1], advantages: [1, -1],
            truncated: [false, true], metrics: [:], samples: [])
        #expect(round.mask(maskTruncated: false) == [1, 1, 1, 1, 1])
        #expect(round.mask(maskTruncated: true) == [1, 1, 0, 0, 0])
        #expect(round.tokenOffsets() == [0, 2, 5])
    }

    @Test func groupsShareTheirPromptInBatchesAndChunks() {
        // Two groups of two: prompts [1, 2] and [1, 3] (same length, different tokens).
        let round = Round(
            sequences: [[1, 2, 7, 8], [1, 2, 9], [1, 3, 7], [1, 3, 4, 5, 6]], promptLengths: [2, 2, 2, 2],
            advantages: [1, -1, 1, -1], truncated: [false, false, false, false], metrics: [:], samples: [])
        #expect(round.sharedPromptLengths() == [0, 2, 0, 2])
        let batch = round.batch(0..<4)
        #expect(batch.tokens == [1, 2, 7, 8, 9, 1, 3, 7, 4, 5, 6])
        #expect(batch.sequences.parents == [nil, 0, 0, nil, 3, 3])
        #expect(batch.targetTokens == [7, 8, 9, 7, 4, 5, 6])
        #expect(batch.targetRows == [1, 2, 1, 6, 6, 8, 9])
        // Shared prompt tokens count once per chunk: 4 + 1 fits in 5, then 3 + 4 > 5.
        let chunks = tokenChunks(
            lengths: round.sequences.map(\.count), shared: round.sharedPromptLengths(), 0..<4, maxTokens: 5)
        #expect(chunks == [0..<2, 2..<3, 3..<4])
    }
}

struct ChunkingTests {
    @Test func forwardChunksLeaveTheUpdateUnchanged() throws {
        // Each loss type weighs tokens by whole-batch quantities; splitting the forward/backward into
        // chunks of a few sequences must give the same update as one pass over the batch.
        for lossType in LossType.allCases {
            let w = try Workspace()
            var updates: [[Float]] = []
            for tokens in [1_000_000, 20] {
                let config = try w.config([
                    "rewards": [["name": "format", "pattern": ".*[0-9].*"]], "max_steps": 1,
                    "loss_type": lossType.rawValue,
                    "forward_batch_tokens": tokens, "gradient_accumulation_steps": 2, "beta": 0.1,
                    "adam_epsilon": 1e-2,  // keeps the first Adam step linear in tiny gradients
                    "output_dir": w.root + "/out-\(tokens)",
                ])
                let trainer = try GRPOTrainer(config: config)
                let before = Tensor(
                    storage: trainer.policy.parameters.values, offset: 0,
                    shape: [trainer.policy.parameters.count]
                ).toArray()
                try trainer.train()
                let after = Tensor(
                    storage: trainer.policy.parameters.values, offset: 0,
                    shape: [trainer.policy.parameters.count]
                ).toArray()
                updates.append(zip(after, before).map { $0 - $1 })
            }
            let scale = updates[0].map(abs).max()!
            #expect(scale > 0, "\(lossType): no update")
            let (diff, index) = maxAbsDiff(updates[0], updates[1])
            #expect(
                diff <= 1e-3 * scale, "\(lossType): update differs by \(diff) at \(index) (scale \(scale))")
        }
    }
}
