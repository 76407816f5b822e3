import Foundation
import Models
import Tensors
import TestSupport
import Testing

@testable import Training

private func close(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
}

/// PPO's pure pieces, with values worked by hand.
struct PPOEquationTests {
    @Test func tokenRewardsPutTheScoreOnTheLastTokenAndTheKLOnEvery() {
        let logp: [Float] = [-1, -2, -0.5]
        let ref: [Float] = [-1.5, -2, -0.25]
        let k1 = ppoTokenRewards(
            scores: [1, 0], logp: logp, refLogp: ref, lengths: [2, 1], klCoef: 0.1, estimator: .k1)
        #expect(close(k1.kl, [0.5, 0, -0.25]))
        #expect(close(k1.rewards, [-0.05, 1, 0.025]))
        let k3 = ppoTokenRewards(
            scores: [1, 0], logp: logp, refLogp: ref, lengths: [2, 1], klCoef: 0.1, estimator: .k3)
        #expect(close(k3.kl, [0.106_530_7, 0, 0.034_025_4]))
        let none = ppoTokenRewards(
            scores: [2, -1], logp: logp, refLogp: nil, lengths: [1, 2], klCoef: 0.1, estimator: .k1)
        #expect(none.rewards == [2, 0, -1] && none.kl == [0, 0, 0])
    }

    @Test func generalizedAdvantagesRunBackwardsWithinEachSequence() {
        let (advantages, returns) = generalizedAdvantages(
            rewards: [0, 0, 1, 2], values: [0.5, 0.2, 0.4, 1], lengths: [3, 1], gamma: 1, lambda: 0.5)
        // t2: δ = 1 - 0.4 = 0.6; t1: δ = 0.4 - 0.2 = 0.2, A = 0.2 + 0.5·0.6; t0: δ = 0.2 - 0.5, A = -0.3 + 0.5·0.5
        #expect(close(advantages, [-0.05, 0.5, 0.6, 1]))
        #expect(close(returns, [0.45, 0.7, 1, 2]))
        // γ = 0: each advantage is its own one-step TD error; λ = 1, γ = 1: the return to go minus V.
        let td = generalizedAdvantages(
            rewards: [1, 2], values: [0.5, 0.5], lengths: [2], gamma: 0, lambda: 1)
        #expect(close(td.advantages, [0.5, 1.5]))
        let monteCarlo = generalizedAdvantages(
            rewards: [1, 2], values: [0.5, 0.25], lengths: [2], gamma: 1, lambda: 1)
        #expect(close(monteCarlo.advantages, [2.5, 1.75]))
    }

    @Test func whiteningUsesTheMaskedUnbiasedVariance() {
        let whitened = maskedWhiten([1, 2, 3, 100], mask: [1, 1, 1, 0])
        #expect(close(whitened, [-1, 0, 1, 0]))
        #expect(close(maskedWhiten([1, 2, 3, 100], mask: [1, 1, 1, 0], shiftMean: false), [1, 2, 3, 0]))
        #expect(maskedWhiten([5, 5], mask: [0, 0]) == [0, 0])
    }

    @Test func valueLossTakesTheLargerBranchAndClipsItsGradient() {
        // t0: v = 1 leaves [0.3, 0.7]: the clipped branch (0.7 - 2)² = 1.69 > 1 wins, gradient 0.
        // t1: inside its range, both branches are (0 + 1)² = 1: ½, gradient v - R = 1.
        // t2 is masked out.
        let result = clippedValueLoss(
            values: [1, 0, 9], oldValues: [0.5, 0, 0], returns: [2, -1, 0], mask: [1, 1, 0], clipRange: 0.2,
            scale: 2)
        #expect(abs(result.loss - 2 * (0.845 + 0.5)) < 1e-5)
        #expect(close(result.dValues, [0, 2, 0]))
        #expect(result.clipped == 1 && result.tokens == 2)
        // The gradient is the loss's, by central differences, where no branch switches.
        let values: [Float] = [0.3, -0.4, 1.1]
        let old: [Float] = [0.2, -0.1, 1.0]
        let returns: [Float] = [1, -1, 0.5]
        let analytic = clippedValueLoss(
            values: values, oldValues: old, returns: returns, mask: [1, 1, 1], clipRange: 0.5, scale: 0.5
        ).dValues
        let numeric = numericGradient(values, h: 1e-3) {
            Double(
                clippedValueLoss(
                    values: $0, oldValues: old, returns: returns, mask: [1, 1, 1], clipRange: 0.5, scale: 0.5
                ).loss)
        }
        #expect(relativeError(analytic, numeric) < 1e-2, "\(analytic) vs \(numeric)")
    }

    /// Cross-checked against TRL's PPO equations evaluated in PyTorch (scripts/make_training_fixtures.py):
    /// token rewards (k1 and k3), reward whitening, GAE, returns, whitened advantages, the clipped
    /// policy loss and the clipped value loss with autograd's gradients.
    @Test func matchTRLsEquations() throws {
        let fixture = try trainingFixture("ppo_equations.json") as! [String: Any]
        for case let item as [String: Any] in fixture["cases"] as! [Any] {
            func floats(_ key: String) -> [Float] { (item[key] as! [NSNumber]).map { $0.floatValue } }
            let lengths = (item["lengths"] as! [NSNumber]).map(\.intValue)
            let scores = (item["scores"] as! [NSNumber]).map(\.doubleValue)
            let settings = item["settings"] as! [String: Any]
            let klCoef = (settings["kl_coef"] as! NSNumber).floatValue
            let estimator = KLEstimator(rawValue: settings["kl_estimator"] as! String)!
            let mask = floats("mask")
            var (rewards, _) = ppoTokenRewards(
                scores: scores, logp: floats("old_logp"), refLogp: floats("ref_logp"), lengths: lengths,
                klCoef: klCoef, estimator: estimator)
            if settings["whiten_rewards"] as! Bool {
                rewards = maskedWhiten(rewards, mask: mask, shiftMean: false)
            }
            #expect(close(rewards, floats("rewards"), 1e-4), "rewards")
            let gae = generalizedAdvantages(
                rewards: rewards, values: floats("values"), lengths: lengths,
                gamma: (settings["gamma"] as! NSNumber).floatValue,
                lambda: (settings["lam"] as! NSNumber).floatValue)
            #expect(close(gae.returns, floats("returns"), 1e-4), "returns")
            let advantages = maskedWhiten(gae.advantages, mask: mask)
            #expect(close(advantages, floats("advantages"), 1e-4), "advantages")

            let tokens = mask.reduce(0, +)
            var policySettings = PolicyLossSettings()
            policySettings.lossType = .bnpo
            let clip = (settings["cliprange"] as! NSNumber).floatValue
            (policySettings.epsilonLow, policySettings.epsilonHigh) = (clip, clip)
            let policy = policyLoss(
                PolicyBatch(
                    logp: floats("new_logp"), oldLogp: floats("old_logp"), mask: mask, lengths: lengths,
                    advantages: [Float](repeating: 0, count: lengths.count), tokenAdvantages: advantages),
                settings: policySettings)
            #expect(abs(policy.loss - (item["pg_loss"] as! NSNumber).floatValue) < 1e-4, "pg_loss")
            #expect(relativeError(policy.dLogp, floats("d_new_logp")) < 1e-3, "pg gradient")
            let vfCoef = (settings["vf_coef"] as! NSNumber).floatValue
            let value = clippedValueLoss(
                values: floats("new_values"), oldValues: floats("values"), returns: gae.returns, mask: mask,
                clipRange: (settings["cliprange_value"] as! NSNumber).floatValue, scale: vfCoef / tokens)
            #expect(abs(value.loss - vfCoef * (item["vf_loss"] as! NSNumber).floatValue) < 1e-4, "vf_loss")
            #expect(relativeError(value.dValues, floats("d_new_values")) < 1e-3, "vf gradient")
            #expect(abs(value.clipped / tokens - (item["vf_clipfrac"] as! NSNumber).floatValue) < 1e-6)
        }
    }
}

/// The run of `settings` straight (into "a"), and the same run stopped after 2 steps (into "b")
/// and resumed from that checkpoint, trained to the end.
private func straightAndResumed(_ w: Workspace, _ settings: [String: Any]) throws -> (
    straight: GRPOTrainer, stopped: GRPOTrainer, checkpoint: String, resumed: GRPOTrainer
) {
    let straight = try GRPOTrainer(config: try w.config(settings, output: "a"))
    try straight.train()
    let config = try w.config(settings, output: "b")
    let stopped = try GRPOTrainer(config: config)
    stopped.shouldStop = stopAfter(2)
    let checkpoint = try #require(try stopped.train())
    let resumed = try GRPOTrainer(config: config, resumeFrom: checkpoint)
    try resumed.train()
    return (straight, stopped, checkpoint, resumed)
}

/// PPO in the trainer: it learns, resumes exactly, and refuses what does not fit.
struct PPOTrainerTests {
    @Test func learnsTheDigitReward() throws {
        let (before, after, rewards) = try TrainerTests().digitRewardCurve([
            "algorithm": "ppo", "num_ppo_epochs": 2, "kl_coef": 0.01,
        ])
        #expect(after > before + 0.25, "ppo: reward \(before) -> \(after): \(rewards)")
    }

    @Test func resumeContinuesExactlyWithTheCritic() throws {
        let w = try Workspace()
        let settings: [String: Any] = [
            "algorithm": "ppo", "num_ppo_epochs": 2, "num_mini_batches": 2, "gradient_accumulation_steps": 2,
            "kl_coef": 0.05, "kl_estimator": "k3", "whiten_rewards": true, "missing_eos_penalty": 0.5,
        ]
        let (straight, first, checkpoint, resumed) = try straightAndResumed(w, settings)
        for file in [
            "value_model/config.json", "value_model/model.safetensors", "value_model/optimizer.safetensors",
        ] {
            #expect(
                FileManager.default.fileExists(atPath: checkpoint + "/" + file), "checkpoint lacks \(file)")
        }
        // 2 steps x 2 passes x 2 mini-batches.
        #expect(first.state.optimizerSteps == 8)
        for (a, b, what) in [
            (straight.policy, resumed.policy, "policy"), (straight.critic!, resumed.critic!, "critic"),
        ] {
            let (x, y) = (a.parameters.values, b.parameters.values)
            #expect(
                (0..<x.count).allSatisfy { Tensor1(x)[$0] == Tensor1(y)[$0] }, "\(what) differs after resume")
        }
        let critic = try ModelLoader.load(folder: w.root + "/a/value_model", head: .score(labels: 1))
        let trained = straight.critic!.parameters.values
        #expect(
            (0..<trained.count).allSatisfy { Tensor1(trained)[$0] == Tensor1(critic.parameters.values)[$0] })
        let initial = try ModelLoader.loadValueModel(folder: w.model, seed: 0).model.parameters.value(
            "model.norm.weight")
        #expect(
            critic.parameters.value("model.norm.weight").toArray() != initial.toArray(),
            "the critic never moved")
        let line = try String(contentsOfFile: w.root + "/a/metrics.jsonl", encoding: .utf8).split(
            separator: "\n")[0]
        let keys = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        for key in [
            "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward",
            "objective/scores", "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg",
            "loss/value_avg",
            "val/clipfrac_avg", "val/ratio", "value/grad_norm", "reward", "memory/optimizer",
        ] {
            #expect(keys[key] != nil, "metrics.jsonl lacks \(key)")
        }
    }

    @Test func badSettingsNameTheirKey() throws {
        let w = try Workspace()
        func message(_ extra: [String: Any]) -> String {
            do {
                _ = try w.config(extra)
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(message(["kl_coef": 0.1]).contains("kl_coef"))
        #expect(message(["kl_coef": 0.1]).contains("applies to algorithm: ppo"))
        #expect(message(["algorithm": "ppo", "beta": 0.04]).contains("kl_coef"))
        #expect(message(["algorithm": "ppo", "num_iterations": 2]).contains("num_ppo_epochs"))
        #expect(message(["algorithm": "ppo", "value_model": w.root + "/nowhere"]).contains("value_model"))
        #expect(message(["algorithm": "ppo", "gamma": 1.5]).contains("gamma"))
        #expect(message(["algorithm": "a2c"]).contains("algorithm"))
        #expect(message(["algorithm": "ppo", "num_generations": 1]).isEmpty)

        // A checkpoint without its critic cannot resume PPO.
        let ppo = try w.config(
            ["algorithm": "ppo", "max_steps": 2, "save_steps": 1, "num_ppo_epochs": 1], output: "p")
        let first = try GRPOTrainer(config: ppo)
        first.shouldStop = stopAfter(1)
        let checkpoint = try #require(try first.train())
        try FileManager.default.removeItem(atPath: checkpoint + "/value_model")
        do {
            _ = try GRPOTrainer(config: ppo, resumeFrom: checkpoint)
            Issue.record("resumed PPO without a critic")
        } catch {
            #expect("\(error)".contains("value_model"), "\(error)")
        }
    }
}

/// The dry-run estimate (`grpo info --algorithm`) against what the trainer logs it held.
struct MemoryEstimateTests {
    @Test(arguments: ["grpo", "ppo"])
    func estimateMatchesTheTrainersAccount(algorithm: String) throws {
        let w = try Workspace()
        var keys: [String: Any] = ["algorithm": algorithm, "max_steps": 1, "save_steps": 10]
        if algorithm == "grpo" { keys["beta"] = 0.04 }
        let config = try w.config(keys)
        var logged: [String: Double] = [:]
        let trainer = try GRPOTrainer(config: config) { event in
            if case .step(_, _, let metrics) = event { logged = metrics }
        }
        try trainer.train()
        var batch = MemoryEstimate.Batch()
        batch.completions = config.perStepPrompts * config.numGenerations
        batch.numGenerations = config.numGenerations
        batch.promptLength = trainer.examples.map(\.tokens.count).max()!
        batch.completionLength = config.maxCompletionLength
        batch.forwardBatchTokens = config.forwardBatchTokens
        let estimate = MemoryEstimate(
            config: trainer.policy.config, algorithm: config.algorithm, referenceWeight: 0.04, lora: nil,
            precision: .float32, gradientCheckpointing: false, batch: batch)
        // The logits chunk is one buffer per process, which tests running beside this one grow too.
        for (name, bytes) in estimate.categories where name != "logits" {
            let measured = try #require(logged["memory/" + name], "the trainer logs no memory/\(name)")
            // Completions that stop early hold less than the estimate's full length: for what
            // scales with tokens the estimate is a bound, within 20% here.
            let byLength = ["activations", "backward", "kv_cache"].contains(name)
            #expect(
                byLength
                    ? Double(bytes) >= measured && Double(bytes) <= 1.2 * measured
                    : Double(bytes) == measured,
                "\(algorithm) memory/\(name): estimated \(bytes), logged \(measured)")
        }
        #expect(logged["memory/accounted"]! <= logged["memory/peak_rss"]! * 1.1)
    }
}

/// The rollout on its own, and resuming the other estimators.
struct RolloutTests {
    @Test func rolloutReturnsATypedScoredRound() throws {
        let w = try Workspace()
        let trainer = try GRPOTrainer(
            config: try w.config(["algorithm": "rloo", "beta": 0.04, "rewards": ["accuracy"]]))
        let round = try trainer.rollout()
        #expect(round.sequences.count == 2 * 4 && round.rewards.count == 8 && round.advantages.count == 8)
        #expect(round.completionLengths.allSatisfy { $0 >= 1 && $0 <= 8 })
        let tokens = round.completionLengths.reduce(0, +)
        #expect(round.oldLogp?.count == tokens && round.refLogp?.count == tokens)
        #expect(round.samplingLogp?.count == tokens)
        // RLOO's advantages of each group sum to zero (before the KL moves the rewards, and after).
        for group in 0..<2 {
            let sum = round.advantages[(group * 4)..<((group + 1) * 4)].reduce(0, +)
            #expect(abs(sum) < 1e-4)
        }
        #expect(trainer.state.consumedPrompts == 2 && trainer.state.rounds == 1)
    }

    @Test(arguments: ["rloo", "reinforce_pp"])
    func resumeContinuesExactly(algorithm: String) throws {
        let w = try Workspace()
        let settings: [String: Any] = ["algorithm": algorithm, "beta": algorithm == "rloo" ? 0.05 : 0]
        let (straight, _, _, resumed) = try straightAndResumed(w, settings)
        let (x, y) = (straight.policy.parameters.values, resumed.policy.parameters.values)
        #expect(
            (0..<x.count).allSatisfy { Tensor1(x)[$0] == Tensor1(y)[$0] }, "\(algorithm) differs after resume"
        )
    }
}
