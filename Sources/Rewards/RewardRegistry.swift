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

/// Builds rewards by their config names.
public enum RewardRegistry {
    public static let names = [
        "accuracy", "format", "soft_overlong_punishment", "length", "countdown", "external",
    ]

    /// The reward `spec` names; `maxCompletionLength` feeds DAPO's overlong punishment.
    public static func make(
        _ spec: RewardSpec, maxCompletionLength: Int, warn: @escaping (String) -> Void = { _ in }
    ) throws -> any Reward {
        let known: [String: [String]] = [
            "accuracy": ["field"], "format": ["pattern"], "soft_overlong_punishment": ["soft_punish_cache"],
            "length": ["field"], "countdown": ["format_score"],
            "external": ["command", "timeout", "fallback", "name"],
        ]
        guard let allowed = known[spec.name] else {
            throw RewardError.unknownReward(spec.name, known: names)
        }
        let given = Set(spec.options.keys).union(spec.lists.keys)
        if let unknown = given.sorted().first(where: { !allowed.contains($0) }) {
            throw RewardError.badOption(
                reward: spec.name, option: unknown, expected: "one of: \(allowed.joined(separator: ", "))")
        }
        let listed = spec.name == "external" ? ["command"] : []
        if let key = spec.lists.keys.sorted().first(where: { !listed.contains($0) }) {
            throw RewardError.badOption(
                reward: spec.name, option: key, expected: "a single value, not a list")
        }
        func number(_ key: String, _ fallback: Double?) throws -> Double? {
            guard let text = spec.options[key] else { return fallback }
            guard let value = Double(text), value.isFinite else {
                throw RewardError.badOption(
                    reward: spec.name, option: key, expected: "a number, got '\(text)'")
            }
            return value
        }
        switch spec.name {
        case "accuracy": return AccuracyReward(field: spec.options["field"] ?? "answer")
        case "format": return try FormatReward(pattern: spec.options["pattern"] ?? FormatReward.r1Pattern)
        case "soft_overlong_punishment":
            let cache = try number("soft_punish_cache", Double(maxCompletionLength / 4))!
            return try SoftOverlongPunishment(
                maxCompletionLength: maxCompletionLength, softPunishCache: Int(cache))
        case "length": return LengthReward(field: spec.options["field"] ?? "answer")
        case "countdown": return CountdownReward(formatScore: try number("format_score", 0.1)!)
        default:
            // A list is an argv, run without a shell; one string is a shell command.
            let argv = spec.lists["command"]
            guard let command = argv ?? spec.options["command"].map({ [$0] }) else {
                throw RewardError.badOption(
                    reward: "external", option: "command", expected: "a program to run")
            }
            return try ExternalReward(
                name: spec.options["name"] ?? "external", command: command, shell: argv == nil,
                timeout: try number("timeout", 60)!, fallback: try number("fallback", nil), warn: warn)
        }
    }
}
