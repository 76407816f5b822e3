import Foundation
import Models
import Tensors

/// The folder PPO's critic has in every checkpoint and in output_dir.
let criticFolderName = "value_model"

/// Sums over one PPO step's updates, for TRL's metrics.
private struct PPOTotals {
    var policyLoss = 0.0
    var valueLoss = 0.0
    var policyClipped: Float = 0
    var valueClipped: Float = 0
    var tokens: Float = 0
    var squaredLogRatio = 0.0
    var ratio = 0.0
    var gradNorm = 0.0
    var valueGradNorm = 0.0
    var updates = 0
    var metrics: [String: Double] = [:]
}

extension GRPOTrainer {
    /// PPO's critic: from the checkpoint being resumed (which must hold one), else `value_model`,
    /// else the policy's folder with a new score head.
    static func loadCritic(
        _ ppo: PPOSettings, config: GRPOConfig, resumeFrom: String?, policy: Transformer,
        onEvent: (TrainerEvent) -> Void
    ) throws -> Transformer {
        let folder: String
        if let resumeFrom {
            folder = resumeFrom + "/" + criticFolderName
            guard FileManager.default.fileExists(atPath: folder + "/config.json") else {
                throw TrainingError.missingCritic(checkpoint: resumeFrom)
            }
        } else {
            folder = ppo.valueModel ?? config.model
        }
        let (critic, newHead) = try ModelLoader.loadValueModel(
            folder: folder, seed: config.seed &* 0x94D0_49BB_1331_11EB &+ 0x0C41_71C5)
        if resumeFrom != nil && newHead { throw TrainingError.missingCritic(checkpoint: resumeFrom!) }
        if critic.config.vocabSize < policy.config.vocabSize {
            throw TrainingError.criticVocabulary(
                folder: folder, critic: critic.config.vocabSize, policy: policy.config.vocabSize)
        }
        if newHead && ppo.valueModel != nil {
            onEvent(
                .warning(
                    "value_model \(folder) has no score.weight: its score head starts new, N(0, "
                        + "\(critic.config.initializerRange)), as transformers would"))
        }
        return critic
    }

    /// One PPO step, as TRL's PPOTrainer: the critic's values of the rollout, token rewards (the
    /// score at the last token, the KL to the reference at every token), GAE, whitened
    /// advantages, then `num_ppo_epochs` passes over `num_mini_batches` shuffled mini-batches,
    /// each one optimizer step of the policy's clipped loss plus `vf_coef` times the clipped
    /// value loss.
    ///
    /// Differences from TRL, each for a reason: the score lands on the last completion token
    /// (see `ppoTokenRewards`); the old log-probs are the policy's own forward over the rollout,
    /// as everywhere here, not the sampler's; and the policy's and critic's gradients are each
    /// clipped to `max_grad_norm` (veRL's actor and critic both clip; TRL's PPO loop does not).
    /// veRL also differs in defaults: a separate critic learning rate and warmup, `lam` 1 and the
    /// token-mean value loss without the ½; those are not offered here.
    ///
    /// Across ranks each rank scores its own block with the critic; then every rank holds the whole
    /// round and its values, computes the same rewards, advantages and shuffles, and works on its
    /// part of every micro-batch, the gradients and sums joined before each optimizer step.
    func ppoStep(on local: Round, timings: inout [String: Double]) throws -> [String: Double] {
        guard let ppo = config.ppo, let critic, let criticOptimizer, local.oldLogp != nil else {
            preconditionFailure("ppoStep without PPO's critic or the rollout's log-probs")
        }
        var clock = Date()
        var values = chunks(local, 0..<local.sequences.count).flatMap {
            critic.scores(local.batch($0)).toArray()
        }
        timings["time/values", default: 0] += Date().timeIntervalSince(clock)
        var round = local
        if communicator.size > 1 {
            try exchange(&timings) {
                round = try joinedRound(local)!
                values = communicator.gather(values.map(Double.init)).map(Float.init)
            }
        }
        let oldLogp = round.oldLogp!
        let lengths = round.completionLengths
        let mask = round.mask(maskTruncated: config.maskTruncatedCompletions)
        let scores = zip(round.rewards, round.truncated).map { reward, cut in
            cut ? reward - Double(ppo.missingEOSPenalty ?? 0) : reward
        }
        var (rewards, kl) = ppoTokenRewards(
            scores: scores, logp: oldLogp, refLogp: round.refLogp, lengths: lengths, klCoef: ppo.klCoef,
            estimator: ppo.klEstimator)
        if ppo.whitenRewards { rewards = maskedWhiten(rewards, mask: mask, shiftMean: false) }
        let gae = generalizedAdvantages(
            rewards: rewards, values: values, lengths: lengths, gamma: ppo.gamma, lambda: ppo.lam)
        let advantages = maskedWhiten(gae.advantages, mask: mask)

        clock = Date()
        var totals = PPOTotals()
        let count = round.sequences.count
        let miniSize = count / ppo.numMiniBatches
        let offsets = round.tokenOffsets()
        for epoch in 0..<ppo.numPPOEpochs {
            // A fresh shuffle each pass, a function of (seed, round, pass): the same after a resume.
            var rng = SplitMix64(
                seed: config.seed &* 0xA24B_AED4_963E_E407 &+ UInt64(state.rounds) << 8 &+ UInt64(epoch))
            var order = Array(0..<count)
            for i in stride(from: count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            for mini in 0..<ppo.numMiniBatches {
                // Sorted, so a group's completions stay neighbours and share their prompt's tokens.
                let indices = order[(mini * miniSize)..<((mini + 1) * miniSize)].sorted()
                try ppoUpdate(
                    round.subset(indices), advantages: gatherTokens(advantages, offsets: offsets, indices),
                    oldValues: gatherTokens(values, offsets: offsets, indices),
                    returns: gatherTokens(gae.returns, offsets: offsets, indices), settings: ppo,
                    critic: critic, criticOptimizer: criticOptimizer, totals: &totals, timings: &timings)
            }
        }
        policy.releaseSavedActivations()
        critic.releaseSavedActivations()
        timings["time/policy", default: 0] += Date().timeIntervalSince(clock)

        // TRL's names; sums over a sequence's tokens, means over sequences.
        let sequences = Double(count)
        let klSum = kl.reduce(0) { $0 + Double($1) }
        let meanScore = scores.reduce(0, +) / sequences
        let updates = Double(max(totals.updates, 1))
        var metrics = totals.metrics
        metrics["objective/kl"] = klSum / sequences
        metrics["objective/entropy"] = -oldLogp.reduce(0) { $0 + Double($1) } / sequences
        metrics["objective/non_score_reward"] = -Double(ppo.klCoef) * klSum / sequences
        metrics["objective/rlhf_reward"] = meanScore - Double(ppo.klCoef) * klSum / sequences
        metrics["objective/scores"] = meanScore
        metrics["policy/approxkl_avg"] = 0.5 * totals.squaredLogRatio / Double(max(totals.tokens, 1))
        metrics["policy/clipfrac_avg"] = Double(totals.policyClipped / max(totals.tokens, 1))
        metrics["loss/policy_avg"] = totals.policyLoss / updates
        metrics["loss/value_avg"] = totals.valueLoss / updates / Double(ppo.vfCoef)
        metrics["val/clipfrac_avg"] = Double(totals.valueClipped / max(totals.tokens, 1))
        metrics["val/ratio"] = totals.ratio / Double(max(totals.tokens, 1))
        metrics["loss"] = (totals.policyLoss + totals.valueLoss) / updates
        metrics["grad_norm"] = totals.gradNorm / updates
        metrics["value/grad_norm"] = totals.valueGradNorm / updates
        metrics["kl"] = klSum / Double(max(mask.reduce(0, +), 1))
        metrics["value/mean"] = values.reduce(0) { $0 + Double($1) } / Double(max(values.count, 1))
        return metrics
    }

    /// One optimizer step of policy and critic on a mini-batch, split into
    /// `gradient_accumulation_steps` micro-batches (each a token mean, as TRL's `masked_mean`).
    private func ppoUpdate(
        _ batch: Round, advantages: [Float], oldValues: [Float], returns: [Float], settings ppo: PPOSettings,
        critic: Transformer, criticOptimizer: AdamW, totals: inout PPOTotals, timings: inout [String: Double]
    ) throws {
        policy.trainableParameters.zeroGradients()
        critic.parameters.zeroGradients()
        let mask = batch.mask(maskTruncated: config.maskTruncatedCompletions)
        let offsets = batch.tokenOffsets()
        let accumulation = config.optimizer.gradientAccumulationSteps
        var settings = PolicyLossSettings()
        settings.lossType = .bnpo
        settings.epsilonLow = ppo.clipRange
        settings.epsilonHigh = ppo.clipRange
        settings.accumulationSteps = accumulation
        // This update's sums (losses, clipped and masked tokens, log-ratio statistics), joined
        // across ranks before the optimizer step.
        var sums = (
            policy: Float(0), value: Float(0), policyClipped: Float(0), valueClipped: Float(0),
            tokens: Float(0),
            squaredLogRatio: 0.0, ratio: 0.0
        )
        // Across ranks the policy's all-reduce starts during its last backward and runs on while
        // the critic's forward and backward go, whose own buckets follow; only when every rank has
        // a part of the last micro-batch (all ranks must start the same buckets in the same order).
        let micros = microBatches(batch)
        let overlap = communicator.size > 1 && (micros.last?.count ?? 0) >= communicator.size
        let policySum = overlap ? gradientBuckets().begin(communicator) : nil
        let criticSum =
            overlap
            ? GradientBuckets(
                store: critic.parameters, layers: critic.config.numHiddenLayers,
                capBytes: config.bucketCapBytes
            ).begin(communicator) : nil
        let bytesBefore = communicator.bytesSent
        for micro in micros {
            let span = offsets[micro.lowerBound]..<offsets[micro.upperBound]
            let microMask = Array(mask[span])
            let weights = sequenceWeights(
                lengths: Array(batch.completionLengths[micro]), mask: microMask, settings: settings)
            let valueScale = ppo.vfCoef / (max(microMask.reduce(0, +), 1) * Float(accumulation))
            // Weights and the value loss's scale span the micro-batch; a rank forwards its part.
            let part = rankShare(micro.count, rank: communicator.rank)
            let pieces = chunks(
                batch, (micro.lowerBound + part.lowerBound)..<(micro.lowerBound + part.upperBound))
            for range in pieces {
                let last = overlap && micro == micros.last && range == pieces.last
                let tokens = offsets[range.lowerBound]..<offsets[range.upperBound]
                let chunkMask = Array(mask[tokens])
                let key =
                    UInt64(state.step) << 24 | UInt64(totals.updates & 0xFF) << 16 | UInt64(range.lowerBound)
                policy.lora?.dropout.beginTrainingPass(key)
                let logp = policy.forward(batch.batch(range), temperature: config.temperature)
                let old = Array(batch.oldLogp![tokens])
                let result = policyLoss(
                    PolicyBatch(
                        logp: logp, oldLogp: old, mask: chunkMask,
                        lengths: Array(batch.completionLengths[range]),
                        advantages: [Float](repeating: 0, count: range.count),
                        tokenAdvantages: Array(advantages[tokens])),
                    settings: settings,
                    weights: Array(
                        weights[(range.lowerBound - micro.lowerBound)..<(range.upperBound - micro.lowerBound)]
                    ))
                if last, let policySum { policy.afterLayerBackward = policySum.layerDone }
                policy.backward(dLogp: result.dLogp)
                policy.afterLayerBackward = nil
                if last { policySum?.sendRest() }
                policy.lora?.dropout.endTrainingPass()
                policy.releaseSavedActivations()

                let predicted = critic.forwardScores(batch.batch(range))
                let value = clippedValueLoss(
                    values: predicted.toArray(), oldValues: Array(oldValues[tokens]),
                    returns: Array(returns[tokens]),
                    mask: chunkMask, clipRange: ppo.clipRangeValue, scale: valueScale)
                if last, let criticSum { critic.afterLayerBackward = criticSum.layerDone }
                critic.backward(dScores: Tensor(value.dValues, shape: [value.dValues.count, 1]))
                critic.afterLayerBackward = nil
                critic.releaseSavedActivations()

                sums.policy += result.loss
                sums.value += value.loss
                sums.policyClipped += result.lowClipped + result.highClipped
                sums.valueClipped += value.clipped
                sums.tokens += result.tokens
                for t in 0..<logp.count where chunkMask[t] != 0 {
                    let logRatio = Double(logp[t] - old[t])
                    sums.squaredLogRatio += logRatio * logRatio
                    sums.ratio += exp(logRatio)
                }
            }
        }
        if communicator.size > 1 {
            exchange(&timings, sentBefore: bytesBefore) {
                if let policySum, let criticSum {
                    policySum.sendRest()
                    criticSum.finish()
                } else {
                    communicator.sumGradients(of: policy.trainableParameters)
                    communicator.sumGradients(of: critic.parameters)
                }
                var joined = [
                    Double(sums.policy), Double(sums.value), Double(sums.policyClipped),
                    Double(sums.valueClipped),
                    Double(sums.tokens), sums.squaredLogRatio, sums.ratio,
                ]
                communicator.sum(&joined)
                sums = (
                    Float(joined[0]), Float(joined[1]), Float(joined[2]), Float(joined[3]), Float(joined[4]),
                    joined[5], joined[6]
                )
            }
        }
        totals.policyClipped += sums.policyClipped
        totals.valueClipped += sums.valueClipped
        totals.tokens += sums.tokens
        totals.squaredLogRatio += sums.squaredLogRatio
        totals.ratio += sums.ratio
        let metrics = try applyUpdate(
            optimizer: optimizer, config: config.optimizer, state: &state, totalSteps: totalSteps,
            loss: sums.policy + sums.value, maxNonfiniteSteps: config.schedule.maxNonfiniteSteps,
            onEvent: onEvent, companions: [criticOptimizer])
        totals.policyLoss += Double(sums.policy)
        totals.valueLoss += Double(sums.value)
        totals.gradNorm += metrics["grad_norm"] ?? 0
        totals.valueGradNorm += metrics["grad_norm/companion"] ?? 0
        totals.updates += 1
        totals.metrics["learning_rate"] = metrics["learning_rate"]
        if let skipped = metrics["nonfinite_steps"] { totals.metrics["nonfinite_steps"] = skipped }
    }
}
