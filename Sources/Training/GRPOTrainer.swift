import Distributed
import Foundation
import Generation
import Models
import Rewards
import Tensors
import Tokenizers

/// What the trainer reports as it runs (the command line draws progress from these).
public enum TrainerEvent {
    case started(firstStep: Int, maxSteps: Int, parameters: Int, examples: Int)
    case step(step: Int, maxSteps: Int, metrics: [String: Double])
    case sample(step: Int, prompt: String, completion: String, reward: Double)
    case warning(String)
    case saved(String)
    /// An old checkpoint deleted by `save_total_limit`.
    case removed(String)
    /// Held-out metrics (`eval/...`) measured after `step`.
    case evaluated(step: Int, metrics: [String: Double])
}

/// GRPO: sample G completions per prompt, score them, normalise rewards within each group, and
/// take clipped policy-gradient steps with a KL penalty towards the reference model.
///
///     let trainer = try GRPOTrainer(config: config) { event in print(event) }
///     try trainer.train()
public final class GRPOTrainer {
    public let config: GRPOConfig
    public let policy: Transformer
    public let tokenizer: Tokenizer
    public internal(set) var state = TrainerState()
    /// Checked after every step; when true the trainer saves a checkpoint and returns.
    public var shouldStop: () -> Bool = { false }
    let reference: Transformer?
    /// PPO's value model (a score head with one label) and its optimizer; nil for the other algorithms.
    let critic: Transformer?
    let criticOptimizer: AdamW?
    let rewards: [any Reward]
    let examples: [Example]
    let optimizer: AdamW
    let generator: Generator
    let stopTokenIDs: [Int32]
    let onEvent: (TrainerEvent) -> Void
    /// Held from init until `train` returns: no other run writes the output_dir meanwhile.
    private var lock: OutputLock?
    private var stream: PromptStream
    private var alarms = (clipped: 0, zeroStd: 0)
    /// The run's length: `max_steps`, or `num_train_epochs` over the dataset.
    public let totalSteps: Int
    /// Steps between printed samples (0: none).
    let sampleEvery: Int
    /// Held-out prompts (`eval_dataset`), empty without evaluation.
    let evalExamples: [Example]
    /// Held-out accuracy at each evaluation and the training reward of each step, for the
    /// reward-hacking warning.
    var evalHistory: [HeldOutMeasurement] = []
    var trainRewards: [(step: Int, reward: Double)] = []
    /// What the process held before anything was loaded (memory/process).
    private let memoryBaseline: MemoryBaseline
    /// Whether rewards that wait on other processes score during the log-prob passes (measured;
    /// `GRPO_REWARDS_ALONGSIDE=0` or `1` fixes it, for tests and scripts/bench_code_reward.sh).
    var rewardOverlap = RewardOverlap()
    /// The job this trainer is a rank of (a job of one unless started by `mpirun`).
    public let communicator: Communicator
    /// The most KV cache a held-out evaluation held (its own generator's), for the memory account.
    var evaluationCacheBytes = 0
    /// The policy's gradients cut into all-reduce buckets, under `mpirun` (`gradientBuckets()`).
    var policyBuckets: GradientBuckets?

    /// Loads the model (from `resumeFrom`, a checkpoint folder, when given), the reference model when
    /// beta > 0, the tokenizer, rewards and dataset; every input problem surfaces here, before work.
    ///
    /// With `communicator` of more than one rank (`mpirun`), the trainer is one rank of a
    /// data-parallel job: it samples, scores and learns from its share of each step's prompt groups,
    /// the gradients and everything that spans the batch are summed across ranks, and only rank 0
    /// reports and writes.
    public init(
        config: GRPOConfig, resumeFrom: String? = nil, communicator: Communicator = .single,
        onEvent: @escaping (TrainerEvent) -> Void = { _ in }
    )
        throws
    {
        self.config = config
        self.communicator = communicator
        self.onEvent = communicator.isMain ? onEvent : { _ in }
        if communicator.size > 1 { try Self.checkDistributed(config, ranks: communicator.size) }
        memoryBaseline = MemoryBaseline()
        var tokenizerConfig: TokenizerConfig
        let precision = resolvedPrecision(config.precision) { onEvent(.warning($0)) }
        (policy, tokenizer, tokenizerConfig, lock) = try loadForTraining(
            folder: config.model, resumeFrom: resumeFrom, gradientCheckpointing: config.gradientCheckpointing,
            outputDir: config.outputDir, overwrite: config.overwriteOutputDir, summary: config.summary,
            lora: config.lora, adapter: config.adapter, seed: config.seed, precision: precision,
            claimOutput: communicator.isMain)
        tokenizerConfig.templateKwargs = config.chatTemplateKwargs
        if let template = config.chatTemplate {
            tokenizerConfig.useTemplate(template, source: "chat_template (config)")
        }
        // With adapters the reference is the base itself, adapters off: no second model.
        let klWeight = config.ppo?.klCoef ?? config.beta
        reference = klWeight > 0 && policy.lora == nil ? try ModelLoader.load(folder: config.model) : nil
        if let reference, precision == .bf16 {
            reference.precision = .bf16
            reference.frozenBase = true
            reference.holdFrozenWeightsInBF16(backward: false)
        }
        stopTokenIDs = Generation.stopTokenIDs(model: policy, tokenizer: tokenizer, config: tokenizerConfig)
        rewards = try config.rewards.map {
            try RewardRegistry.make($0, maxCompletionLength: config.maxCompletionLength) {
                onEvent(.warning($0))
            }
        }
        examples = try loadPromptDataset(
            path: config.dataset, tokenizer: tokenizer, config: tokenizerConfig,
            maxPromptLength: config.maxPromptLength, requiredFields: requiredFields(of: rewards),
            format: config.promptFormat)
        if let evaluation = config.evaluation {
            var held = try loadPromptDataset(
                path: evaluation.dataset, tokenizer: tokenizer, config: tokenizerConfig,
                maxPromptLength: config.maxPromptLength, requiredFields: requiredFields(of: rewards),
                format: config.promptFormat)
            if let limit = evaluation.maxPrompts { held = Array(held.prefix(limit)) }
            evalExamples = held
        } else {
            evalExamples = []
        }
        totalSteps = config.schedule.totalSteps(
            stepsPerEpoch: Double(examples.count) / Double(config.promptsPerRound))
        let logEvery = RunSchedule.interval(config.schedule.loggingSteps, total: totalSteps)
        sampleEvery = config.logCompletionsSteps ?? (config.logCompletions.map { $0 ? logEvery : 0 } ?? 10)
        if let ppo = config.ppo {
            let critic = try Self.loadCritic(
                ppo, config: config, resumeFrom: resumeFrom, policy: policy, onEvent: onEvent)
            critic.gradientCheckpointing = config.gradientCheckpointing
            critic.precision = precision
            self.critic = critic
            criticOptimizer = AdamW(parameters: critic.parameters, settings: config.optimizer.adamW)
        } else {
            (critic, criticOptimizer) = (nil, nil)
        }
        let context = min(policy.config.maxPositionEmbeddings, critic?.config.maxPositionEmbeddings ?? .max)
        for (path, set) in [(config.dataset, examples), (config.evaluation?.dataset ?? "", evalExamples)] {
            if let long = set.first(where: { $0.tokens.count + config.maxCompletionLength > context }) {
                throw TrainingError.promptTooLong(
                    path: path, line: long.line, tokens: long.tokens.count,
                    maxCompletionLength: config.maxCompletionLength, context: context)
            }
        }
        optimizer = AdamW(parameters: policy.trainableParameters, settings: config.optimizer.adamW)
        generator = Generator(model: policy, tokenizer: tokenizer)
        generator.maxCacheBytes = config.maxCacheMiB << 20
        generator.nonFiniteLogitsAreErrors = false
        stream = PromptStream(count: examples.count, seed: config.seed, shuffle: config.shuffleDataset)
        state.seed = config.seed
        if let resumeFrom {
            state = try Checkpoint.restore(from: resumeFrom, optimizer: optimizer)
            state.pendingRound = state.pendingRound.map(rankBlock)
            if let criticOptimizer {
                try Checkpoint.restoreCompanion(
                    criticFolderName, from: resumeFrom, optimizer: criticOptimizer, state: state)
            }
        }
    }

    /// Trains until `maxSteps` (or `shouldStop`), saving every `saveSteps` and at the end; returns the
    /// last checkpoint folder.
    @discardableResult
    public func train() throws -> String? {
        if lock == nil && communicator.isMain {
            lock = try OutputLock(outputDir: config.outputDir, resuming: true, overwrite: false)
        }
        defer { lock = nil }
        return try runTrainingLoop(
            model: policy, optimizer: optimizer, state: { self.state },
            schedule: config.schedule.resolved(total: totalSteps),
            tensorBoardDir: config.schedule.tensorBoardFolder(outputDir: config.outputDir),
            outputDir: config.outputDir, summary: config.summary, examples: examples.count, onEvent: onEvent,
            shouldStop: shouldStop,
            epoch: { Double(self.state.consumedPrompts) / Double(self.examples.count) },
            evaluate: config.evaluation == nil ? nil : { try self.evaluateHeldOut(step: $0) },
            companions: zip([critic].compactMap { $0 }, [criticOptimizer].compactMap { $0 }).map {
                CompanionModel(folderName: criticFolderName, model: $0, optimizer: $1)
            },
            communicator: communicator, checkpointState: { try self.checkpointState() }
        ) {
            var timings: [String: Double] = [:]
            var round = try state.pendingRound ?? makeRound(&timings)
            var metrics: [String: Double]
            if config.ppo != nil {
                metrics = try ppoStep(on: round, timings: &timings)
            } else {
                metrics = try optimizeStep(on: round, timings: &timings)
                round.iterationsDone += 1
                state.pendingRound = round.iterationsDone < config.numIterations ? round : nil
            }
            state.step += 1
            metrics.merge(round.metrics) { new, _ in new }
            metrics.merge(timings) { new, _ in new }
            metrics["epoch"] = Double(state.consumedPrompts) / Double(examples.count)
            var account = MemoryAccount(
                model: policy,
                activations: policy.heldActivationBytes + (reference?.heldActivationBytes ?? 0)
                    + (critic?.heldActivationBytes ?? 0),
                kvCache: max(generator.peakCacheBytes, evaluationCacheBytes))
            account.reference = reference?.weightBytes ?? 0
            memoryBaseline.apply(to: &account)
            account.backward = max(account.backward, critic?.backwardScratchBytes ?? 0)
            account.critic = critic.map { $0.weightBytes + 12 * $0.parameters.count } ?? 0
            metrics.merge(account.metrics) { _, new in new }
            checkAlarms(metrics)
            if let reward = metrics["reward"] { trainRewards.append((state.step, reward)) }
            if sampleEvery > 0 && state.step % sampleEvery == 0 {
                for sample in round.samples {
                    onEvent(
                        .sample(
                            step: state.step, prompt: sample.prompt, completion: sample.completion,
                            reward: sample.reward))
                }
            }
            return StepResult(metrics: metrics, tokens: round.completionLengths.reduce(0, +))
        }
    }

    // MARK: - One generation round

    /// The rollout: draws the next prompts, samples `num_generations` completions of each (more
    /// rounds under dynamic sampling), scores them with every reward, and returns them as a typed
    /// round with the estimator's advantages and the log-probs the loss needs (old ones for
    /// `num_iterations` > 1, RLOO and PPO; the reference's when its KL weight is positive).
    ///
    /// It advances the data stream and the round counter, as a training step would.
    public func rollout() throws -> Round {
        var timings: [String: Double] = [:]
        return try makeRound(&timings)
    }

    func makeRound(_ timings: inout [String: Double]) throws -> Round {
        let G = config.numGenerations
        var sampling = samplingParameters(temperature: config.temperature, numGenerations: G)
        var all: (scores: [[Double?]], combined: [Double], lengths: [Int], truncated: [Bool]) =
            (rewards.map { _ in [] }, [], [], [])
        var attempts = 0
        // Rewards that wait on other processes score while the log-prob passes run (one round, no
        // dynamic sampling: what is sampled is what is trained on).
        let candidates =
            config.dynamicSampling || !needsLogprobPasses
            ? [] : rewards.indices.filter { rewards[$0].runsAlongside }
        let alongside = !candidates.isEmpty && rewardOverlap.alongside() ? candidates : []
        var passes: (old: [Float]?, ref: [Float]?)?
        // Each draw is split among the ranks in contiguous blocks, sampled from the streams of their
        // global positions, so the groups are those one process would sample. `owners` is every kept
        // group of the round in one process's order (the same on every rank); `kept` this rank's own.
        let (rank, ranks) = (communicator.rank, communicator.size)
        var kept: [SampledGroup] = []
        var owners: [(rank: Int, ordinal: Int)] = []
        var keptByRank = [Int](repeating: 0, count: ranks)
        while owners.count < config.promptsPerRound {
            let wanted = config.promptsPerRound - owners.count
            let share = rankShare(wanted, rank: rank)
            let positions = share.map { stream.index(at: state.consumedPrompts + $0) }
            let drawn = positions.map { examples[$0] }
            state.consumedPrompts += wanted
            sampling.firstPromptIndex = share.lowerBound
            sampling.seed = config.seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(state.rounds)
            state.rounds += 1
            var (groups, scores): ([[Completion]], [[Double?]]) = ([], rewards.map { _ in [] })
            if !drawn.isEmpty {
                let clock = Date()
                groups = try generator.generate(prompts: drawn.map(\.tokens), parameters: sampling)
                timings["time/generation", default: 0] += Date().timeIntervalSince(clock)
                (scores, passes) = try scoreRound(
                    drawn, groups, alongside: alongside, measure: !candidates.isEmpty && alongside.isEmpty,
                    timings: &timings)
            }
            let combined = combineRewards(scores, weights: config.rewardWeights)
            for r in rewards.indices { all.scores[r] += scores[r] }
            all.combined += combined
            all.lengths += groups.flatMap { $0.map(\.tokens.count) }
            all.truncated += groups.flatMap { $0.map { $0.finishReason == .length } }
            let refill = config.dynamicSampling && attempts < config.dynamicSamplingMaxRounds
            // Which groups carry signal is known rank by rank; the refill is decided over all.
            let keep =
                refill
                ? communicator.gather(
                    informativeGroups(rewards: combined, groupSize: G).map { share.lowerBound + $0 })
                : Array(0..<wanted)
            for global in keep.prefix(wanted) {
                let owner = (0..<ranks).first { rankShare(wanted, rank: $0).contains(global) }!
                owners.append((owner, keptByRank[owner]))
                keptByRank[owner] += 1
                guard owner == rank else { continue }
                let p = global - share.lowerBound
                let slice = (p * G)..<((p + 1) * G)
                kept.append(
                    SampledGroup(
                        example: positions[p], completions: groups[p],
                        scores: rewards.indices.map { Array(scores[$0][slice]) },
                        combined: Array(combined[slice])))
            }
            attempts += 1
        }
        kept = try ownBlock(of: owners, kept: kept)
        let keptExamples = kept.map { examples[$0.example] }
        let keptCombined = kept.flatMap(\.combined)
        let completions = kept.flatMap(\.completions)
        // What spans the batch (advantages under batch scaling or whitening, the logged statistics)
        // is computed over every rank's completions; this rank keeps its own slice.
        let batchRewards = communicator.gather(keptCombined)
        let batchLengths = communicator.gather(completions.map(\.tokens.count))
        all.scores = all.scores.map(communicator.gather)
        all.combined = communicator.gather(all.combined)
        all.lengths = communicator.gather(all.lengths)
        all.truncated = communicator.gather(all.truncated)
        let mine = (rank * completions.count)..<((rank + 1) * completions.count)
        var round = Round(
            sequences: zip(keptExamples.flatMap { Array(repeating: $0.tokens, count: G) }, completions).map {
                $0 + $1.tokens
            },
            promptLengths: keptExamples.flatMap { Array(repeating: $0.tokens.count, count: G) },
            // PPO's advantages are per token, from GAE over the critic's values (`ppoStep`).
            advantages: config.algorithm == .ppo
                ? [Float](repeating: 0, count: completions.count)
                : estimateAdvantages(
                    rewards: batchRewards, groupSize: G, estimator: config.algorithm,
                    scaling: config.scaleRewards, lengths: batchLengths, normalize: config.normalizeAdvantages
                )[mine].map { Float($0) },
            truncated: completions.map { $0.finishReason == .length },
            samplingLogp: completions.flatMap(\.logprobs), rewards: keptCombined,
            metrics: roundMetrics(
                scores: all.scores, names: rewards.map(\.name), combined: all.combined, groupSize: G,
                lengths: all.lengths, truncated: all.truncated),
            samples: (0..<min(config.numCompletionsToPrint, completions.count)).map { i in
                LoggedSample(
                    prompt: keptExamples[i / G].prompt, completion: completions[i].text ?? "",
                    reward: keptCombined[i])
            })
        if config.dynamicSampling { round.metrics["dynamic_sampling/rounds"] = Double(attempts) }
        if passes == nil {
            let clock = Date()
            passes = logprobPasses(sequences: round.sequences, promptLengths: round.promptLengths)
            timings["time/reference", default: 0] += Date().timeIntervalSince(clock)
        }
        (round.oldLogp, round.refLogp) = passes!
        let rlooKL = config.algorithm == .rloo && config.beta > 0
        if rlooKL, let old = round.oldLogp, let ref = round.refLogp {
            let mask = round.mask(maskTruncated: config.maskTruncatedCompletions)
            var (rewards, klSum) = rlooRewards(
                keptCombined, oldLogp: old, refLogp: ref, lengths: round.completionLengths, mask: mask,
                beta: Double(config.beta))
            // The whitening spans the batch: every rank's KL-folded rewards.
            rewards = communicator.gather(rewards)
            let lengths = communicator.gather(round.completionLengths)
            var sums = [klSum, Double(mask.reduce(0, +))]
            communicator.sum(&sums)
            let maskedTokens: Double
            (klSum, maskedTokens) = (sums[0], sums[1])
            round.advantages = estimateAdvantages(
                rewards: rewards, groupSize: G, estimator: .rloo, scaling: config.scaleRewards,
                lengths: lengths, normalize: config.normalizeAdvantages
            )[mine].map { Float($0) }
            round.metrics["kl"] = klSum / max(maskedTokens, 1)
        }
        return round
    }

    /// The run's sampling knobs (top-p, top-k, min-p, repetition penalty, length, stop tokens) at
    /// `temperature` with `numGenerations` completions per prompt.
    func samplingParameters(temperature: Float, numGenerations: Int) -> SamplingParameters {
        var sampling = SamplingParameters()
        sampling.temperature = temperature
        sampling.topP = config.topP
        sampling.topK = config.topK
        sampling.minP = config.minP
        sampling.repetitionPenalty = config.repetitionPenalty
        sampling.maxNewTokens = config.maxCompletionLength
        sampling.stopTokenIDs = stopTokenIDs
        sampling.numGenerations = numGenerations
        return sampling
    }

    /// Completion-token log-probs of every sequence at the sampling temperature, without gradients.
    func logProbabilities(_ model: Transformer, _ round: Round) -> [Float] {
        chunks(round, 0..<round.sequences.count).flatMap {
            model.logProbabilities(round.batch($0), temperature: config.temperature)
        }
    }

    /// Warns when most completions are truncated, or most groups carry no signal, for 3 steps running.
    private func checkAlarms(_ metrics: [String: Double]) {
        alarms.clipped = (metrics["completions/clipped_ratio"] ?? 0) >= 0.9 ? alarms.clipped + 1 : 0
        alarms.zeroStd = (metrics["frac_reward_zero_std"] ?? 0) >= 0.9 ? alarms.zeroStd + 1 : 0
        if alarms.clipped == 3 {
            onEvent(
                .warning(
                    "over 90% of completions hit max_completion_length for 3 steps: rewards see cut-off "
                        + "answers. Raise max_completion_length, or set mask_truncated_completions"))
        }
        if alarms.zeroStd == 3 {
            onEvent(
                .warning(
                    "over 90% of prompt groups got identical rewards for 3 steps, so their advantages are 0 "
                        + "and nothing is learned. The task may be too hard or too easy for the model, or the "
                        + "reward may not match the output format; try dynamic_sampling or larger num_generations"
                ))
        }
    }
}
