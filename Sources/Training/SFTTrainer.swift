import Distributed
import Foundation
import Models
import Tensors
import Tokenizers

/// Supervised fine-tuning: minimise the mean negative log-likelihood of the learned tokens (the
/// completion or assistant turns), averaged over all of them in a step as TRL does.
///
///     let trainer = try SFTTrainer(config: config) { event in print(event) }
///     try trainer.train()
public final class SFTTrainer {
    public let config: SFTConfig
    public let model: Transformer
    /// Held from init until `train` returns: no other run writes the output_dir meanwhile.
    private var lock: OutputLock?
    public let examples: [SFTExample]
    public let totalSteps: Int
    public private(set) var state = TrainerState()
    /// Checked after every step; when true the trainer saves a checkpoint and returns.
    public var shouldStop: () -> Bool = { false }
    let optimizer: AdamW
    let onEvent: (TrainerEvent) -> Void
    private var stream: PromptStream
    /// The job this trainer is a rank of (a job of one unless started by `mpirun`).
    public let communicator: Communicator

    /// Loads the model (from `resumeFrom`, a checkpoint folder, when given), tokenizer and dataset;
    /// every input problem surfaces here, before work.
    ///
    /// With `communicator` of more than one rank (`mpirun`), each rank learns from its block of every
    /// step's examples, the loss is the mean over every rank's tokens, gradients are summed across
    /// ranks and only rank 0 reports and writes.
    public init(
        config: SFTConfig, resumeFrom: String? = nil, communicator: Communicator = .single,
        onEvent: @escaping (TrainerEvent) -> Void = { _ in }
    ) throws {
        self.config = config
        self.communicator = communicator
        self.onEvent = communicator.isMain ? onEvent : { _ in }
        guard config.examplesPerStep % communicator.size == 0 else {
            throw TrainingError.distributed(
                "per_device_train_batch_size x gradient_accumulation_steps = \(config.examplesPerStep) examples a step "
                    + "do not divide among \(communicator.size) ranks")
        }
        let (model, tokenizer, loadedConfig, lock) = try loadForTraining(
            folder: config.model, resumeFrom: resumeFrom, gradientCheckpointing: config.gradientCheckpointing,
            outputDir: config.outputDir, overwrite: config.overwriteOutputDir, summary: config.summary,
            lora: config.lora, adapter: config.adapter, seed: config.seed,
            precision: resolvedPrecision(config.precision) { onEvent(.warning($0)) },
            claimOutput: communicator.isMain)
        self.lock = lock
        var tokenizerConfig = loadedConfig
        tokenizerConfig.templateKwargs = config.chatTemplateKwargs
        if let template = config.chatTemplate {
            tokenizerConfig.useTemplate(template, source: "chat_template (config)")
        }
        self.model = model
        let eos =
            tokenizerConfig.eosToken.flatMap { tokenizer.tokenID($0) }
            ?? model.config.eosTokenIDs.first.map(Int32.init)
        let context = model.config.maxPositionEmbeddings
        examples = try loadSFTDataset(
            path: config.dataset, tokenizer: tokenizer, config: tokenizerConfig, eosTokenID: eos,
            maxLength: min(config.maxLength ?? context, context),
            completionOnlyLoss: config.completionOnlyLoss, textField: config.datasetTextField)
        totalSteps = config.totalSteps(examples: examples.count)
        optimizer = AdamW(parameters: model.trainableParameters, settings: config.optimizer.adamW)
        stream = PromptStream(count: examples.count, seed: config.seed, shuffle: config.shuffleDataset)
        state.seed = config.seed
        if let resumeFrom { state = try Checkpoint.restore(from: resumeFrom, optimizer: optimizer) }
    }

    /// Trains for `totalSteps` (or until `shouldStop`), saving every `save_steps` and at the end;
    /// returns the last checkpoint folder.
    @discardableResult
    public func train() throws -> String? {
        if lock == nil && communicator.isMain {
            lock = try OutputLock(outputDir: config.outputDir, resuming: true, overwrite: false)
        }
        defer { lock = nil }
        return try runTrainingLoop(
            model: model, optimizer: optimizer, state: { self.state },
            schedule: config.schedule.resolved(total: totalSteps),
            tensorBoardDir: config.schedule.tensorBoardFolder(outputDir: config.outputDir),
            outputDir: config.outputDir, summary: config.summary, examples: examples.count, onEvent: onEvent,
            shouldStop: shouldStop,
            epoch: { Double(self.state.consumedPrompts) / Double(self.examples.count) },
            communicator: communicator
        ) {
            let local = config.examplesPerStep / communicator.size
            let first = state.consumedPrompts + communicator.rank * local
            let batch = (0..<local).map { examples[stream.index(at: first + $0)] }
            state.consumedPrompts += config.examplesPerStep
            let (loss, tokens) = accumulateGradients(batch)
            state.learnedTokens += tokens
            var metrics = try applyUpdate(
                optimizer: optimizer, config: config.optimizer, state: &state, totalSteps: totalSteps,
                loss: loss,
                maxNonfiniteSteps: config.schedule.maxNonfiniteSteps, onEvent: onEvent)
            state.step += 1
            metrics["num_tokens"] = Double(state.learnedTokens)
            metrics["epoch"] = Double(state.consumedPrompts) / Double(examples.count)
            let account = MemoryAccount(
                model: model, activations: model.heldActivationBytes, kvCache: nil)
            metrics.merge(account.metrics) { _, new in new }
            return StepResult(metrics: metrics, tokens: tokens)
        }
    }

    /// Forward and backward over `batch` in chunks of `forward_batch_tokens`; returns the mean loss
    /// over the learned tokens and their number.
    func accumulateGradients(_ batch: [SFTExample]) -> (loss: Float, tokens: Int) {
        model.trainableParameters.zeroGradients()
        // Across ranks: the mean over every rank's learned tokens, the gradients summed.
        let tokens = Int(communicator.sum(Double(batch.reduce(0) { $0 + $1.trainedCount })))
        let scale = 1 / Float(tokens)
        let firstExample = communicator.rank * batch.count
        var loss: Float = 0
        // Across ranks the all-reduce starts bucket by bucket during the last backward.
        let reduction =
            communicator.size > 1
            ? GradientBuckets(
                store: model.trainableParameters, layers: model.config.numHiddenLayers,
                capBytes: config.bucketCapBytes
            ).begin(communicator) : nil
        var pieces = tokenChunks(
            lengths: batch.map(\.tokens.count), 0..<batch.count, maxTokens: config.forwardBatchTokens)
        if reduction != nil {
            // The all-reduce overlaps the last backward: make it the longest chunk.
            pieces = longestLast(pieces) { batch[$0].reduce(0) { $0 + $1.tokens.count } }
        }
        for range in pieces {
            let chunk = batch[range]
            model.lora?.dropout.beginTrainingPass(
                UInt64(state.step) << 24 | UInt64(firstExample + range.lowerBound))
            defer { model.lora?.dropout.endTrainingPass() }
            let logp = model.forward(
                TokenBatch(sequences: chunk.map(\.tokens), scored: chunk.map(\.trained)), temperature: 1)
            loss -= logp.reduce(0, +) * scale
            if let reduction, range == pieces.last { model.afterLayerBackward = reduction.layerDone }
            model.backward(dLogp: [Float](repeating: -scale, count: logp.count))
            model.afterLayerBackward = nil
        }
        model.releaseSavedActivations()
        if let reduction {
            reduction.finish()
            loss = Float(communicator.sum(Double(loss)))
        }
        return (loss, tokens)
    }
}
