import Foundation
import Models
import SafeTensors
import Tensors

/// The trainer's own state beside the weights: enough to continue exactly where it stopped.
///
/// Random streams are functions of (seed, prompt position, sample), so the seed and the number of
/// prompts drawn are the whole RNG state.
public struct TrainerState: Codable, Sendable, Equatable {
    /// Optimizer steps taken.
    public var step = 0
    /// Prompts drawn from the shuffled stream so far (the data order position).
    public var consumedPrompts = 0
    /// Generation rounds sampled so far (seeds each round's completions).
    public var rounds = 0
    /// AdamW updates applied (steps minus skipped ones), for its bias correction.
    public var optimizerSteps = 0
    /// Steps skipped for a NaN or infinite loss or gradient.
    public var nonfiniteSteps = 0
    public var seed: UInt64 = 0
    /// A generation round still being optimized on (num_iterations > 1), kept so a resumed run
    /// finishes it instead of sampling a new one.
    public var pendingRound: Round?
    /// Tokens the loss has learned from so far (SFT's `num_tokens`), so a resumed run counts on.
    public var learnedTokens = 0

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case step, consumedPrompts, rounds, optimizerSteps, nonfiniteSteps, seed, pendingRound, learnedTokens
    }

    /// Reads a state file; `learnedTokens`, added later, is 0 in checkpoints written before it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        step = try c.decode(Int.self, forKey: .step)
        consumedPrompts = try c.decode(Int.self, forKey: .consumedPrompts)
        rounds = try c.decode(Int.self, forKey: .rounds)
        optimizerSteps = try c.decode(Int.self, forKey: .optimizerSteps)
        nonfiniteSteps = try c.decode(Int.self, forKey: .nonfiniteSteps)
        seed = try c.decode(UInt64.self, forKey: .seed)
        pendingRound = try c.decodeIfPresent(Round.self, forKey: .pendingRound)
        learnedTokens = try c.decodeIfPresent(Int.self, forKey: .learnedTokens) ?? 0
    }
}

/// A checkpoint that could not be written, in a sentence.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case saveFailed(folder: String, reason: String)

    public var description: String {
        switch self {
        case .saveFailed(let folder, let reason):
            "could not save \(folder): \(reason); the earlier checkpoints are intact"
        }
    }
}

/// A model trained beside the policy (PPO's critic): every checkpoint holds it, as a Hugging Face
/// folder with its AdamW moments, in `OUTPUT/checkpoint-N/<folderName>/`, and a finished run
/// writes it to `OUTPUT/<folderName>/`.
public struct CompanionModel {
    public let folderName: String
    public let model: Transformer
    public let optimizer: AdamW

    public init(folderName: String, model: Transformer, optimizer: AdamW) {
        self.folderName = folderName
        self.model = model
        self.optimizer = optimizer
    }
}

/// Checkpoint folders: `OUTPUT/checkpoint-N/` is a Hugging Face model folder (config.json,
/// model.safetensors in float32, tokenizer files), or with LoRA a PEFT adapter folder
/// (adapter_config.json, adapter_model.safetensors), plus `optimizer.safetensors` (AdamW's moments
/// of what trains) and `trainer_state.json`.
///
/// A checkpoint is written into a hidden temporary folder and renamed into place, so a crash, kill
/// or full disk during a save leaves every earlier checkpoint whole.
public enum Checkpoint {
    public static func folder(_ outputDir: String, step: Int) -> String { "\(outputDir)/checkpoint-\(step)" }

    /// Writes a checkpoint for `state.step` and returns its folder.
    ///
    /// On any failure (a full disk, say) the half-written folder is removed and the error says what
    /// failed where, in a sentence; earlier checkpoints are untouched.
    @discardableResult
    public static func save(
        model: Transformer, optimizer: AdamW, state: TrainerState, config: [String: Any], outputDir: String,
        companions: [CompanionModel] = []
    ) throws -> String {
        let temporary = "\(outputDir)/.checkpoint-\(state.step).partial"
        do {
            return try write(
                model: model, optimizer: optimizer, state: state, config: config, outputDir: outputDir,
                temporary: temporary, companions: companions)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CheckpointError.saveFailed(
                folder: folder(outputDir, step: state.step), reason: describeFileError(error))
        }
    }

    private static func write(
        model: Transformer, optimizer: AdamW, state: TrainerState, config: [String: Any], outputDir: String,
        temporary: String, companions: [CompanionModel]
    ) throws -> String {
        let manager = FileManager.default
        try manager.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
        let final = folder(outputDir, step: state.step)
        try? manager.removeItem(atPath: temporary)
        try manager.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        try ModelLoader.saveTrained(model, to: temporary)
        try writeMoments(of: optimizer, to: temporary + "/optimizer.safetensors")
        for companion in companions {
            let folder = temporary + "/" + companion.folderName
            try ModelLoader.save(companion.model, to: folder)
            try writeMoments(of: companion.optimizer, to: folder + "/optimizer.safetensors")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(try encoder.encode(state), to: temporary + "/trainer_state.json")
        let settings = try JSONSerialization.data(
            withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try atomicWrite(settings, to: temporary + "/training_config.json")
        // Replace an older checkpoint of the same step only once the new one is complete.
        if manager.fileExists(atPath: final) {
            let old = final + ".old"
            try? manager.removeItem(atPath: old)
            try manager.moveItem(atPath: final, toPath: old)
            try manager.moveItem(atPath: temporary, toPath: final)
            try? manager.removeItem(atPath: old)
        } else {
            try manager.moveItem(atPath: temporary, toPath: final)
        }
        return final
    }

    /// AdamW's moments as `exp_avg` and `exp_avg_sq`, (P) each.
    private static func writeMoments(of optimizer: AdamW, to path: String) throws {
        let P = optimizer.parameters.count
        try SafeTensorsWriter.write(
            [
                TensorToWrite(
                    name: "exp_avg", shape: [P],
                    values: UnsafeBufferPointer(start: optimizer.m.pointer, count: P)),
                TensorToWrite(
                    name: "exp_avg_sq", shape: [P],
                    values: UnsafeBufferPointer(start: optimizer.v.pointer, count: P)),
            ], dtype: .f32, to: path)
    }

    /// The steps of the complete checkpoints (those with a trainer_state.json) in `outputDir`, in order.
    static func completeSteps(in outputDir: String) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outputDir)) ?? []
        return names.compactMap { name -> Int? in
            guard let step = step(ofFolderNamed: name),
                FileManager.default.fileExists(atPath: "\(outputDir)/\(name)/trainer_state.json")
            else { return nil }
            return step
        }.sorted()
    }

    /// The newest complete checkpoint folder in `outputDir`, or nil.
    public static func latest(in outputDir: String) -> String? {
        completeSteps(in: outputDir).last.map { folder(outputDir, step: $0) }
    }

    /// Deletes the oldest complete checkpoints of `outputDir` beyond `keep` (TRL's
    /// `save_total_limit`), never `protecting` (the one just written) nor the newest complete one;
    /// returns the folders removed.
    @discardableResult
    public static func rotate(outputDir: String, keep: Int, protecting: String) -> [String] {
        let complete = completeSteps(in: outputDir)
        guard complete.count > keep else { return [] }
        let protected = Set([folder(outputDir, step: complete.last!), protecting])
        var removable = complete.map { folder(outputDir, step: $0) }.filter { !protected.contains($0) }
        var removed: [String] = []
        var remaining = complete.count
        while remaining > max(keep, protected.count), !removable.isEmpty {
            let oldest = removable.removeFirst()
            // Renamed first, so a crash mid-delete never leaves a half checkpoint that looks whole.
            let doomed = outputDir + "/.removing-" + (oldest as NSString).lastPathComponent
            guard (try? FileManager.default.moveItem(atPath: oldest, toPath: doomed)) != nil else { continue }
            try? FileManager.default.removeItem(atPath: doomed)
            removed.append(oldest)
            remaining -= 1
        }
        return removed
    }

    /// Reads the trainer state and AdamW moments of `folder` (its weights load with `ModelLoader`).
    public static func restore(from folder: String, optimizer: AdamW) throws -> TrainerState {
        let statePath = folder + "/trainer_state.json"
        guard let data = FileManager.default.contents(atPath: statePath) else {
            throw DatasetError(path: statePath, line: nil, reason: "cannot read the trainer state")
        }
        let state: TrainerState
        do {
            state = try JSONDecoder().decode(TrainerState.self, from: data)
        } catch {
            throw DatasetError(path: statePath, line: nil, reason: "not a trainer state: \(error)")
        }
        try readMoments(into: optimizer, from: folder + "/optimizer.safetensors")
        optimizer.steps = state.optimizerSteps
        return state
    }

    /// Reads a companion's AdamW moments from `checkpoint/<folderName>/optimizer.safetensors`; its
    /// steps are the policy's (they step together).
    public static func restoreCompanion(
        _ folderName: String, from checkpoint: String, optimizer: AdamW, state: TrainerState
    ) throws {
        try readMoments(into: optimizer, from: checkpoint + "/" + folderName + "/optimizer.safetensors")
        optimizer.steps = state.optimizerSteps
    }

    private static func readMoments(into optimizer: AdamW, from path: String) throws {
        let file = try SafeTensorsFile(path: path)
        let P = optimizer.parameters.count
        for (name, tensor) in [("exp_avg", optimizer.m), ("exp_avg_sq", optimizer.v)] {
            guard let info = file.tensors[name], info.shape == [P] else {
                throw DatasetError(
                    path: path, line: nil,
                    reason: "expected tensor \(name) of shape [\(P)] (the model's parameter count)")
            }
            try file.read(name, into: UnsafeMutableBufferPointer(start: tensor.pointer, count: P))
        }
    }
}
