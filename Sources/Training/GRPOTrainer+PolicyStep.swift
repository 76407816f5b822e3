import Foundation

/// One optimizer step of GRPO (and RLOO, REINFORCE++): the round's micro-batches forward and
/// backward in chunks, the policy loss, the gradients summed across ranks, the AdamW update.
extension GRPOTrainer {
    /// The gradient-accumulation micro-batches: `gradient_accumulation_steps` equal runs of sequences.
    func microBatches(_ round: Round) -> [Range<Int>] {
        let size = round.sequences.count / config.optimizer.gradientAccumulationSteps
        return stride(from: 0, to: round.sequences.count, by: size).map {
            $0..<min($0 + size, round.sequences.count)
        }
    }

    /// Consecutive runs of `range` within `forward_batch_tokens`.
    func chunks(_ round: Round, _ range: Range<Int>) -> [Range<Int>] {
        tokenChunks(
            lengths: round.sequences.map(\.count), shared: round.sharedPromptLengths(), range,
            maxTokens: config.forwardBatchTokens)
    }

    /// Forward and backward over `round`, the gradients summed across ranks, then the update: the
    /// step's metrics (loss, clip ratios, KL, sampling mismatch).
    func optimizeStep(on round: Round, timings: inout [String: Double]) throws -> [String: Double] {
        var clock = Date()
        policy.trainableParameters.zeroGradients()
        let mask = round.mask(maskTruncated: config.maskTruncatedCompletions)
        let offsets = round.tokenOffsets()
        var settings = PolicyLossSettings()
        settings.lossType = config.lossType
        settings.epsilonLow = config.epsilon
        settings.epsilonHigh = config.epsilonHigh
        settings.delta = config.delta
        settings.importanceSamplingLevel = config.importanceSamplingLevel
        settings.biasCorrectedKL = config.useBiasCorrectionKL
        // TRL's RLOO: its own per-sequence objective, the KL already in the reward.
        settings.sequenceObjective = config.algorithm == .rloo
        settings.beta = config.algorithm == .rloo ? 0 : config.beta
        settings.maxCompletionLength = config.maxCompletionLength
        // Across ranks gradients are summed: DAPO divides by the tokens of every rank's batch, the
        // per-sequence means by every rank's micro-batches.
        settings.tokensInBatch = Float(communicator.sum(Double(mask.reduce(0, +))))
        settings.accumulationSteps = config.optimizer.gradientAccumulationSteps * communicator.size
        let firstSequence = communicator.rank * round.sequences.count
        var totals = (
            loss: Float(0), kl: Float(0), low: Float(0), high: Float(0), region: Float(0), tokens: Float(0)
        )
        var mismatch = SamplingMismatch()
        // Across ranks the gradients' all-reduce starts bucket by bucket during the last backward.
        let reduction = communicator.size > 1 ? gradientBuckets().begin(communicator) : nil
        let bytesBefore = communicator.bytesSent
        let micros = microBatches(round)
        for micro in micros {
            let span = offsets[micro.lowerBound]..<offsets[micro.upperBound]
            let weights = sequenceWeights(
                lengths: Array(round.completionLengths[micro]), mask: Array(mask[span]), settings: settings)
            var pieces = chunks(round, micro)
            if reduction != nil && micro == micros.last {
                // The all-reduce overlaps the step's last backward: make it the longest chunk.
                pieces = longestLast(pieces) { offsets[$0.upperBound] - offsets[$0.lowerBound] }
            }
            for range in pieces {
                let tokens = offsets[range.lowerBound]..<offsets[range.upperBound]
                // Dropout masks keyed by (step, first sequence): the same after a resume.
                policy.lora?.dropout.beginTrainingPass(
                    UInt64(state.step) << 24 | UInt64(firstSequence + range.lowerBound))
                defer { policy.lora?.dropout.endTrainingPass() }
                let logp = policy.forward(round.batch(range), temperature: config.temperature)
                let lengths = Array(round.completionLengths[range])
                let chunkMask = Array(mask[tokens])
                var importanceWeights: [Float]?
                if let sampling = round.samplingLogp.map({ Array($0[tokens]) }) {
                    // Before this round's first update the policy's own log-probs are the old ones.
                    let old = round.oldLogp.map { Array($0[tokens]) } ?? logp
                    importanceWeights = config.samplingCorrection?.weights(
                        old: old, sampled: sampling, lengths: lengths, mask: chunkMask)
                    mismatch.add(
                        old: old, sampled: sampling, mask: chunkMask, lengths: lengths,
                        weights: importanceWeights,
                        perSequence: config.samplingCorrection?.mode.perSequence ?? false)
                }
                let result = policyLoss(
                    PolicyBatch(
                        logp: logp, oldLogp: round.oldLogp.map { Array($0[tokens]) },
                        refLogp: round.refLogp.map { Array($0[tokens]) }, mask: chunkMask,
                        lengths: lengths, advantages: Array(round.advantages[range]),
                        importanceWeights: importanceWeights),
                    settings: settings,
                    weights: Array(
                        weights[(range.lowerBound - micro.lowerBound)..<(range.upperBound - micro.lowerBound)]
                    ))
                if let reduction, micro == micros.last, range == pieces.last {
                    policy.afterLayerBackward = reduction.layerDone
                }
                policy.backward(dLogp: result.dLogp)
                policy.afterLayerBackward = nil
                totals.loss += result.loss
                totals.kl += result.klSum
                totals.low += result.lowClipped
                totals.high += result.highClipped
                totals.region += result.regionClipped
                totals.tokens += result.tokens
            }
        }
        policy.releaseSavedActivations()
        timings["time/policy", default: 0] += Date().timeIntervalSince(clock)
        if communicator.size > 1 {
            // Bytes counted from before the backward, whose buckets started during it.
            exchange(&timings, sentBefore: bytesBefore) {
                reduction?.finish()
                var sums = [totals.loss, totals.kl, totals.low, totals.high, totals.region, totals.tokens]
                    .map(
                        Double.init)
                communicator.sum(&sums)
                (totals.loss, totals.kl, totals.low, totals.high, totals.region, totals.tokens) = (
                    Float(sums[0]), Float(sums[1]), Float(sums[2]), Float(sums[3]), Float(sums[4]),
                    Float(sums[5])
                )
            }
        }
        clock = Date()
        var metrics = try applyUpdate(
            optimizer: optimizer, config: config.optimizer, state: &state, totalSteps: totalSteps,
            loss: totals.loss, maxNonfiniteSteps: config.schedule.maxNonfiniteSteps, onEvent: onEvent)
        metrics["clip_ratio/low_mean"] = Double(totals.low / max(totals.tokens, 1))
        metrics["clip_ratio/high_mean"] = Double(totals.high / max(totals.tokens, 1))
        metrics["clip_ratio/region_mean"] = Double(totals.region / max(totals.tokens, 1))
        if config.beta > 0 && config.algorithm != .rloo {
            metrics["kl"] = Double(totals.kl / max(totals.tokens, 1))
        }
        metrics.merge(mismatch.metrics) { _, new in new }
        timings["time/optimizer", default: 0] += Date().timeIntervalSince(clock)
        return metrics
    }
}
