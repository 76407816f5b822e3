import Foundation

/// How long a run is and when it logs, saves and evaluates: TRL's `max_steps`,
/// `num_train_epochs`, `save_strategy`/`save_steps`/`save_total_limit`, `logging_strategy`/
/// `logging_steps`/`logging_first_step`, `report_to`/`logging_dir` and `eval_strategy`/`eval_steps`.
///
/// Step counts below 1 are fractions of the run, as in transformers; `resolved` turns them into
/// steps once the dataset fixes the run's length.
public struct RunSchedule: Sendable {
    /// -1: run `numTrainEpochs` over the dataset.
    public var maxSteps = -1
    public var numTrainEpochs = 3.0
    public var saveStrategy = SaveStrategy.steps
    public var saveSteps = 500.0
    public var saveTotalLimit: Int?
    public var loggingStrategy = "steps"
    public var loggingSteps = 10.0
    public var loggingFirstStep = false
    /// `report_to: tensorboard`: event files under `loggingDir`.
    public var tensorBoard = false
    public var loggingDir: String?
    public var evalStrategy = "no"
    /// nil: `loggingSteps`.
    public var evalSteps: Double?
    public var evalOnStart = false
    public var maxNonfiniteSteps = 5

    public init() {}

    /// Reads the schedule keys (`evaluation`: whether the trainer reads the eval keys too).
    init(_ v: ConfigValues, evaluation: Bool, notes: inout [String]) throws {
        maxSteps = try v.int("max_steps")
        numTrainEpochs = try v.double("num_train_epochs")
        saveStrategy = try v.choice("save_strategy")
        saveSteps = try v.double("save_steps")
        saveTotalLimit = try v.optionalInt("save_total_limit")
        loggingStrategy = try v.choiceName("logging_strategy")
        loggingSteps = try v.double("logging_steps")
        loggingFirstStep = try v.bool("logging_first_step")
        for target in v.list("report_to") ?? [] {
            switch "\(target)".lowercased() {
            case "none", "": break
            case "tensorboard": tensorBoard = true
            case "all": tensorBoard = true
            default:
                notes.append(
                    "report_to (\(v.source("report_to"))): '\(target)' is not used here: metrics go to "
                        + "metrics.jsonl, and to TensorBoard with report_to: tensorboard")
            }
        }
        loggingDir = try v.optionalString("logging_dir")
        maxNonfiniteSteps = try v.int("max_nonfinite_steps")
        if evaluation {
            evalStrategy = try v.choiceName("eval_strategy")
            evalSteps = try v.optionalDouble("eval_steps")
            evalOnStart = try v.bool("eval_on_start")
        }

        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw v.error(key, message) }
        }
        try require(
            maxSteps == -1 || maxSteps >= 1, "max_steps", "must be at least 1, or -1 for num_train_epochs")
        try require(numTrainEpochs > 0, "num_train_epochs", "must be positive")
        try require(saveSteps > 0, "save_steps", "must be positive (below 1: a fraction of the run)")
        try require(
            saveSteps < 1 || saveSteps == saveSteps.rounded(), "save_steps",
            "must be a whole number of steps, or a fraction below 1")
        try require((saveTotalLimit ?? 1) >= 1, "save_total_limit", "must be at least 1")
        try require(loggingSteps > 0, "logging_steps", "must be positive (below 1: a fraction of the run)")
        try require(
            loggingSteps < 1 || loggingSteps == loggingSteps.rounded(), "logging_steps",
            "must be a whole number of steps, or a fraction below 1")
        try require((evalSteps ?? 1) > 0, "eval_steps", "must be positive (below 1: a fraction of the run)")
        try require(maxNonfiniteSteps >= 0, "max_nonfinite_steps", "must not be negative")
    }

    /// The run's length for `stepsPerEpoch` optimizer steps per pass over the data.
    public func totalSteps(stepsPerEpoch: Double) -> Int {
        maxSteps > 0 ? maxSteps : max(1, Int((numTrainEpochs * stepsPerEpoch).rounded(.up)))
    }

    /// A step interval: whole steps, or below 1 a fraction of `total` (rounded up, at least 1).
    static func interval(_ value: Double, total: Int) -> Int {
        value < 1 ? max(1, Int((value * Double(total)).rounded(.up))) : Int(value)
    }

    /// This schedule for a run of `total` steps.
    func resolved(total: Int) -> ResolvedSchedule {
        ResolvedSchedule(
            total: total, save: saveStrategy, saveEvery: Self.interval(saveSteps, total: total),
            saveTotalLimit: saveTotalLimit, logging: loggingStrategy,
            logEvery: Self.interval(loggingSteps, total: total), logFirst: loggingFirstStep,
            eval: evalStrategy, evalEvery: Self.interval(evalSteps ?? loggingSteps, total: total),
            evalOnStart: evalOnStart)
    }

    /// Where TensorBoard event files go, or nil without `report_to: tensorboard`.
    public func tensorBoardFolder(outputDir: String) -> String? {
        tensorBoard ? loggingDir ?? outputDir + "/runs" : nil
    }
}

/// A schedule with its intervals in whole steps: what the training loop asks at each step.
struct ResolvedSchedule: Sendable {
    var total: Int
    var save: SaveStrategy
    var saveEvery: Int
    var saveTotalLimit: Int?
    var logging: String
    var logEvery: Int
    var logFirst: Bool
    var eval: String
    var evalEvery: Int
    var evalOnStart: Bool

    /// Whether `step` (1-based, just taken) ends an epoch: `epoch` (passes over the data after the
    /// step) crossed a whole number since `previousEpoch`.
    static func endsEpoch(_ epoch: Double?, after previousEpoch: Double?) -> Bool {
        guard let epoch else { return false }
        return (epoch + 1e-9).rounded(.down) > ((previousEpoch ?? 0) + 1e-9).rounded(.down)
    }

    func logs(step: Int, endsEpoch: Bool) -> Bool {
        if step == total { return logging != "no" }
        if logFirst && step == 1 { return true }
        switch logging {
        case "steps": return step % logEvery == 0
        case "epoch": return endsEpoch
        default: return false
        }
    }

    func saves(step: Int, endsEpoch: Bool) -> Bool {
        switch save {
        case .steps: step % saveEvery == 0 || step == total
        case .epoch: endsEpoch || step == total
        case .no: false
        }
    }

    func evaluates(step: Int, endsEpoch: Bool) -> Bool {
        switch eval {
        case "steps": step % evalEvery == 0 || step == total
        case "epoch": endsEpoch || step == total
        default: false
        }
    }
}

/// Metrics of the steps since the last log line, averaged as TRL's trainers log them: the mean of
/// each metric over the steps that had it, for the running totals (epoch, learning_rate,
/// num_tokens, nonfinite_steps) the latest value, and for `memory/...` the window's largest.
struct MetricsWindow {
    private var sums: [String: (total: Double, count: Int)] = [:]
    private var latest: [String: Double] = [:]
    static let latestKeys: Set<String> = ["epoch", "learning_rate", "num_tokens", "nonfinite_steps"]

    var isEmpty: Bool { sums.isEmpty && latest.isEmpty }

    mutating func add(_ metrics: [String: Double]) {
        for (key, value) in metrics {
            if Self.latestKeys.contains(key) {
                latest[key] = value
            } else if key.hasPrefix("memory/") {
                latest[key] = max(latest[key] ?? value, value)  // the window's peak
            } else if value.isFinite {
                sums[key, default: (0, 0)].total += value
                sums[key, default: (0, 0)].count += 1
            } else {
                sums[key] = sums[key] ?? (0, 0)
            }
        }
    }

    /// The window's averages, emptying it.
    mutating func take() -> [String: Double] {
        var result = latest
        for (key, sum) in sums { result[key] = sum.count > 0 ? sum.total / Double(sum.count) : .nan }
        sums = [:]
        latest = [:]
        return result
    }
}
