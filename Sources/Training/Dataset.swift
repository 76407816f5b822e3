import Foundation
import Rewards
import Tensors
import Tokenizers

/// A problem with a dataset line: `FILE:LINE: reason`.
public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let line: Int?
    public let reason: String

    public init(path: String, line: Int?, reason: String) {
        self.path = path
        self.line = line
        self.reason = reason
    }

    public var description: String { line.map { "\(path):\($0): \(reason)" } ?? "\(path): \(reason)" }
}

/// One prompt of a dataset, with the fields rewards read.
public struct Example: Sendable {
    /// 1-based line in the file.
    public var line: Int
    /// The prompt as the model sees it (chat template applied for `messages`).
    public var prompt: String
    /// The prompt's token ids.
    public var tokens: [Int32]
    /// Every other field of the line (`answer`, `target`, `nums`, ...).
    public var fields: [String: Value]
    /// The chat the prompt was rendered from (system prompt included), for a conversational line.
    public var messages: Value? = nil
}

/// Reads a JSON Lines file: one JSON object per non-blank line, each with its line number.
///
/// Each line's UTF-8 is checked on its own, so invalid bytes are reported with their line number.
public func readJSONLObjects(_ path: String) throws -> [(line: Int, object: Object)] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw DatasetError(path: path, line: nil, reason: "cannot read the file")
    }
    if let first = data.first(where: { ![0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }),
        first == UInt8(ascii: "[")
    {
        return try readJSONArrayObjects(data, path: path)
    }
    var result: [(Int, Object)] = []
    for (index, bytes) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        .enumerated()
    {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw DatasetError(path: path, line: index + 1, reason: "invalid UTF-8")
        }
        if text.allSatisfy(\.isWhitespace) { continue }
        let value: Value
        do {
            value = try parseOrderedJSON(text)
        } catch let error as JSONSyntaxError {
            throw DatasetError(
                path: path, line: index + 1, reason: "column \(error.column): \(error.message)")
        }
        guard case .object(let object) = value else {
            throw DatasetError(path: path, line: index + 1, reason: "expected a JSON object")
        }
        result.append((index + 1, object))
    }
    return result
}

/// A JSON file holding one array of objects (what `datasets` writes with `to_json(lines=False)`),
/// each object with the line it starts on.
private func readJSONArrayObjects(_ data: Data, path: String) throws -> [(line: Int, object: Object)] {
    guard let text = String(data: data, encoding: .utf8) else {
        throw DatasetError(path: path, line: nil, reason: "invalid UTF-8")
    }
    let value: Value
    do {
        value = try parseOrderedJSON(text)
    } catch let error as JSONSyntaxError {
        throw DatasetError(path: path, line: nil, reason: "column \(error.column): \(error.message)")
    }
    guard case .array(let items) = value else {
        throw DatasetError(path: path, line: nil, reason: "expected a JSON array of objects")
    }
    // The line each top-level element starts on: a scan that skips strings.
    var starts: [Int] = []
    var (line, depth, inString, escaped, expecting) = (1, 0, false, false, false)
    for byte in data {
        if byte == 0x0A { line += 1 }
        if inString {
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                inString = false
            }
            continue
        }
        if [0x20, 0x09, 0x0A, 0x0D].contains(byte) { continue }
        if expecting && byte != UInt8(ascii: "]") {
            starts.append(line)
            expecting = false
        }
        switch byte {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            depth += 1
            if depth == 1 { expecting = true }
        case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
        case UInt8(ascii: ","): if depth == 1 { expecting = true }
        default: break
        }
    }
    return try items.enumerated().map { index, item in
        let line = index < starts.count ? starts[index] : index + 1
        guard case .object(let object) = item else {
            throw DatasetError(path: path, line: line, reason: "expected a JSON object (item \(index + 1))")
        }
        return (line, object)
    }
}

/// `config` with a line's own `chat_template_kwargs` (a column TRL reads) over the run's.
func lineTemplateConfig(_ config: TokenizerConfig, _ object: Object, path: String, line: Int) throws
    -> TokenizerConfig
{
    guard let value = object["chat_template_kwargs"] else { return config }
    guard case .object(let kwargs) = value else {
        throw DatasetError(
            path: path, line: line,
            reason: "\"chat_template_kwargs\" must be an object of template variables, got \(value.jsonText)")
    }
    var lineConfig = config
    for (key, item) in kwargs.pairs { lineConfig.templateKwargs[key] = item }
    return lineConfig
}

/// How dataset lines become prompts: the `prompt` field (or `messages`) as it is, or open-r1's
/// way, `dataset_prompt_column`'s text made a user message after `system_prompt`, rendered with the
/// chat template.
public struct PromptFormat: Sendable {
    public var column = "prompt"
    public var systemPrompt: String?
    /// Whether text prompts become chats (a column or system prompt was given).
    public var asChat = false

    public init() {}

    init(_ v: ConfigValues) throws {
        let column = try v.optionalString("dataset_prompt_column")
        systemPrompt = try v.optionalString("system_prompt")
        self.column = column ?? "prompt"
        asChat = column != nil || systemPrompt != nil
        if self.column.isEmpty { throw v.error("dataset_prompt_column", "must not be empty") }
    }

    /// The chat `value` (a text or a message list) makes, after the system prompt.
    func messages(_ value: Value) -> Value? {
        var list: [Value]
        switch value {
        case .string(let text):
            list = [.object(Object([("role", .string("user")), ("content", .string(text))]))]
        case .array(let items): list = items
        default: return nil
        }
        let startsWithSystem: Bool
        if case .object(let first)? = list.first, case .string("system")? = first["role"] {
            startsWithSystem = true
        } else {
            startsWithSystem = false
        }
        if let systemPrompt, !startsWithSystem {
            list.insert(
                .object(Object([("role", .string("system")), ("content", .string(systemPrompt))])), at: 0)
        }
        return .array(list)
    }
}

/// Loads prompts: each line has `prompt` (text, used as it is) or `messages` (a chat, rendered with
/// the model's chat template and its generation prompt), plus any other fields.
///
/// Prompts are tokenized without added special tokens, as TRL does (a chat template writes its own).
/// A prompt longer than `maxPromptLength` keeps its last tokens (TRL truncates on the left).
public func loadPromptDataset(
    path: String, tokenizer: Tokenizer, config: TokenizerConfig, maxPromptLength: Int?,
    requiredFields: FieldRequirements = FieldRequirements(), format: PromptFormat = PromptFormat()
) throws -> [Example] {
    try promptExamples(
        try readJSONLObjects(path), path: path, tokenizer: tokenizer, config: config,
        maxPromptLength: maxPromptLength, requiredFields: requiredFields, format: format)
}

/// `loadPromptDataset` over lines already read from `path` (named in errors).
public func promptExamples(
    _ lines: [(line: Int, object: Object)], path: String, tokenizer: Tokenizer, config: TokenizerConfig,
    maxPromptLength: Int?, requiredFields: FieldRequirements = FieldRequirements(),
    format: PromptFormat = PromptFormat()
) throws -> [Example] {
    var examples: [Example] = []
    for (line, object) in lines {
        var prompt: String
        var chat: Value?
        let config = try lineTemplateConfig(config, object, path: path, line: line)
        if format.asChat {
            guard let value = object[format.column] else {
                throw DatasetError(
                    path: path, line: line,
                    reason: "expected the prompt column \"\(format.column)\" (dataset_prompt_column)")
            }
            guard let messages = format.messages(value) else {
                throw DatasetError(
                    path: path, line: line,
                    reason: "\"\(format.column)\" must be text or a list of messages, got \(value.jsonText)")
            }
            chat = messages
            do {
                prompt = try config.renderChat(messages: messages, addGenerationPrompt: true)
            } catch {
                throw DatasetError(path: path, line: line, reason: "chat template: \(error)")
            }
        } else {
            switch (object["prompt"], object["messages"]) {
            case (.string(let text)?, nil):
                prompt = text
            case (nil, .some(let messages)):
                guard case .array = messages else {
                    throw DatasetError(
                        path: path, line: line, reason: "\"messages\" must be a list of messages")
                }
                chat = messages
                do {
                    prompt = try config.renderChat(messages: messages, addGenerationPrompt: true)
                } catch {
                    throw DatasetError(path: path, line: line, reason: "chat template: \(error)")
                }
            case (.some, .some):
                throw DatasetError(
                    path: path, line: line, reason: "has both \"prompt\" and \"messages\"; keep one")
            case (.some, nil):
                throw DatasetError(path: path, line: line, reason: "\"prompt\" must be text")
            case (nil, nil):
                throw DatasetError(
                    path: path, line: line, reason: "expected a \"prompt\" or \"messages\" field")
            }
        }
        var fields: [String: Value] = [:]
        for key in object.keys
        where !["prompt", "messages", "chat_template_kwargs", format.column].contains(key) {
            fields[key] = object[key]
        }
        if let problem = fieldProblem(fields, requiredFields) {
            throw DatasetError(path: path, line: line, reason: problem)
        }
        if prompt.unicodeScalars.contains("\0") {
            throw DatasetError(path: path, line: line, reason: "the prompt holds a NUL character (\\u0000)")
        }
        var tokens = tokenizer.encode(prompt, addSpecialTokens: false)
        guard !tokens.isEmpty else {
            throw DatasetError(path: path, line: line, reason: "the prompt is empty")
        }
        if let limit = maxPromptLength, tokens.count > limit { tokens = Array(tokens.suffix(limit)) }
        examples.append(Example(line: line, prompt: prompt, tokens: tokens, fields: fields, messages: chat))
    }
    guard !examples.isEmpty else { throw DatasetError(path: path, line: nil, reason: "has no examples") }
    return examples
}

/// The order prompts are drawn in: the dataset shuffled afresh each epoch under the seed.
///
/// Position k of the stream is a function of (seed, k) alone, so a resumed run draws exactly the
/// prompts the uninterrupted run would have.
public struct PromptStream: Sendable {
    public let count: Int
    public let seed: UInt64
    public let shuffle: Bool
    private var epochOrder: (epoch: Int, order: [Int]) = (-1, [])

    public init(count: Int, seed: UInt64, shuffle: Bool) {
        self.count = count
        self.seed = seed
        self.shuffle = shuffle
    }

    /// The dataset index at stream position `k` (epoch k / count).
    public mutating func index(at k: Int) -> Int {
        let epoch = k / count
        guard shuffle else { return k % count }
        if epochOrder.epoch != epoch {
            var rng = SplitMix64(
                seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch) &+ 0xD1B5_4A32_D192_ED03)
            var order = Array(0..<count)
            for i in stride(from: count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            epochOrder = (epoch, order)
        }
        return epochOrder.order[k % count]
    }
}

/// What is wrong with a line's `fields` for the rewards that need `requirements`, or nil: a missing or
/// null field, or one of the wrong kind, named with the reward that needs it.
public func fieldProblem(_ fields: [String: Value], _ requirements: FieldRequirements) -> String? {
    for (field, requirement) in requirements.fields.sorted(by: { $0.key < $1.key }) {
        let reward = requirement.reward
        switch fields[field] {
        case nil:
            return "reward '\(reward)' needs the field \"\(field)\""
        case .some(Value.none):
            return "reward '\(reward)' needs the field \"\(field)\", got null"
        case .some(let value):
            if let expected = requirement.problem(value) {
                return "reward '\(reward)': field \"\(field)\" must be \(expected), got \(value.jsonText)"
            }
        }
    }
    for check in requirements.lineChecks {
        if let problem = check.problem(fields) { return "reward '\(check.reward)': \(problem)" }
    }
    return nil
}
