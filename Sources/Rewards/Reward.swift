import Tokenizers

/// One completion as a reward function sees it.
public struct RewardInput: Sendable {
    /// The prompt as text (after the chat template, when the dataset used one).
    public var prompt: String
    /// The generated text (special tokens skipped).
    public var completion: String
    /// The completion's length in tokens.
    public var completionLength: Int
    /// Which prompt group the completion belongs to (completions of one prompt share it).
    public var group: Int
    /// The dataset line's other fields (`answer`, `target`, `nums`, ...).
    public var fields: [String: Value]
    /// The prompt's chat messages, before the chat template, when the dataset is conversational;
    /// a reward model renders them with its own template.
    public var messages: Value?

    public init(
        prompt: String, completion: String, completionLength: Int = 0, group: Int = 0,
        fields: [String: Value] = [:], messages: Value? = nil
    ) {
        self.messages = messages
        self.prompt = prompt
        self.completion = completion
        self.completionLength = completionLength
        self.group = group
        self.fields = fields
    }
}

/// A function from completions to scores: the seam every reward plugs into.
///
/// Scores are nil where the reward does not apply to a completion (TRL's `None`); such entries
/// count as 0 in the weighted sum and are left out of the reward's own mean and std.
///
///     let reward = AccuracyReward()
///     let scores = try reward.score([RewardInput(prompt: "2+2?", completion: "\\boxed{4}",
///                                                fields: ["answer": .string("4")])])  // [1.0]
public protocol Reward: AnyObject {
    /// The name used in configs and in the `rewards/NAME/mean` metric.
    var name: String { get }
    /// Dataset fields every line must have for this reward.
    var requiredFields: [String] { get }
    /// One score (or nil) per input, in order.
    func score(_ batch: [RewardInput]) throws -> [Double?]
    /// What one of `requiredFields` must hold when `value` is not that ("a number"); nil when it is.
    /// Datasets are checked with it before training, so a wrong line is named with its number.
    func fieldProblem(_ field: String, _ value: Value) -> String?
    /// What a line's fields as a whole lack for this reward, when no one field is required (the code
    /// reward needs asserts or input/output cases); nil when they serve.
    func lineProblem(_ fields: [String: Value]) -> String?
    /// True when scoring mostly waits on other processes (sandboxed programs, a user's program) and
    /// may run on a thread of its own while the trainer computes: the trainer then scores with it
    /// during the old-policy and reference log-prob passes. Rewards that run models say false.
    var runsAlongside: Bool { get }
}

extension Reward {
    public func fieldProblem(_ field: String, _ value: Value) -> String? { nil }
    public func lineProblem(_ fields: [String: Value]) -> String? { nil }
    public var runsAlongside: Bool { false }
}

/// A dataset field a reward needs: the reward's name, and its check of the field's value.
public struct FieldRequirement {
    public let reward: String
    /// What the field must hold, when the value is not that.
    public let problem: (Value) -> String?
}

/// What dataset lines must hold for a set of rewards: fields, each with a reward that needs it and
/// that reward's check, and checks of whole lines.
public struct FieldRequirements {
    public var fields: [String: FieldRequirement] = [:]
    /// Rewards' checks of a line's fields as a whole: the reward's name and its check.
    public var lineChecks: [(reward: String, problem: ([String: Value]) -> String?)] = []

    public init() {}
}

/// The dataset fields `rewards` need, each with a reward that needs it and that reward's check.
public func requiredFields(of rewards: [any Reward]) -> FieldRequirements {
    var requirements = FieldRequirements()
    for reward in rewards {
        for field in reward.requiredFields {
            requirements.fields[field] = FieldRequirement(reward: reward.name) {
                reward.fieldProblem(field, $0)
            }
        }
        requirements.lineChecks.append((reward.name, { reward.lineProblem($0) }))
    }
    return requirements
}

/// What can go wrong while scoring.
public enum RewardError: Error, CustomStringConvertible, Equatable {
    case unknownReward(String, known: [String])
    case missingField(reward: String, field: String, line: Int?)
    case badOption(reward: String, option: String, expected: String)
    case external(String)
    case model(String)
    case judge(String)
    case code(String)

    public var description: String {
        switch self {
        case .unknownReward(let name, let known):
            "unknown reward '\(name)'"
                + (nearestName(name, among: known).map { " (did you mean '\($0)'?)" } ?? "")
                + "; known rewards: \(known.joined(separator: ", "))"
        case .missingField(let reward, let field, let line):
            "reward '\(reward)' needs the dataset field '\(field)'"
                + (line.map { ", missing on line \($0)" } ?? "")
        case .badOption(let reward, let option, let expected):
            "reward '\(reward)': option '\(option)' must be \(expected)"
        case .external(let message): "external reward: \(message)"
        case .model(let message): "reward model: \(message)"
        case .judge(let message): "judge: \(message)"
        case .code(let message): "code reward: \(message)"
        }
    }
}

extension Value {
    /// The field as text: strings as they are, numbers as Python prints them.
    var fieldText: String? {
        switch self {
        case .string(let s): s
        case .int, .double: text
        default: nil
        }
    }
}
