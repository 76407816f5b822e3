import Distributed
import Foundation
import Models
import SafeTensors
import Tokenizers

/// What every trainer does first: claims `outputDir` (see `OutputLock`), checks that `resumeFrom`,
/// when given, is a checkpoint of this model and run, and loads the model to train (from
/// `resumeFrom`, when given) and the tokenizer of `folder`, which must have one.
///
/// With `lora`, the base comes from `folder` and the adapters from `resumeFrom` (a checkpoint),
/// else from `adapter` (an existing PEFT adapter), else new ones under `seed`.
func loadForTraining(
    folder: String, resumeFrom: String?, gradientCheckpointing: Bool, outputDir: String, overwrite: Bool,
    summary: [String: Any], lora: LoRASettings? = nil, adapter: String? = nil, seed: UInt64 = 0,
    precision: LinearPrecision = .float32, claimOutput: Bool = true
) throws -> (model: Transformer, tokenizer: Tokenizer, config: TokenizerConfig, lock: OutputLock?) {
    guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else {
        throw TrainingError.missingTokenizer(folder: folder)
    }
    if let resumeFrom { try Checkpoint.checkBelongs(resumeFrom, model: folder, run: summary) }
    // Under mpirun only rank 0 claims (and writes) the output folder.
    let lock =
        claimOutput
        ? try OutputLock(outputDir: outputDir, resuming: resumeFrom != nil, overwrite: overwrite) : nil
    let usesAdapters = lora != nil || adapter != nil
    let model = try ModelLoader.load(folder: usesAdapters ? folder : resumeFrom ?? folder)
    model.sourceFolder = folder
    if usesAdapters {
        if let from = resumeFrom ?? adapter {
            _ = try LoRA(model: model, adapterFolder: from)
        } else {
            _ = try LoRA(model: model, settings: lora!, seed: seed)
        }
        model.lora?.dropout.seed = seed
    }
    model.gradientCheckpointing = gradientCheckpointing
    model.precision = precision
    // A LoRA base is frozen: in bf16 it needs no float32 weights at all.
    if usesAdapters && precision == .bf16 { model.holdFrozenWeightsInBF16(backward: true) }
    return (model, try Tokenizer(path: folder), try TokenizerConfig.load(folder: folder), lock)
}

/// What one training step hands back to the loop.
struct StepResult {
    var metrics: [String: Double]
    /// Tokens the step learned from (completion tokens for GRPO, trained tokens for SFT).
    var tokens: Int
}

/// The loop `grpo train` and `grpo sft` share: take steps until the schedule's total or
/// `shouldStop`; write metrics (averaged over `logging_steps`) to `metrics.jsonl` and, with
/// `tensorBoard`, to event files; report every step's progress; evaluate when the schedule says
/// (`evaluate` returns `eval/...` metrics); save checkpoints as `save_strategy` says, at the end and
/// on stop, keeping at most `save_total_limit`; the trained model also goes to `outputDir` itself
/// when the run completes.
///
/// The step closure advances the state (`state` reads it); `epoch` is the passes over the data so
/// far. Returns the last checkpoint folder.
///
/// Under `mpirun` (`communicator` of more than one rank) every rank takes the steps and only rank 0
/// writes metrics, checkpoints and the model; every 10 steps and at the end the ranks compare a
/// checksum of the trained parameters, and a rank that drifted stops the job.
func runTrainingLoop(
    model: Transformer, optimizer: AdamW, state: () -> TrainerState, schedule: ResolvedSchedule,
    tensorBoardDir: String?, outputDir: String, summary: [String: Any], examples: Int,
    onEvent: (TrainerEvent) -> Void, shouldStop: () -> Bool, epoch: () -> Double,
    evaluate: ((Int) throws -> [String: Double])? = nil, companions: [CompanionModel] = [],
    communicator: Communicator = .single, checkpointState: (() throws -> TrainerState)? = nil,
    step: () throws -> StepResult
) throws -> String? {
    let writes = communicator.isMain
    if writes {
        try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
    }
    let log =
        writes ? try MetricsLog(path: outputDir + "/metrics.jsonl", keepingStepsThrough: state().step) : nil
    let resumedAt = state().step
    let events = try tensorBoardDir.flatMap { folder in
        writes ? try TensorBoardWriter(folder: folder, purgeFrom: resumedAt > 0 ? resumedAt + 1 : nil) : nil
    }
    func write(_ metrics: [String: Double], step: Int) throws {
        try log?.append(metrics, step: step)
        try events?.add(metrics, step: step)
    }
    func checkInStep(_ step: Int) throws {
        guard communicator.size > 1 else { return }
        // The policy's weights and every companion's (PPO's critic) in one checksum.
        let sums = communicator.gather([
            companions.reduce(parameterChecksum(model.trainableParameters)) {
                $0 + parameterChecksum($1.model.parameters)
            }
        ])
        if let drifted = sums.indices.first(where: { sums[$0] != sums[0] }) {
            throw TrainingError.ranksDrifted(step: step, rank: drifted, checksums: sums)
        }
    }
    let maxSteps = schedule.total
    onEvent(
        .started(
            firstStep: state().step, maxSteps: maxSteps, parameters: model.trainableParameters.count,
            examples: examples))
    func measure(_ step: Int) throws {
        guard let evaluate else { return }
        let metrics = try evaluate(step)
        try write(metrics, step: step)
        onEvent(.evaluated(step: step, metrics: metrics))
    }
    if schedule.evalOnStart, state().step == 0 { try measure(0) }
    var lastSaved: String?
    var window = MetricsWindow()
    var previousEpoch = epoch()
    while state().step < maxSteps {
        let started = Date()
        var result = try step()
        let step = state().step
        let seconds = Date().timeIntervalSince(started)
        result.metrics["step_seconds"] = seconds
        result.metrics["tokens_per_second"] = Double(result.tokens) / seconds
        window.add(result.metrics)
        let endsEpoch = ResolvedSchedule.endsEpoch(epoch(), after: previousEpoch)
        previousEpoch = epoch()
        // Under mpirun a stop seen by any rank stops every rank at the same step.
        let stopping = communicator.size > 1 ? communicator.sum(shouldStop() ? 1 : 0) > 0 : shouldStop()
        if schedule.logs(step: step, endsEpoch: endsEpoch) || (stopping && !window.isEmpty) {
            try write(window.take(), step: step)
        }
        onEvent(.step(step: step, maxSteps: maxSteps, metrics: result.metrics))
        if step % 10 == 0 || step == maxSteps { try checkInStep(step) }
        if schedule.evaluates(step: step, endsEpoch: endsEpoch), !stopping, writes { try measure(step) }
        if schedule.saves(step: step, endsEpoch: endsEpoch) || stopping {
            // Every rank takes part in `checkpointState` (it may gather from all); rank 0 writes.
            let saved = try checkpointState?() ?? state()
            if writes {
                let folder = try Checkpoint.save(
                    model: model, optimizer: optimizer, state: saved, config: summary, outputDir: outputDir,
                    companions: companions)
                lastSaved = folder
                onEvent(.saved(folder))
                if let limit = schedule.saveTotalLimit {
                    for removed in Checkpoint.rotate(outputDir: outputDir, keep: limit, protecting: folder) {
                        onEvent(.removed(removed))
                    }
                }
            }
        }
        if stopping { return lastSaved }
    }
    // The trained model itself, as TRL's save_model: output_dir is a Hugging Face model folder.
    guard writes else { return lastSaved }
    do {
        try ModelLoader.saveTrained(model, to: outputDir)
        for companion in companions {
            try ModelLoader.save(companion.model, to: outputDir + "/" + companion.folderName)
        }
    } catch {
        throw CheckpointError.saveFailed(folder: outputDir, reason: describeFileError(error))
    }
    onEvent(.saved(outputDir))
    return lastSaved
}

/// A checksum of `parameters`' values, in double precision.
///
/// Their sum, weighted by position, plus their sum of squares: ranks that applied the same updates
/// to the same weights agree on it exactly.
func parameterChecksum(_ parameters: ParameterStore) -> Double {
    let values = UnsafeBufferPointer(start: parameters.values.pointer, count: parameters.count)
    var sum = 0.0
    for (i, value) in values.enumerated() {
        let x = Double(value)
        sum += x * (1 + Double(i % 1021) / 1021) + x * x
    }
    return sum
}

/// Clips the accumulated gradients and applies AdamW at the schedule's rate, or skips the update
/// when the loss or gradient is not finite (counting it, and failing after `maxNonfiniteSteps`).
///
/// `companions` (PPO's critic) are clipped on their own and step with the policy, or are skipped
/// with it. Returns grad_norm (grad_norm/companion), learning_rate and, when skipped,
/// nonfinite_steps.
func applyUpdate(
    optimizer: AdamW, config: OptimizerConfig, state: inout TrainerState, totalSteps: Int, loss: Float,
    maxNonfiniteSteps: Int, onEvent: (TrainerEvent) -> Void, companions: [AdamW] = []
) throws -> [String: Double] {
    let rate = config.learningRate(step: state.step, totalSteps: totalSteps)
    let norm = clipGradientNorm(optimizer.parameters, maxNorm: config.maxGradNorm)
    let companionNorms = companions.map { clipGradientNorm($0.parameters, maxNorm: config.maxGradNorm) }
    var metrics: [String: Double] = ["loss": Double(loss), "grad_norm": norm, "learning_rate": rate]
    if let first = companionNorms.first { metrics["grad_norm/companion"] = first }
    if loss.isFinite && norm.isFinite && companionNorms.allSatisfy(\.isFinite) {
        optimizer.step(learningRate: rate)
        for companion in companions { companion.step(learningRate: rate) }
        state.optimizerSteps += 1
    } else {
        state.nonfiniteSteps += 1
        metrics["nonfinite_steps"] = Double(state.nonfiniteSteps)
        onEvent(.warning("step \(state.step + 1): non-finite loss or gradient; the update is skipped"))
        if state.nonfiniteSteps > maxNonfiniteSteps {
            throw TrainingError.tooManyNonfiniteSteps(state.nonfiniteSteps)
        }
    }
    return metrics
}

/// Consecutive runs of `range` holding at most `maxTokens` tokens (at least one sequence each):
/// what one forward and backward pass holds in memory.
///
/// `shared[i]` tokens of sequence i (its prompt, when it is the same as sequence i-1's) are packed
/// once per run, so they count only where a run starts.
func tokenChunks(lengths: [Int], shared: [Int]? = nil, _ range: Range<Int>, maxTokens: Int) -> [Range<Int>] {
    var result: [Range<Int>] = []
    var start = range.lowerBound
    var tokens = 0
    for i in range {
        let added = i > start ? lengths[i] - (shared?[i] ?? 0) : lengths[i]
        if i > start && tokens + added > maxTokens {
            result.append(start..<i)
            (start, tokens) = (i, lengths[i])
        } else {
            tokens += added
        }
    }
    if start < range.upperBound { result.append(start..<range.upperBound) }
    return result
}
