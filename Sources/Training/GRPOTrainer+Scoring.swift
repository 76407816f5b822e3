import Foundation
import Generation
import Rewards

/// Scoring a round, and the log-prob passes that can run while rewards that wait on other
/// processes score (`RewardOverlap` decides when).
extension GRPOTrainer {
    /// Scores with every reward the `groups` sampled for `drawn`, [reward][completion].
    ///
    /// The rewards at `alongside` score on a thread of their own while this one runs the drawn
    /// groups' log-prob passes, which come back too; the others score first. With `measure`, how
    /// busy the machine was while the rewards scored goes to `rewardOverlap`.
    func scoreRound(
        _ drawn: [Example], _ groups: [[Completion]], alongside: [Int], measure: Bool,
        timings: inout [String: Double]
    ) throws -> (scores: [[Double?]], passes: (old: [Float]?, ref: [Float]?)?) {
        let clock = Date()
        let inputs = rewardInputs(drawn, groups)
        let pending = alongside.isEmpty ? nil : PendingScores(inputs, alongside.map { rewards[$0] })
        let before = measure ? cpuTicks() : nil
        let early = try scoreCompletions(
            inputs, rewards: rewards.indices.filter { !alongside.contains($0) }.map { rewards[$0] })
        if let before, let end = cpuTicks(), let busy = busyFraction(from: before, to: end) {
            rewardOverlap.record(busy: busy)
            timings["time/rewards_busy", default: 0] = busy
        }
        guard let pending else {
            timings["time/rewards", default: 0] += Date().timeIntervalSince(clock)
            return (early, nil)
        }
        let passClock = Date()
        let G = config.numGenerations
        let passes = logprobPasses(
            sequences: zip(drawn, groups).flatMap { example, group in group.map { example.tokens + $0.tokens }
            },
            promptLengths: drawn.flatMap { Array(repeating: $0.tokens.count, count: G) })
        let passSeconds = Date().timeIntervalSince(passClock)
        timings["time/reference", default: 0] += passSeconds
        var late = try pending.wait().makeIterator()
        timings["time/rewards_alongside", default: 0] += pending.seconds
        var first = early.makeIterator()
        let scores = rewards.indices.map { alongside.contains($0) ? late.next()! : first.next()! }
        // The rewards' share of the step: what the passes did not hide.
        timings["time/rewards", default: 0] += Date().timeIntervalSince(clock) - passSeconds
        return (scores, passes)
    }

    /// Whether a round needs the old policy's log-probs: `num_iterations` > 1, RLOO's KL (folded
    /// into the reward from them, as TRL does), PPO's ratios and token KL.
    var needsOldLogp: Bool {
        config.numIterations > 1 || (config.algorithm == .rloo && config.beta > 0) || config.ppo != nil
    }

    /// Whether a round needs the reference's log-probs (a KL weight): a reference model, or a LoRA
    /// run's base (the policy with the adapters off).
    var needsReferenceLogp: Bool {
        reference != nil || ((config.ppo?.klCoef ?? config.beta) > 0 && policy.lora != nil)
    }

    var needsLogprobPasses: Bool { needsOldLogp || needsReferenceLogp }

    /// The old policy's and the reference's log-probs of `sequences`, those the run needs (nil for
    /// those it does not).
    func logprobPasses(sequences: [[Int32]], promptLengths: [Int]) -> (old: [Float]?, ref: [Float]?) {
        let round = Round(
            sequences: sequences, promptLengths: promptLengths, advantages: [], truncated: [], metrics: [:],
            samples: [])
        let old = needsOldLogp ? logProbabilities(policy, round) : nil
        var ref: [Float]?
        if let reference {
            ref = logProbabilities(reference, round)
        } else if needsReferenceLogp, let lora = policy.lora {
            lora.enabled = false
            ref = logProbabilities(policy, round)
            lora.enabled = true
        }
        return (old, ref)
    }
}
