import ArgumentParser
import Distributed
import Foundation
import Rewards
import Training
import Yams

/// The first Ctrl-C or SIGTERM (what `timeout`, Slurm and Kubernetes send) sets this to the signal's
/// number; the trainer saves a checkpoint after the current step and stops.
nonisolated(unsafe) private var interruptSignal: Int32 = 0

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model with GRPO on a JSONL prompt dataset.",
        discussion: """
            Keys are TRL's GRPOConfig, TrainingArguments, ScriptArguments and ModelConfig names, in a \
            YAML file (--config) or as flags (--key value; flags win). TRL keys that do not apply here \
            (use_vllm, hub_*, deepspeed, ...) are accepted with a note; unknown keys are refused.

            """ + "\n" + ConfigTable.help(ConfigTable.grpoSections) + """


                Rewards (`rewards: [NAME, {name: NAME, OPTION: VALUE}]`):
                \(RewardRegistry.help)

                Example: grpo train --config grpo.yaml --learning_rate 5e-6 --max_steps 200
                """)

    @OptionGroup var options: RunOptions

    func run() throws {
        try runTrainer(options: options, done: "trained model") { values, world in
            let settings = try GRPOConfig(values)
            let make: (String?, @escaping (TrainerEvent) -> Void) throws -> any CommandTrainer = {
                try GRPOTrainer(config: settings, resumeFrom: $0, communicator: world, onEvent: $1)
            }
            return (settings.notes, settings.outputDir, settings.resumeFromCheckpoint, make)
        }
    }
}

/// A trainer as `grpo train` and `grpo sft` drive it.
protocol CommandTrainer: AnyObject {
    var shouldStop: () -> Bool { get set }
    var state: TrainerState { get }
    @discardableResult func train() throws -> String?
}

extension GRPOTrainer: CommandTrainer {}
extension SFTTrainer: CommandTrainer {}

/// What `grpo train` and `grpo sft` do around their trainer, as one rank of the job `mpirun` started
/// (or alone): read the config (`configure` gives its notes, output_dir, configured checkpoint and how
/// to build the trainer), resume as asked, train with a progress line, stop cleanly on Ctrl-C; only
/// rank 0 prints.
func runTrainer(
    options: RunOptions, done: String,
    configure: (ConfigValues, Communicator) throws -> (
        notes: [String], outputDir: String, resume: String?,
        make: (String?, @escaping (TrainerEvent) -> Void) throws -> any CommandTrainer
    )
) throws {
    let world = try Communicator.world()
    try world.running {
        let (notes, outputDir, configured, make) = try configure(try options.values(), world)
        if world.isMain { printNotes(notes) }
        let checkpoint = try options.checkpoint(outputDir: outputDir, configured: configured)
        let progress = ProgressLine()
        let trainer = try make(checkpoint) { progress.show($0) }
        trainer.shouldStop = stopOnInterrupt()
        try trainer.train()
        if world.isMain { progress.finish() }
        try exitIfInterrupted(step: trainer.state.step)
        if world.isMain { print("\(done): \(outputDir) (metrics in \(outputDir)/metrics.jsonl)") }
    }
}

/// The YAML file's keys overlaid with `--key value` flags.
func configValues(file: String?, flags: [String]) throws -> ConfigValues {
    let values = ConfigValues()
    if let file { values.merge(try loadYAMLConfig(file), source: file) }
    values.merge(try parseKeyFlags(flags), source: "command line")
    return values
}

/// Prints the config's notes on TRL keys that do not apply here, once each, before the run.
func printNotes(_ notes: [String]) {
    for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
}

/// The checkpoint to continue from: `--resume-from`, or with `--resume` the newest in `outputDir`,
/// else the config's `resume_from_checkpoint` (a folder, or true for the newest).
func resumeCheckpoint(resume: Bool, from folder: String?, outputDir: String, configured: String? = nil) throws
    -> String?
{
    if let folder { return folder }
    var resume = resume
    if !resume, let configured {
        switch configured.lowercased() {
        case "false", "no", "0", "none", "": break
        case "true", "yes", "1": resume = true
        default: return configured
        }
    }
    guard resume else { return nil }
    guard let latest = Checkpoint.latest(in: outputDir) else {
        throw ValidationError("--resume: no checkpoint-N folder in \(outputDir)")
    }
    return latest
}

/// Installs the Ctrl-C and SIGTERM handlers and returns the trainer's stop check: the first signal
/// finishes the step and saves, a second exits at once.
func stopOnInterrupt() -> () -> Bool {
    // A parent may hand down the signals blocked (test runners do); unblock them so they arrive.
    var unblock = sigset_t()
    sigemptyset(&unblock)
    for signal in [SIGINT, SIGTERM] { sigaddset(&unblock, signal) }
    pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    for number in [SIGINT, SIGTERM] {
        signal(number) { received in
            if interruptSignal != 0 { _exit(128 + received) }  // a second signal does not wait
            interruptSignal = received
        }
    }
    return { interruptSignal != 0 }
}

/// Exits with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), after saying how to
/// continue, when a signal stopped the run.
func exitIfInterrupted(step: Int) throws {
    guard interruptSignal != 0 else { return }
    let name = interruptSignal == SIGTERM ? "terminated (SIGTERM)" : "interrupted"
    print("\(name) at step \(step); continue with --resume")
    throw ExitCode(128 + interruptSignal)
}

/// Reads a YAML mapping of config keys.
func loadYAMLConfig(_ path: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("\(path): cannot read the file")
    }
    let loaded: Any?
    let text = String(decoding: data, as: UTF8.self)
    do {
        // Aliases are shared in the composed tree but copied when values are built: count first, so
        // a "billion laughs" file is an error instead of gigabytes.
        if let node = try Yams.compose(yaml: text),
            yamlValueCount(node, budget: maxYAMLValues) > maxYAMLValues
        {
            throw ValidationError(
                "\(path): the YAML expands to more than \(maxYAMLValues) values (aliases repeating aliases?); "
                    + "a run's config is a few dozen keys")
        }
        loaded = try Yams.load(yaml: text)
    } catch let error as ValidationError {
        throw error
    } catch {
        throw ValidationError("\(path): invalid YAML: \(error)")
    }
    guard let mapping = plainYAML(loaded) as? [String: Any] else {
        throw ValidationError("\(path): expected a mapping of keys to values")
    }
    return mapping
}

/// The most values a YAML config may expand to.
private let maxYAMLValues = 100_000

/// The values in `node` with aliases expanded, counted up to just past `budget`.
private func yamlValueCount(_ node: Node, budget: Int) -> Int {
    var count = 0
    func visit(_ node: Node) {
        guard count <= budget else { return }
        count += 1
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                visit(key)
                visit(value)
            }
        case .sequence(let sequence): for item in sequence { visit(item) }
        default: break
        }
    }
    visit(node)
    return count
}

/// Converts Yams' values to JSON-like ones (string keys).
private func plainYAML(_ value: Any?) -> Any {
    switch value {
    case let mapping as [AnyHashable: Any]:
        var result: [String: Any] = [:]
        for (key, item) in mapping { result["\(key.base)"] = plainYAML(item) }
        return result
    case let list as [Any]: return list.map { plainYAML($0) }
    case nil: return NSNull()
    default: return value!
    }
}

/// `--key value`, `--key=value` and bare `--flag` pairs (true for a boolean key, an error naming the
/// flag for a key that needs a value, so `--output_dir --max_steps 2` never takes "true" as a folder).
func parseKeyFlags(_ arguments: [String]) throws -> [String: Any] {
    var result: [String: Any] = [:]
    var i = 0
    while i < arguments.count {
        let argument = arguments[i]
        guard argument.hasPrefix("--"), argument.count > 2 else {
            throw ValidationError("unexpected argument '\(argument)': options are --key value")
        }
        let body = String(argument.dropFirst(2))
        if let equals = body.firstIndex(of: "=") {
            result[String(body[..<equals])] = flagValue(String(body[body.index(after: equals)...]))
            i += 1
        } else if i + 1 < arguments.count && !arguments[i + 1].hasPrefix("--") {
            result[body] = flagValue(arguments[i + 1])
            i += 2
        } else {
            result[body] = BareFlag()
            i += 1
        }
    }
    return result
}

/// A flag's value: text, or a YAML list when it is one in flow style (`[accuracy, {name:
/// reward_model, model: ./rm}]`), so a flag can give what a config file gives.
private func flagValue(_ text: String) -> Any {
    guard text.hasPrefix("["), let list = (try? Yams.load(yaml: text)) as? [Any] else { return text }
    return plainYAML(list)
}

/// A reward as a flag gives it: a name, or a YAML mapping such as `{name: reward_model, model: ./rm}`.
func rewardSpec(flag: String) throws -> RewardSpec {
    let item: Any? = flag.hasPrefix("{") ? (try? Yams.load(yaml: flag)).map { plainYAML($0) } : flag
    guard let item, let spec = RewardSettings.spec(item) else {
        throw ValidationError(
            "--reward: expected a reward name or a mapping such as '{name: reward_model, model: DIR}', got '\(flag)'"
        )
    }
    return spec
}

/// One updating line of progress with ETA, plus warnings, samples and saves on their own lines.
final class ProgressLine {
    private let interactive = isatty(STDERR_FILENO) != 0
    private var started: Date?
    private var firstStep = 0
    private var pending = false

    func show(_ event: TrainerEvent) {
        switch event {
        case .started(let first, let maxSteps, let parameters, let examples):
            started = Date()
            firstStep = first
            line(
                "training \(parameters) parameters on \(examples) examples, steps \(first + 1)...\(maxSteps)",
                keep: true)
        case .step(let step, let maxSteps, let metrics):
            let elapsed = Date().timeIntervalSince(started ?? Date())
            let perStep = elapsed / Double(max(1, step - firstStep))
            var text = "step \(step)/\(maxSteps)"
            if let reward = metrics["reward"] {
                text += "  reward \(format(reward)) ± \(format(metrics["reward_std"]))"
            } else {
                text += "  loss \(format(metrics["loss"], digits: 4))"
            }
            if let kl = metrics["kl"] { text += "  kl \(format(kl, digits: 4))" }
            if let length = metrics["completions/mean_length"] {
                text += "  len \(format(length, digits: 0))"
            }
            text +=
                "  \(format(perStep, digits: 1)) s/step  ETA \(duration(perStep * Double(maxSteps - step)))"
            line(text, keep: !interactive)
        case .sample(let step, let prompt, let completion, let reward):
            line(
                "--- step \(step) sample (reward \(format(reward)))\n\(prompt)\(completion)\n---", keep: true)
        case .warning(let message):
            line("warning: \(message)", keep: true)
        case .saved(let folder):
            line("saved \(folder)", keep: true)
        case .removed(let folder):
            line("removed \(folder) (save_total_limit)", keep: true)
        case .evaluated(let step, let metrics):
            var text = "held-out after step \(step):"
            if let accuracy = metrics["eval/accuracy"] {
                text += " accuracy \(format(accuracy * 100, digits: 1))%"
            }
            if let (key, value) = metrics.first(where: { $0.key.hasPrefix("eval/pass@") }) {
                text += "  \(key.dropFirst(5)) \(format(value * 100, digits: 1))%"
            }
            if let reward = metrics["eval/reward"] { text += "  reward \(format(reward))" }
            if let length = metrics["eval/completions/mean_length"] {
                text += "  len \(format(length, digits: 0))"
            }
            line(text, keep: true)
        }
    }

    func finish() {
        if pending { FileHandle.standardError.write(Data("\n".utf8)) }
        pending = false
    }

    private func line(_ text: String, keep: Bool) {
        if interactive {
            let prefix = "\r\u{1B}[K"
            FileHandle.standardError.write(Data((prefix + text + (keep ? "\n" : "")).utf8))
            pending = !keep
        } else {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    private func format(_ value: Double?, digits: Int = 3) -> String {
        guard let value, value.isFinite else { return "-" }
        return String(format: "%.\(digits)f", value)
    }

    private func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

extension Communicator {
    /// Runs `body` as this rank's part of the job: an error on any rank ends the whole job (MPI_Abort)
    /// with the error and the rank that hit it, instead of leaving the others waiting in a collective;
    /// success ends MPI cleanly.
    func running(_ body: () throws -> Void) throws {
        guard size > 1 else { return try body() }
        do {
            try body()
        } catch {
            abort("Error (rank \(rank) of \(size)): \(error)")
        }
        finish()
    }
}
