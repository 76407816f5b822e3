import Foundation
import Models
import Tensors
import TestSupport
import Testing

@testable import Training

/// Fixtures made by scripts/make_training_fixtures.py (numpy equations, torch AdamW, transformers
/// schedules).
func trainingFixture(_ name: String, file: String = #filePath) throws -> Any {
    let url = URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(
        "Fixtures/\(name)")
    return try JSONSerialization.jsonObject(with: try Data(contentsOf: url))
}

private func floats(_ any: Any?) -> [Float]? { (any as? [Double])?.map(Float.init) }

/// A policy-loss fixture case's batch and settings (the variant keys default to plain GRPO's).
private func policyCase(_ c: [String: Any]) -> (PolicyBatch, PolicyLossSettings) {
    var s = PolicyLossSettings()
    s.lossType = LossType(rawValue: c["loss_type"] as! String)!
    if let level = c["importance_sampling_level"] as? String {
        s.importanceSamplingLevel = ImportanceSamplingLevel(rawValue: level)!
    }
    s.delta = (c["delta"] as? Double).map(Float.init)
    s.biasCorrectedKL = c["use_bias_correction_kl"] as? Bool ?? false
    s.beta = Float(c["beta"] as! Double)
    s.epsilonLow = Float(c["epsilon_low"] as! Double)
    s.epsilonHigh = Float(c["epsilon_high"] as! Double)
    s.maxCompletionLength = c["max_completion_length"] as! Int
    s.tokensInBatch = Float(c["tokens_in_batch"] as! Double)
    let batch = PolicyBatch(
        logp: floats(c["logp"])!, oldLogp: floats(c["old_logp"]), refLogp: floats(c["ref_logp"]),
        mask: floats(c["mask"]), lengths: c["lengths"] as! [Int], advantages: floats(c["advantages"])!)
    return (batch, s)
}

struct AdvantageTests {
    @Test func handComputedGroups() {
        // Group [1, 0, 0, 1]: mean 0.5, unbiased std √(1/3) = 0.57735.
        let group = groupAdvantages(rewards: [1, 0, 0, 1, 2, 2, 2, 2], groupSize: 4, scaling: .group)
        let a = 0.5 / (0.5773502691896258 + 1e-4)
        #expect(zip(group, [a, -a, -a, a, 0, 0, 0, 0]).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(groupAdvantages(rewards: [3, 1], groupSize: 2, scaling: .none) == [1, -1])
        #expect(informativeGroups(rewards: [1, 0, 0, 1, 2, 2, 2, 2, 0, 0.5], groupSize: 2) == [0, 1, 4])
        #expect(combineRewards([[1, nil], [0.5, 0.5]], weights: [1, 2]) == [2, 1])
    }

    @Test func matchNumpy() throws {
        let cases = try trainingFixture("advantages.json") as! [[String: Any]]
        for c in cases {
            let scaling = RewardScaling(rawValue: c["scaling"] as! String)!
            let result = groupAdvantages(
                rewards: c["rewards"] as! [Double], groupSize: c["group_size"] as! Int, scaling: scaling)
            let expected = c["advantages"] as! [Double]
            #expect(
                zip(result, expected).allSatisfy { abs($0 - $1) < 1e-9 },
                "\(scaling): \(result) vs \(expected)")
        }
    }
}

struct PolicyLossTests {
    @Test func handComputedToken() {
        // One token, A = 1, ratio e^0.5 = 1.6487 > 1.28: clipped, loss -1.28, gradient 0.
        var s = PolicyLossSettings()
        s.epsilonHigh = 0.28
        let clipped = policyLoss(
            PolicyBatch(logp: [-1], oldLogp: [-1.5], lengths: [1], advantages: [1]), settings: s)
        #expect(abs(clipped.loss + 1.28) < 1e-6 && clipped.dLogp == [0] && clipped.highClipped == 1)
        // A = -1 with the same ratio: not clipped, loss = ratio, gradient = ratio.
        let open = policyLoss(
            PolicyBatch(logp: [-1], oldLogp: [-1.5], lengths: [1], advantages: [-1]), settings: s)
        #expect(abs(open.loss - 1.6487213) < 1e-5 && abs(open.dLogp[0] - 1.6487213) < 1e-5)
        // On-policy with KL: ref - logp = 0.1: k3 = e^0.1 - 0.1 - 1 = 0.0051709; d = -A + β(1 - e^0.1).
        s.beta = 0.5
        let kl = policyLoss(
            PolicyBatch(logp: [-1], refLogp: [-0.9], lengths: [1], advantages: [2]), settings: s)
        #expect(abs(kl.loss - (-2 + 0.5 * 0.0051709)) < 1e-6)
        #expect(abs(kl.dLogp[0] - (-2 + 0.5 * (1 - 1.1051709))) < 1e-6)
    }

    @Test func matchesNumpyLossAndFiniteDifferenceGradient() throws {
        let cases = try trainingFixture("policy_loss.json") as! [[String: Any]]
        #expect(cases.count == 16)
        for c in cases {
            let (batch, s) = policyCase(c)
            let result = policyLoss(batch, settings: s)
            let name = c["name"] as! String
            let expectedLoss = Float(c["loss"] as! Double)
            #expect(abs(result.loss - expectedLoss) < 1e-5, "\(name): loss \(result.loss) vs \(expectedLoss)")
            let (diff, index) = maxAbsDiff(result.dLogp, floats(c["dlogp"])!)
            #expect(diff < 1e-5, "\(name): dLogp max diff \(diff) at token \(index)")
        }
    }
}

struct EstimatorTests {
    @Test func rlooIsTheLeaveOneOutBaseline() {
        let rewards = [1.0, 0, 0, 1, 0.5, 0.5, 0.5, 2.5]
        let a = estimateAdvantages(
            rewards: rewards, groupSize: 4, estimator: .rloo, scaling: .group,
            lengths: Array(repeating: 3, count: 8))
        for (i, r) in rewards.enumerated() {
            let group = (i / 4 * 4)..<(i / 4 * 4 + 4)
            let others = group.filter { $0 != i }.map { rewards[$0] }
            #expect(abs(a[i] - (r - others.reduce(0, +) / 3)) < 1e-12)
        }
        #expect(abs(a[0] - 2.0 / 3) < 1e-12)
        // normalize_advantages: whitened over the batch, TRL's 1e-4.
        let n = estimateAdvantages(
            rewards: rewards, groupSize: 4, estimator: .rloo, scaling: .group,
            lengths: Array(repeating: 3, count: 8),
            normalize: true)
        let std = standardDeviation(a[...])
        let mean = a.reduce(0, +) / 8
        #expect(zip(n, a).allSatisfy { abs($0 - ($1 - mean) / (std + 1e-4)) < 1e-12 })
    }

    @Test func reinforcePlusPlusWhitensOverTokens() {
        // Hand-computed: centred [0.5, -0.5, 0, 0]; token-weighted mean 0.125, unbiased variance 0.125.
        let a = estimateAdvantages(
            rewards: [1, 0, 0, 0], groupSize: 2, estimator: .reinforcePP, scaling: .group,
            lengths: [3, 1, 2, 2])
        let expected = [1.0606601717798212, -1.7677669529663689, -0.35355339059327373, -0.35355339059327373]
        #expect(zip(a, expected).allSatisfy { abs($0 - $1) < 1e-7 }, "\(a)")
    }

    @Test func algorithmKeysAreChecked() throws {
        func values(_ entries: [String: Any]) -> ConfigValues {
            let v = ConfigValues()
            v.merge(
                ["model": NSTemporaryDirectory(), "dataset": "d.jsonl"].merging(entries) { $1 },
                source: "r.yaml")
            return v
        }
        #expect(
            try GRPOConfig(values(["algorithm": "rloo", "normalize_advantages": true])).algorithm == .rloo)
        #expect(try GRPOConfig(values(["algorithm": "reinforce_pp"])).algorithm == .reinforcePP)
        #expect(try GRPOConfig(values(["algorithm": "ppo"])).ppo == PPOSettings())
        #expect { _ = try GRPOConfig(values(["algorithm": "ppo", "epsilon": 0.3])) } throws: {
            "\($0)".contains("epsilon") && "\($0)".contains("cliprange")
        }
        #expect(throws: Training.ConfigError.self) {
            _ = try GRPOConfig(values(["normalize_advantages": true]))
        }
        #expect(throws: Training.ConfigError.self) {
            _ = try GRPOConfig(values(["algorithm": "rloo", "scale_rewards": "batch"]))
        }
        #expect(throws: Training.ConfigError.self) { _ = try GRPOConfig(values(["algorithm": "dpo"])) }
    }
}

struct PolicyLossVariantTests {
    /// GSPO's sequence ratios, two-sided clipping, CISPO and the bias-corrected KL against TRL 1.16's
    /// equations in numpy, gradients by central differences (scripts/make_training_fixtures.py).
    @Test func variantsMatchTRLsEquations() throws {
        let cases = try trainingFixture("policy_loss_variants.json") as! [[String: Any]]
        #expect(cases.count == 20)
        for c in cases {
            let (batch, s) = policyCase(c)
            let result = policyLoss(batch, settings: s)
            let name = c["name"] as! String
            let expectedLoss = Float(c["loss"] as! Double)
            #expect(abs(result.loss - expectedLoss) < 2e-5, "\(name): loss \(result.loss) vs \(expectedLoss)")
            let (diff, index) = maxAbsDiff(result.dLogp, floats(c["dlogp"])!)
            #expect(diff < 2e-5, "\(name): dLogp max diff \(diff) at token \(index)")
        }
    }
}

struct TokenAdvantageTests {
    /// Per-token advantages: the broadcast of sequence advantages changes nothing, and distinct ones
    /// give the gradient finite differences of the loss give, at every level and loss type.
    @Test(arguments: [LossType.grpo, .dapo, .cispo], [ImportanceSamplingLevel.token, .sequence])
    func tokenAdvantagesAreExact(lossType: LossType, level: ImportanceSamplingLevel) {
        var rng = Tensors.SplitMix64(seed: 9)
        func uniform(_ low: Double, _ high: Double) -> Float {
            let unit = Double(rng.next() >> 11) / 9_007_199_254_740_992.0
            return Float(low + (high - low) * unit)
        }
        let lengths = [3, 1, 4, 2]
        let T = lengths.reduce(0, +)
        let logp = (0..<T).map { _ in uniform(-3, -0.1) }
        let old = logp.map { $0 - uniform(-0.15, 0.15) }
        let ref = logp.map { $0 + uniform(-0.3, 0.3) }
        let advantages: [Float] = [0.7, -1.1, 0.4, -0.2]
        var s = PolicyLossSettings()
        s.lossType = lossType
        s.importanceSamplingLevel = level
        s.beta = 0.04
        s.biasCorrectedKL = true
        s.epsilonHigh = lossType == .cispo ? 1.1 : 0.28
        s.tokensInBatch = Float(T)
        let broadcast = zip(lengths, advantages).flatMap { Array(repeating: $1, count: $0) }
        func batch(_ logp: [Float], _ tokenAdvantages: [Float]?) -> PolicyBatch {
            PolicyBatch(
                logp: logp, oldLogp: old, refLogp: ref, lengths: lengths, advantages: advantages,
                tokenAdvantages: tokenAdvantages)
        }
        let plain = policyLoss(batch(logp, nil), settings: s)
        let same = policyLoss(batch(logp, broadcast), settings: s)
        #expect(plain.loss == same.loss && plain.dLogp == same.dLogp)
        // CISPO's ratio is detached, so its loss value's slope is not its gradient: broadcast only.
        guard lossType != .cispo else { return }
        let distinct = (0..<T).map { _ in uniform(-1, 1) }
        let result = policyLoss(batch(logp, distinct), settings: s)
        let h: Float = 1e-3
        for t in 0..<T {
            var up = logp
            var down = logp
            up[t] += h
            down[t] -= h
            let numeric =
                (policyLoss(batch(up, distinct), settings: s).loss
                    - policyLoss(batch(down, distinct), settings: s).loss)
                / (2 * h)
            #expect(
                abs(numeric - result.dLogp[t]) < 2e-3,
                "\(lossType) \(level) token \(t): \(numeric) vs \(result.dLogp[t])")
        }
    }
}

struct RLOOTests {
    /// TRL's RLOO objective against its equations in numpy (scripts/make_training_fixtures.py).
    @Test func sequenceObjectiveMatchesTRLsEquations() throws {
        let cases = try trainingFixture("policy_loss_rloo.json") as! [[String: Any]]
        #expect(cases.count == 4)
        for (index, c) in cases.enumerated() {
            var s = PolicyLossSettings()
            s.sequenceObjective = true
            s.epsilonLow = Float(c["epsilon_low"] as! Double)
            s.epsilonHigh = Float(c["epsilon_high"] as! Double)
            let batch = PolicyBatch(
                logp: floats(c["logp"])!, oldLogp: floats(c["old_logp"]), mask: floats(c["mask"]),
                lengths: c["lengths"] as! [Int], advantages: floats(c["advantages"])!)
            let result = policyLoss(batch, settings: s)
            #expect(
                abs(result.loss - Float(c["loss"] as! Double)) < 1e-5, "case \(index): loss \(result.loss)")
            let (diff, at) = maxAbsDiff(result.dLogp, floats(c["dlogp"])!)
            #expect(diff < 1e-5, "case \(index): dLogp max diff \(diff) at token \(at)")
        }
    }

    @Test func theKLComesOffTheReward() {
        // Two completions of 2 and 1 tokens; first-order KL sums 0.3 + (-0.1) and 0.5 (the second
        // token of the first is masked out).
        let (rewards, kl) = rlooRewards(
            [1, 0], oldLogp: [-1.0, -2.0, -0.5], refLogp: [-1.3, -1.9, -1.0], lengths: [2, 1],
            mask: [1, 0, 1],
            beta: 0.1)
        #expect(abs(rewards[0] - (1 - 0.1 * 0.3)) < 1e-6 && abs(rewards[1] - (0 - 0.1 * 0.5)) < 1e-6)
        #expect(abs(kl - 0.8) < 1e-6)
    }
}

struct OptimizerTests {
    @Test func adamWAndClippingMatchTorch() throws {
        let f = try trainingFixture("adamw.json") as! [String: Any]
        let store = ParameterStore(layout: [("w", [3, 4]), ("b", [4])])
        let initial = f["initial"] as! [String: [Double]]
        for name in ["w", "b"] {
            let value = store.value(name)
            for (i, x) in initial[name]!.enumerated() { value[i] = Float(x) }
        }
        var settings = AdamWSettings()
        settings.adamBeta1 = f["beta1"] as! Double
        settings.adamBeta2 = f["beta2"] as! Double
        settings.adamEpsilon = f["epsilon"] as! Double
        settings.weightDecay = f["weight_decay"] as! Double
        let optimizer = AdamW(parameters: store, settings: settings)
        let gradients = f["gradients"] as! [[String: [Double]]]
        let norms = f["norms"] as! [Double]
        for (step, rate) in (f["learning_rates"] as! [Double]).enumerated() {
            store.zeroGradients()
            for name in ["w", "b"] {
                let g = store.gradient(name)
                for (i, x) in gradients[step][name]!.enumerated() { g[i] = Float(x) }
            }
            let norm = clipGradientNorm(store, maxNorm: f["max_grad_norm"] as? Double)
            #expect(abs(norm - norms[step]) < 1e-5 * norms[step], "norm \(norm) vs \(norms[step])")
            optimizer.step(learningRate: rate)
        }
        let final = f["final"] as! [String: [Double]]
        for name in ["w", "b"] {
            let (diff, index) = maxAbsDiff(store.value(name).toArray(), final[name]!.map(Float.init))
            #expect(diff < 1e-6, "\(name): max diff \(diff) at \(index)")
        }
    }

    @Test func schedulesMatchTransformers() throws {
        let cases = try trainingFixture("schedules.json") as! [[String: Any]]
        for c in cases {
            let schedule = LRSchedulerType(rawValue: c["schedule"] as! String)!
            let rates = (0..<12).map {
                learningRate(
                    step: $0, base: c["base"] as! Double, schedule: schedule,
                    warmupSteps: c["warmup"] as! Int,
                    totalSteps: c["total"] as! Int, minRate: c["min_rate"] as! Double)
            }
            let expected = c["rates"] as! [Double]
            #expect(
                zip(rates, expected).allSatisfy { abs($0 - $1) < 1e-12 },
                "\(schedule): \(rates) vs \(expected)")
        }
    }
}
