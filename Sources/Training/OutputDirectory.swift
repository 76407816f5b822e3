import Foundation
import SafeTensors

/// What can stop a run before it starts writing: its output folder, or the checkpoint it resumes.
public enum RunFolderError: Error, CustomStringConvertible, Equatable {
    case inUse(outputDir: String, owner: String)
    case holdsCheckpoints(outputDir: String, latest: String)
    case notACheckpoint(folder: String)
    case otherModel(checkpoint: String, key: String, there: String, here: String, model: String)
    case otherRun(checkpoint: String, key: String, there: String, here: String)
    case unusable(path: String, reason: String)

    public var description: String {
        switch self {
        case .inUse(let outputDir, let owner):
            "output_dir \(outputDir) is in use by another run (\(owner)); wait for it, or give another output_dir"
        case .holdsCheckpoints(let outputDir, let latest):
            "output_dir \(outputDir) holds another run's checkpoints (newest: \(latest)); pass --resume to "
                + "continue that run, set overwrite_output_dir: true to delete them and start over, or give "
                + "another output_dir"
        case .notACheckpoint(let folder):
            "\(folder) is not a checkpoint (it has no trainer_state.json); to start a new run from its "
                + "weights, pass it as model"
        case .otherModel(let checkpoint, let key, let there, let here, let model):
            "\(checkpoint) was trained from another model: \(key) is \(there) there and \(here) in "
                + "\(model)/config.json"
        case .otherRun(let checkpoint, let key, let there, let here):
            "\(checkpoint) belongs to another run: its \(key) is \(there), this run's is \(here); a resumed "
                + "run must keep them (to start a new run from its weights, pass it as model)"
        case .unusable(let path, let reason): "cannot use \(path): \(reason)"
        }
    }
}

/// A claimed output folder: an advisory lock on `OUTPUT/.grpo-run.lock` held while the run writes,
/// so a second trainer on the same folder stops with an error instead of overwriting checkpoints.
///
/// The kernel drops the lock when the process ends, however it ends (kill -9 included).
public final class OutputLock {
    public let outputDir: String
    private let lockPath: String
    private let descriptor: Int32
    /// Whether the claim made the folder: a run that fails before writing removes it again.
    private let createdFolder: Bool
    private var released = false

    /// Claims `outputDir` (creating it); removes half-written checkpoint folders a killed run left.
    ///
    /// A run that does not resume refuses a folder holding checkpoints, unless `overwrite` (TRL's
    /// `overwrite_output_dir`), which deletes them and the old metrics first.
    public init(outputDir: String, resuming: Bool, overwrite: Bool) throws {
        self.outputDir = outputDir
        let manager = FileManager.default
        let existed = manager.fileExists(atPath: outputDir)
        do {
            try manager.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
        } catch {
            throw RunFolderError.unusable(path: outputDir, reason: describeFileError(error))
        }
        createdFolder = !existed
        lockPath = outputDir + "/.grpo-run.lock"
        descriptor = try Self.acquire(lockPath, outputDir: outputDir)
        let owner = "process \(getpid()) on \(ProcessInfo.processInfo.hostName)\n"
        _ = ftruncate(descriptor, 0)
        _ = owner.withCString { write(descriptor, $0, strlen($0)) }

        let names = (try? manager.contentsOfDirectory(atPath: outputDir)) ?? []
        // Half-written checkpoints, and old ones a save_total_limit rotation was deleting when stopped.
        for name in names
        where (name.hasPrefix(".checkpoint-") && name.hasSuffix(".partial"))
            || name.hasPrefix(".removing-checkpoint-")
        {
            try? manager.removeItem(atPath: outputDir + "/" + name)
        }
        let checkpoints = names.filter { Checkpoint.step(ofFolderNamed: $0) != nil }
        guard !resuming, !checkpoints.isEmpty else { return }
        guard overwrite else {
            let newest = checkpoints.max {
                Checkpoint.step(ofFolderNamed: $0)! < Checkpoint.step(ofFolderNamed: $1)!
            }!
            release()
            throw RunFolderError.holdsCheckpoints(outputDir: outputDir, latest: outputDir + "/" + newest)
        }
        do {
            for name in checkpoints + ["metrics.jsonl"]
            where manager.fileExists(atPath: outputDir + "/" + name) {
                try manager.removeItem(atPath: outputDir + "/" + name)
            }
        } catch {
            release()
            throw RunFolderError.unusable(path: outputDir, reason: describeFileError(error))
        }
    }

    /// Opens and locks the lock file; the inode is checked after locking, since a finishing run
    /// unlinks the file it held (a lock on an unlinked file would lock nothing).
    private static func acquire(_ lockPath: String, outputDir: String) throws -> Int32 {
        for _ in 0..<10 {
            let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw RunFolderError.unusable(path: lockPath, reason: String(cString: strerror(errno)))
            }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                let owner = (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                close(descriptor)
                throw RunFolderError.inUse(
                    outputDir: outputDir, owner: (owner?.isEmpty ?? true) ? "see \(lockPath)" : owner!)
            }
            var held = stat()
            var named = stat()
            if fstat(descriptor, &held) == 0, stat(lockPath, &named) == 0, held.st_ino == named.st_ino,
                held.st_dev == named.st_dev
            {
                return descriptor
            }
            close(descriptor)
        }
        throw RunFolderError.unusable(path: lockPath, reason: "the lock file keeps changing")
    }

    /// Unlinks the lock file while still holding it, then lets go; a folder the claim made and
    /// nothing filled is removed.
    private func release() {
        guard !released else { return }
        released = true
        unlink(lockPath)
        flock(descriptor, LOCK_UN)
        close(descriptor)
        if createdFolder { rmdir(outputDir) }
    }

    deinit { release() }
}

extension Checkpoint {
    /// N of a `checkpoint-N` folder name.
    static func step(ofFolderNamed name: String) -> Int? {
        guard name.hasPrefix("checkpoint-") else { return nil }
        return Int(name.dropFirst("checkpoint-".count))
    }

    /// The config.json keys that fix a model's parameter shapes.
    static let shapeKeys = [
        "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "vocab_size", "tie_word_embeddings",
    ]

    /// Refuses to resume from `folder` unless it is a checkpoint of this model (same shapes in
    /// config.json) and of this run (same trainer, dataset and seed, which fix the data order).
    public static func checkBelongs(_ folder: String, model: String, run summary: [String: Any]) throws {
        guard FileManager.default.fileExists(atPath: folder + "/trainer_state.json") else {
            throw RunFolderError.notACheckpoint(folder: folder)
        }
        func object(_ path: String) -> [String: Any]? {
            FileManager.default.contents(atPath: path).flatMap {
                try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
            }
        }
        func text(_ value: Any?) -> String {
            guard let value else { return "missing" }
            if let number = value as? NSNumber {  // Swift values and JSON's, read back, alike
                return String(cString: number.objCType) == "c"
                    ? (number.boolValue ? "true" : "false") : number.stringValue
            }
            return "\(value)"
        }
        if let there = object(folder + "/config.json"), let here = object(model + "/config.json") {
            for key in shapeKeys where text(there[key]) != text(here[key]) {
                throw RunFolderError.otherModel(
                    checkpoint: folder, key: key, there: text(there[key]), here: text(here[key]), model: model
                )
            }
        }
        guard let saved = object(folder + "/training_config.json") else { return }
        // Checkpoints written before "trainer" was recorded: GRPO's have num_generations.
        let savedTrainer = saved["trainer"] ?? (saved["num_generations"] != nil ? "grpo" : "sft")
        let pairs: [(String, Any?, Any?)] = [
            ("trainer", savedTrainer, summary["trainer"]), ("dataset", saved["dataset"], summary["dataset"]),
            ("seed", saved["seed"], summary["seed"]),
            ("use_peft", saved["use_peft"] ?? false, summary["use_peft"] ?? false),
        ]
        for (key, there, here) in pairs where text(there) != text(here) {
            if key == "dataset", let a = there as? String, let b = here as? String, sameFile(a, b) {
                continue
            }
            throw RunFolderError.otherRun(checkpoint: folder, key: key, there: text(there), here: text(here))
        }
    }
}

/// Whether two paths name one file (a dataset given relative to another working folder).
private func sameFile(_ a: String, _ b: String) -> Bool {
    var first = stat()
    var second = stat()
    guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
    return first.st_dev == second.st_dev && first.st_ino == second.st_ino
}
