import Foundation

/// Options of one reward in a config: `{name: accuracy, field: answer}` and the like.
public struct RewardSpec: Sendable, Equatable {
    public var name: String
    public var options: [String: String]
    /// Options given as lists (a YAML sequence): an external reward's argv.
    public var lists: [String: [String]]

    public init(name: String, options: [String: String] = [:], lists: [String: [String]] = [:]) {
        self.name = name
        self.options = options
        self.lists = lists
    }
}

/// What a reward option holds.
public enum RewardOptionType: Sendable, Equatable {
    case text
    /// A finite number.
    case number
    /// A whole number of at least `minimum`.
    case integer(minimum: Int)
    case boolean
    /// A folder or file; relative paths are the working folder's.
    case path
    /// One string (run by `/bin/sh -c`) or a list (an argv, run without a shell).
    case command

    /// What a value must look like, for errors and help.
    var expected: String {
        switch self {
        case .text: "text"
        case .number: "a number"
        case .integer(let minimum): "a whole number of at least \(minimum)"
        case .boolean: "true or false"
        case .path: "a path"
        case .command: "a program: a list [program, arguments...] or one shell command"
        }
    }
}

/// One option a reward kind takes.
public struct RewardOption: Sendable {
    public let name: String
    public let type: RewardOptionType
    /// The value used when the option is not given, as help shows it; nil when there is none.
    public let defaultValue: String?
    public let required: Bool
    public let help: String

    public init(
        _ name: String, _ type: RewardOptionType, default defaultValue: String? = nil, required: Bool = false,
        _ help: String
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.required = required
        self.help = help
    }
}

extension RewardOption {
    /// The dataset field of the reference answer (`accuracy`, `length`).
    static let answerField = RewardOption(
        "field", .text, default: "answer", "The dataset field of the reference answer.")
}

/// What a reward's factory is handed besides its options.
public struct RewardContext {
    /// The run's `max_completion_length` (DAPO's overlong punishment reads it).
    public var maxCompletionLength: Int
    /// Where a reward reports what it recovered from (an external program's fallback, say).
    public var warn: (String) -> Void

    public init(maxCompletionLength: Int, warn: @escaping (String) -> Void = { _ in }) {
        self.maxCompletionLength = maxCompletionLength
        self.warn = warn
    }
}

/// A reward's options as given, already checked against its kind's declaration: each accessor
/// returns the given value or the declared default, converted to its type.
public struct RewardArguments {
    public let spec: RewardSpec
    let kind: RewardKind

    func declared(_ key: String) -> RewardOption {
        guard let option = kind.options.first(where: { $0.name == key }) else {
            preconditionFailure("reward '\(kind.name)' reads the undeclared option '\(key)'")
        }
        return option
    }

    public func text(_ key: String) -> String? { spec.options[key] ?? declared(key).defaultValue }

    public func number(_ key: String) -> Double? { text(key).flatMap { Double($0) } }

    public func integer(_ key: String) -> Int? { text(key).flatMap { Int($0) } }

    public func boolean(_ key: String) -> Bool? { text(key).flatMap(RewardKind.parseBool) }

    /// A command option: the argv and whether it is one shell string.
    public func command(_ key: String) -> (argv: [String], shell: Bool)? {
        if let list = spec.lists[key] { return (list, false) }
        return spec.options[key].map { ([$0], true) }
    }
}

/// A kind of reward, declared once: its config name, what it does, its options with their types
/// and defaults, the dataset fields it reads, and how to build one.
public struct RewardKind: Sendable {
    public let name: String
    public let summary: String
    public let options: [RewardOption]
    /// The dataset fields it reads, as help shows them ("answer, or the field option").
    public let fields: String?
    let factory: @Sendable (RewardArguments, RewardContext) throws -> any Reward

    public init(
        name: String, summary: String, options: [RewardOption] = [], fields: String? = nil,
        factory: @escaping @Sendable (RewardArguments, RewardContext) throws -> any Reward
    ) {
        self.name = name
        self.summary = summary
        self.options = options
        self.fields = fields
        self.factory = factory
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "1": true
        case "false", "no", "0": false
        default: nil
        }
    }

    /// Checks `spec`'s options against the declaration: every option known, of its type, and
    /// every required one given.
    public func arguments(_ spec: RewardSpec) throws -> RewardArguments {
        for key in Set(spec.options.keys).union(spec.lists.keys).sorted() {
            guard let option = options.first(where: { $0.name == key }) else {
                let known = options.map(\.name)
                let hint = nearestName(key, among: known).map { "; did you mean '\($0)'?" } ?? ""
                throw RewardError.badOption(
                    reward: name, option: key,
                    expected: known.isEmpty
                        ? "not given: this reward takes no options"
                        : "one of: \(known.joined(separator: ", "))" + hint)
            }
            if spec.lists[key] != nil {
                guard option.type == .command else {
                    throw RewardError.badOption(
                        reward: name, option: key, expected: "a single value, not a list")
                }
                continue
            }
            let value = spec.options[key]!
            let valid: Bool
            switch option.type {
            case .text, .command: valid = true
            case .path: valid = !value.isEmpty
            case .number: valid = Double(value).map(\.isFinite) ?? false
            case .integer(let minimum): valid = Int(value).map { $0 >= minimum } ?? false
            case .boolean: valid = Self.parseBool(value) != nil
            }
            if !valid {
                throw RewardError.badOption(
                    reward: name, option: key, expected: "\(option.type.expected), got '\(value)'")
            }
        }
        for option in options
        where option.required && spec.options[option.name] == nil
            && spec.lists[option.name] == nil
        {
            throw RewardError.badOption(
                reward: name, option: option.name, expected: "given (\(option.help.lowercasedFirst))")
        }
        return RewardArguments(spec: spec, kind: self)
    }

    /// Help text: the name, what it does, its fields and options.
    public var help: String {
        var lines = ["\(name): \(summary)"]
        if let fields { lines.append("    dataset fields: \(fields)") }
        for option in options {
            let note =
                option.required ? "required" : option.defaultValue.map { "default \($0)" } ?? "optional"
            lines.append("    \(option.name) (\(option.type.expected), \(note)): \(option.help)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Builds rewards by their config names; every kind is declared once, in `kinds`.
public enum RewardRegistry {
    public static let kinds: [RewardKind] = [
        RewardKind(
            name: "accuracy",
            summary: "1 when the completion's final answer equals the reference answer, else 0.",
            options: [RewardOption.answerField],
            fields: "the reference answer (text, a number, or a list of them)"
        ) { arguments, _ in AccuracyReward(field: arguments.text("field")!) },
        RewardKind(
            name: "format",
            summary: "1 when the whole completion matches a regular expression, else 0.",
            options: [RewardOption("pattern", .text, default: "DeepSeek-R1's", "The regular expression.")]
        ) { arguments, _ in
            try FormatReward(pattern: arguments.spec.options["pattern"] ?? FormatReward.r1Pattern)
        },
        RewardKind(
            name: "soft_overlong_punishment",
            summary: "DAPO's penalty for completions near or past max_completion_length.",
            options: [
                RewardOption(
                    "soft_punish_cache", .integer(minimum: 1), default: "max_completion_length / 4",
                    "Tokens before the limit where the penalty starts.")
            ]
        ) { arguments, context in
            try SoftOverlongPunishment(
                maxCompletionLength: context.maxCompletionLength,
                softPunishCache: arguments.spec.options["soft_punish_cache"].flatMap { Int($0) }
                    ?? context.maxCompletionLength / 4)
        },
        RewardKind(
            name: "length",
            summary: "Kimi k1.5's length reward within each group (short right answers preferred).",
            options: [RewardOption.answerField],
            fields: "the reference answer"
        ) { arguments, _ in LengthReward(field: arguments.text("field")!) },
        RewardKind(
            name: "countdown",
            summary: "TinyZero's Countdown: 1 for an equation reaching the target with the given numbers.",
            options: [
                RewardOption(
                    "format_score", .number, default: "0.1", "The score of a well-formed but wrong answer.")
            ],
            fields: "target (a number) and nums (a list of numbers)"
        ) { arguments, _ in CountdownReward(formatScore: arguments.number("format_score")!) },
        RewardKind(
            name: "external",
            summary:
                "A program of yours, started once, reading JSON lines and answering {\"reward\": x} lines.",
            options: [
                RewardOption("command", .command, required: true, "The program and its arguments."),
                RewardOption("timeout", .number, default: "60", "Seconds a batch may take."),
                RewardOption("fallback", .number, "The score of completions the program failed on."),
                RewardOption(
                    "metric_name", .text, default: "external",
                    "The reward's name in metrics (rewards/NAME/mean)."),
            ]
        ) { arguments, context in
            let (argv, shell) = arguments.command("command")!
            return try ExternalReward(
                name: arguments.text("metric_name")!, command: argv, shell: shell,
                timeout: arguments.number("timeout")!,
                fallback: arguments.number("fallback"), warn: context.warn)
        },
        RewardKind(
            name: "reward_model",
            summary: "A Hugging Face *ForSequenceClassification model's score of prompt + completion.",
            options: [
                RewardOption(
                    "model", .path, required: true,
                    "The reward model's folder (config.json, safetensors, tokenizer.json)."),
                RewardOption(
                    "metric_name", .text, default: "the folder's name",
                    "The reward's name in metrics (rewards/NAME/mean)."),
                RewardOption(
                    "batch_tokens", .integer(minimum: 1), default: "4096",
                    "Tokens scored in one forward pass."),
            ]
        ) { arguments, _ in
            try RewardModel(
                folder: arguments.text("model")!, name: arguments.spec.options["metric_name"],
                batchTokens: arguments.integer("batch_tokens")!)
        },
        RewardKind(
            name: "judge",
            summary:
                "An LLM judge: a causal model grades each completion; a regex reads the score from its answer.",
            options: [
                RewardOption("model", .path, required: true, "The judge model's folder."),
                RewardOption(
                    "template", .text, default: "a 0-10 grading request",
                    "The request, with {prompt}, {completion} and {FIELD} filled in ({{ for a brace)."),
                RewardOption(
                    "pattern", .text, default: #"Score:\s*(-?[0-9]+(?:\.[0-9]+)?)"#,
                    "The regex whose first group (or match) is the score."),
                RewardOption("scale", .number, default: "10", "The parsed number is divided by this."),
                RewardOption("fallback", .number, default: "0", "The score of an answer without one."),
                RewardOption(
                    "max_new_tokens", .integer(minimum: 1), default: "64", "Tokens the judge may answer."),
                RewardOption(
                    "temperature", .number, default: "0", "The judge's sampling temperature (0: greedy)."),
                RewardOption("seed", .integer(minimum: 0), default: "0", "The judge's sampling seed."),
                RewardOption(
                    "metric_name", .text, default: "judge",
                    "The reward's name in metrics (rewards/NAME/mean)."),
            ],
            fields: "any {FIELD} its template names"
        ) { arguments, context in
            try JudgeReward(
                folder: arguments.text("model")!, name: arguments.text("metric_name")!,
                template: arguments.spec.options["template"] ?? JudgeReward.defaultTemplate,
                pattern: arguments.text("pattern")!, scale: arguments.number("scale")!,
                fallback: arguments.number("fallback")!, maxNewTokens: arguments.integer("max_new_tokens")!,
                temperature: Float(arguments.number("temperature")!),
                seed: UInt64(arguments.integer("seed")!),
                warn: context.warn)
        },
        RewardKind(
            name: "code",
            summary:
                "The fraction of the line's tests the completion's program passes, run in a bubblewrap sandbox.",
            options: [
                RewardOption("timeout", .number, default: "5", "Wall-clock seconds a run may take."),
                RewardOption(
                    "memory_mb", .integer(minimum: 16), default: "512", "Address space of each process, MiB."),
                RewardOption(
                    "processes", .integer(minimum: 1), default: "16", "Processes and threads a run may have."),
                RewardOption(
                    "output_kb", .integer(minimum: 1), default: "1024",
                    "Output (stdout and stderr) a run may write, KiB; more kills it."),
                RewardOption(
                    "sandbox", .text, default: "bubblewrap",
                    "bubblewrap, or none to run completions without isolation (unsafe)."),
                RewardOption(
                    "python", .text, default: "python3", "The interpreter, as found inside the sandbox."),
                RewardOption("workers", .integer(minimum: 1), default: "the cores", "Runs at once."),
                RewardOption(
                    "binary", .boolean, default: "false",
                    "1 only when every test passes, else 0 (no partial credit)."),
                RewardOption("tests_field", .text, default: "test_list", "The field of MBPP-style asserts."),
                RewardOption(
                    "setup_field", .text, default: "test_setup_code",
                    "The field of code run before the asserts."),
                RewardOption("inputs_field", .text, default: "inputs", "The field of standard input texts."),
                RewardOption("outputs_field", .text, default: "outputs", "The field of expected outputs."),
                RewardOption(
                    "metric_name", .text, default: "code", "The reward's name in metrics (rewards/NAME/mean)."
                ),
            ],
            fields:
                "test_list (asserts; test_setup_code optional), or inputs and outputs (stdin/stdout cases)"
        ) { arguments, _ in
            let timeout = arguments.number("timeout")!
            guard timeout > 0, timeout <= 3600 else {
                throw RewardError.badOption(
                    reward: "code", option: "timeout", expected: "a positive number of seconds, at most 3600")
            }
            guard let kind = SandboxKind(rawValue: arguments.text("sandbox")!) else {
                throw RewardError.badOption(
                    reward: "code", option: "sandbox",
                    expected: "bubblewrap or none, got '\(arguments.text("sandbox")!)'")
            }
            var limits = SandboxLimits()
            limits.wallSeconds = timeout
            limits.cpuSeconds = Int(timeout.rounded(.up))
            limits.memoryBytes = arguments.integer("memory_mb")! << 20
            limits.processes = arguments.integer("processes")!
            limits.outputBytes = arguments.integer("output_kb")! << 10
            let python = arguments.text("python")!
            let sandbox: Sandbox
            do {
                sandbox = try Sandbox(kind: kind, limits: limits, probe: [python, "-c", "pass"])
            } catch {
                throw RewardError.code("\(error)")
            }
            return CodeReward(
                name: arguments.text("metric_name")!, sandbox: sandbox, python: python,
                workers: arguments.spec.options["workers"].flatMap { Int($0) },
                binary: arguments.boolean("binary")!,
                testsField: arguments.text("tests_field")!, setupField: arguments.text("setup_field")!,
                inputsField: arguments.text("inputs_field")!, outputsField: arguments.text("outputs_field")!)
        },
    ]

    public static var names: [String] { kinds.map(\.name) }

    /// The kind named `name`; an unknown name is an error listing the known ones.
    public static func kind(named name: String) throws -> RewardKind {
        guard let kind = kinds.first(where: { $0.name == name }) else {
            throw RewardError.unknownReward(name, known: names)
        }
        return kind
    }

    /// The reward `spec` names, its options checked; `maxCompletionLength` feeds DAPO's overlong
    /// punishment.
    public static func make(
        _ spec: RewardSpec, maxCompletionLength: Int, warn: @escaping (String) -> Void = { _ in }
    ) throws -> any Reward {
        let kind = try kind(named: spec.name)
        return try kind.factory(
            try kind.arguments(spec), RewardContext(maxCompletionLength: maxCompletionLength, warn: warn))
    }

    /// Every kind's help, for `--help` texts.
    public static var help: String { kinds.map(\.help).joined(separator: "\n") }
}

/// The name of `known` fewest single-character edits from `name` (Levenshtein distance).
///
/// Nil unless it is close enough to be a typo: at most 2 edits, or a third of the name's length. Ties go to the first
/// in sorted order.
public func nearestName(_ name: String, among known: some Sequence<String>) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let limit = max(2, name.count / 3)
    let scored = known.map { ($0, distance(Array(name), Array($0))) }.filter { $0.1 <= limit }
    return scored.min { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }?.0
}

extension String {
    var lowercasedFirst: String { prefix(1).lowercased() + dropFirst() }
}
