import Foundation
import Generation
import Models
import Tokenizers

/// An LLM judge: a causal language model asked to grade each completion, the score read from its
/// answer with a regular expression.
///
/// The request is `template` with `{prompt}`, `{completion}` and `{FIELD}` (any dataset field, which
/// every line must then have) filled in; `{{` and `}}` are literal braces. For a chat dataset
/// `{prompt}` is the last user message. When the judge's folder has a chat template the request is
/// its user message (with the generation prompt), else the plain text. The judge answers up to
/// `maxNewTokens` tokens, greedily by default, all completions of a batch in one batched generation.
/// The first capture group of `pattern` (or its whole match) is the number, divided by `scale`; an
/// answer without one scores `fallback` (nil: not applicable), counted in `unparsed`.
///
///     rewards:
///       - {name: judge, model: ./Qwen2.5-1.5B-Instruct, template: "...{completion}...", pattern: "Score: ([0-9]+)"}
public final class JudgeReward: Reward {
    public static let defaultTemplate = """
        You are grading a response to a question. Judge whether it answers the question correctly and \
        clearly. Reply with one line, "Score: N", where N is a whole number from 0 (wrong or useless) to \
        10 (correct and clear).

        Question:
        {prompt}

        Response:
        {completion}
        """
    public static let defaultPattern = #"Score:\s*(-?[0-9]+(?:\.[0-9]+)?)"#

    public let name: String
    public let requiredFields: [String]
    public let folder: String
    public let template: String
    public let pattern: NSRegularExpression
    public let scale: Double
    public let fallback: Double?
    public let generator: Generator
    public let tokenizer: Tokenizer
    public let tokenizerConfig: TokenizerConfig
    public var sampling: SamplingParameters
    /// Answers in which `pattern` found no number, so far.
    public private(set) var unparsed = 0
    /// The judge's last answers, in order (for `grpo reward` and debugging).
    public private(set) var lastAnswers: [String] = []
    private let warn: (String) -> Void

    public init(
        folder: String, name: String = "judge", template: String = JudgeReward.defaultTemplate,
        pattern: String = JudgeReward.defaultPattern, scale: Double = 10, fallback: Double? = 0,
        maxNewTokens: Int = 64, temperature: Float = 0, seed: UInt64 = 0,
        warn: @escaping (String) -> Void = { _ in }
    ) throws {
        guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else {
            throw RewardError.badOption(
                reward: name, option: "model", expected: "a model folder with tokenizer.json, got '\(folder)'"
            )
        }
        do {
            self.pattern = try NSRegularExpression(pattern: pattern)
        } catch {
            throw RewardError.badOption(
                reward: name, option: "pattern", expected: "a regular expression, got '\(pattern)'")
        }
        guard scale != 0 else {
            throw RewardError.badOption(reward: name, option: "scale", expected: "a number other than 0")
        }
        let fields: [String]
        do {
            fields = try templatePlaceholders(template)
        } catch let problem as TemplateProblem {
            throw RewardError.badOption(reward: name, option: "template", expected: problem.description)
        }
        guard fields.contains("completion") else {
            throw RewardError.badOption(
                reward: name, option: "template", expected: "a text with {completion} in it (what is graded)")
        }
        requiredFields = fields.filter { $0 != "prompt" && $0 != "completion" }
        let model = try ModelLoader.load(folder: folder)
        tokenizer = try Tokenizer(path: folder)
        tokenizerConfig = try TokenizerConfig.load(folder: folder)
        generator = Generator(model: model, tokenizer: tokenizer)
        var sampling = SamplingParameters()
        sampling.maxNewTokens = maxNewTokens
        sampling.temperature = temperature
        sampling.seed = seed
        sampling.stopTokenIDs = stopTokenIDs(model: model, tokenizer: tokenizer, config: tokenizerConfig)
        try sampling.validate()
        self.sampling = sampling
        self.folder = folder
        self.name = name
        self.template = template
        self.scale = scale
        self.fallback = fallback
        self.warn = warn
    }

    /// The request the judge reads for `input`.
    public func request(_ input: RewardInput) throws -> String {
        var values: [String: String] = ["completion": input.completion, "prompt": input.prompt]
        if case .array(let messages)? = input.messages,
            let last = messages.last(where: {
                if case .object(let m) = $0, case .string("user")? = m["role"] { true } else { false }
            }), case .object(let message) = last, case .string(let content)? = message["content"]
        {
            values["prompt"] = content
        }
        for field in requiredFields {
            guard let value = input.fields[field] else {
                throw RewardError.missingField(reward: name, field: field, line: nil)
            }
            values[field] = value.fieldText ?? value.jsonText
        }
        let text = try fillTemplate(template, values)
        guard tokenizerConfig.chatTemplate != nil else { return text }
        let message = Value.object(Object([("role", .string("user")), ("content", .string(text))]))
        return try tokenizerConfig.renderChat(messages: .array([message]), addGenerationPrompt: true)
    }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        let chat = tokenizerConfig.chatTemplate != nil
        let prompts = try batch.map { tokenizer.encode(try request($0), addSpecialTokens: !chat) }
        let answers: [String]
        do {
            answers = try generator.generate(prompts: prompts, parameters: sampling).map { $0[0].text ?? "" }
        } catch let error as GenerationError {
            // The request of completion i is prompt i: say which model and which completion.
            guard let index = error.promptIndex, let problem = error.promptProblem else {
                throw RewardError.judge("'\(name)' (\(folder)): \(error)")
            }
            throw RewardError.judge(
                "'\(name)' (\(folder)): the request grading completion \(index + 1) of the batch \(problem)"
                    + " (a shorter template or completion, or a judge with a longer context)")
        }
        lastAnswers = answers
        return answers.map { answer in
            if let number = parse(answer) { return number / scale }
            unparsed += 1
            if unparsed == 1 || unparsed.isMultiple(of: 100) {
                warn(
                    "judge '\(name)': no score in an answer (\(unparsed) so far): \(answer.prefix(120).debugDescription)"
                )
            }
            return fallback
        }
    }

    /// The number `pattern` finds in `answer`: its first capture group, else its whole match.
    public func parse(_ answer: String) -> Double? {
        let range = NSRange(answer.startIndex..., in: answer)
        guard let match = pattern.firstMatch(in: answer, range: range) else { return nil }
        let group = match.numberOfRanges > 1 && match.range(at: 1).location != NSNotFound ? 1 : 0
        guard let span = Range(match.range(at: group), in: answer) else { return nil }
        return Double(answer[span].trimmingCharacters(in: .whitespaces)).flatMap { $0.isFinite ? $0 : nil }
    }
}

/// A malformed judge template.
struct TemplateProblem: Error, CustomStringConvertible {
    let description: String
}

/// The `{name}` placeholders of `template`, in order of first use; `{{` and `}}` are literal braces.
func templatePlaceholders(_ template: String) throws -> [String] {
    var names: [String] = []
    try scanTemplate(template) { name in
        if !names.contains(name) { names.append(name) }
        return ""
    }
    return names
}

/// `template` with each `{name}` replaced by `values[name]`.
func fillTemplate(_ template: String, _ values: [String: String]) throws -> String {
    try scanTemplate(template) { values[$0] ?? "" }
}

private func scanTemplate(_ template: String, _ replace: (String) -> String) throws -> String {
    var out = ""
    var index = template.startIndex
    while index < template.endIndex {
        let c = template[index]
        let next = template.index(after: index)
        if (c == "{" || c == "}") && next < template.endIndex && template[next] == c {
            out.append(c)
            index = template.index(after: next)
        } else if c == "{" {
            guard let close = template[next...].firstIndex(of: "}") else {
                throw TemplateProblem(
                    description: "a text whose '{' are closed by '}' (write '{{' for a brace)")
            }
            let name = String(template[next..<close])
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw TemplateProblem(
                    description:
                        "placeholders like {prompt}, {completion} or {FIELD}, got '{\(name)}' ('{{' for a brace)"
                )
            }
            out += replace(name)
            index = template.index(after: close)
        } else if c == "}" {
            throw TemplateProblem(description: "a text without a lone '}' (write '}}' for a brace)")
        } else {
            out.append(c)
            index = next
        }
    }
    return out
}
