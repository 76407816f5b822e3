import Foundation

/// The parts of `tokenizer_config.json` (and `generation_config.json`) that shape prompts.
public struct TokenizerConfig: Sendable {
    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unkToken: String?
    public var addBOSToken: Bool?
    public var addEOSToken: Bool?
    /// Chat templates by name; the unnamed one (a plain string, or chat_template.jinja) is "default".
    public var chatTemplates: [String: String]
    /// End-of-sequence ids for generation: generation_config.json's `eos_token_id` (int or list).
    public var generationEOSTokenIDs: [Int]

    public var chatTemplate: String? { chatTemplates["default"] }

    /// The file each template was read from, named in its errors.
    public var chatTemplateFiles: [String: String] = [:]

    /// Makes `template` the default chat template (a run's own, open-r1's `chat_template` key),
    /// named `source` in its errors.
    public mutating func useTemplate(_ template: String, source: String) {
        chatTemplates["default"] = template
        chatTemplateFiles["default"] = source
    }

    public init(chatTemplates: [String: String] = [:], generationEOSTokenIDs: [Int] = []) {
        self.chatTemplates = chatTemplates
        self.generationEOSTokenIDs = generationEOSTokenIDs
    }

    /// The folder the config was read from, named in errors.
    public var folder = ""

    /// Variables every rendering passes to the template (TRL's `chat_template_kwargs`, for example
    /// `enable_thinking`); a call's `extra` ones win.
    public var templateKwargs: [String: Value] = [:]

    /// Renders a conversation as transformers' `apply_chat_template(..., tokenize=False)` does.
    ///
    /// - Parameters:
    ///   - messages: the list of message objects (`role`, `content`, optional `tool_calls`, ...).
    ///   - tools: the list of tool schemas, or `.none`.
    ///   - templateName: a named template (for example "tool_use"); nil picks "default", or
    ///     "tool_use" when tools are given and such a template exists, as transformers does.
    ///   - extra: further template variables (for example `enable_thinking`).
    public func renderChat(
        messages: Value, tools: Value = .none, addGenerationPrompt: Bool, templateName: String? = nil,
        extra: [String: Value] = [:]
    ) throws -> String {
        let hasTools: Bool = { if case .array(let list) = tools { !list.isEmpty } else { false } }()
        let name = templateName ?? (hasTools && chatTemplates["tool_use"] != nil ? "tool_use" : "default")
        guard let source = chatTemplates[name] else {
            throw TokenizerError.badField(
                path: folder + "/tokenizer_config.json", at: "chat_template",
                expected: name == "default"
                    ? "a chat template (none found, nor chat_template.jinja)" : "a template named '\(name)'")
        }
        var variables: [String: Value] = [
            "messages": Self.preparedMessages(messages), "tools": tools, "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": bosToken.map(Value.string) ?? .undefined,
            "eos_token": eosToken.map(Value.string) ?? .undefined,
            "pad_token": padToken.map(Value.string) ?? .undefined,
            "unk_token": unkToken.map(Value.string) ?? .undefined,
        ]
        for (key, value) in templateKwargs { variables[key] = value }
        for (key, value) in extra { variables[key] = value }
        do {
            return try ChatTemplate(source).render(variables)
        } catch var error as TemplateError {
            error.file = chatTemplateFiles[name] ?? (folder.isEmpty ? nil : folder + "/tokenizer_config.json")
            throw error
        }
    }

    /// The messages as transformers 5 hands them to the template: keys whose value is null are
    /// dropped, and a message's reasoning, under any of `reasoning_content`, `thinking` and
    /// `reasoning`, is also given as `reasoning_content` and (first, unless present) `thinking`.
    static func preparedMessages(_ messages: Value) -> Value {
        guard case .array(let list) = messages else { return messages }
        return .array(
            list.map { item in
                guard case .object(let message) = item else { return item }
                var kept = Object(message.pairs.filter { !$0.value.isNone }.map { ($0.key, $0.value) })
                let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap { kept[$0] }
                    .first
                guard let reasoning else { return .object(kept) }
                var aliased = Object([("thinking", reasoning)])
                for (key, value) in kept.pairs { aliased[key] = value }
                kept = aliased
                kept["reasoning_content"] = reasoning
                return .object(kept)
            })
    }

    /// Reads `folder`'s tokenizer_config.json, chat_template.jinja and generation_config.json; each
    /// is optional, and a malformed one is an error naming the file and field.
    public static func load(folder: String) throws -> TokenizerConfig {
        var config = TokenizerConfig(chatTemplates: [:], generationEOSTokenIDs: [])
        config.folder = folder
        let path = folder + "/tokenizer_config.json"
        if let root = try readJSON(path) {
            config.bosToken = try tokenContent(root["bos_token"])
            config.eosToken = try tokenContent(root["eos_token"])
            config.padToken = try tokenContent(root["pad_token"])
            config.unkToken = try tokenContent(root["unk_token"])
            config.addBOSToken =
                root["add_bos_token"].isNull ? nil : try root["add_bos_token"].bool(default: false)
            config.addEOSToken =
                root["add_eos_token"].isNull ? nil : try root["add_eos_token"].bool(default: false)
            let template = root["chat_template"]
            if let text = template.stringValue {
                config.chatTemplates["default"] = text
                config.chatTemplateFiles["default"] = path
            } else if !template.isNull {
                for entry in try template.array() {
                    let name = try entry["name"].string()
                    config.chatTemplates[name] = try entry["template"].string()
                    config.chatTemplateFiles[name] = path
                }
            }
        }
        if let data = FileManager.default.contents(atPath: folder + "/chat_template.jinja") {
            guard let text = String(validating: Array(data), as: UTF8.self) else {
                throw TokenizerError.badField(
                    path: folder + "/chat_template.jinja", at: "(file)", expected: "UTF-8 text")
            }
            config.chatTemplates["default"] = text
            config.chatTemplateFiles["default"] = folder + "/chat_template.jinja"
        }
        if let generation = try readJSON(folder + "/generation_config.json") {
            let eos = generation["eos_token_id"]
            if !eos.isNull && !eos.isArray {
                config.generationEOSTokenIDs = [try eos.int()]
            } else if !eos.isNull {
                config.generationEOSTokenIDs = try eos.array().map { try $0.int() }
            }
        }
        return config
    }

    /// Template variables from JSON text (`{"enable_thinking": false}`); `source` names the option or
    /// key in errors.
    public static func templateKwargs(json text: String, source: String) throws -> [String: Value] {
        let value: Value
        do {
            value = try parseOrderedJSON(text)
        } catch let error as JSONSyntaxError {
            throw TokenizerError.badField(
                path: source, at: "column \(error.column)", expected: "a JSON object (\(error.message))")
        }
        return try templateKwargs(value, source: source)
    }

    /// Template variables from a JSON object value.
    public static func templateKwargs(_ value: Value, source: String) throws -> [String: Value] {
        guard case .object(let object) = value else {
            throw TokenizerError.badField(
                path: source, at: "(value)",
                expected: "a JSON object of template variables, got \(value.jsonText)")
        }
        var kwargs: [String: Value] = [:]
        for (key, item) in object.pairs { kwargs[key] = item }
        return kwargs
    }

    /// A special token given as "<s>" or as {"content": "<s>", ...}.
    private static func tokenContent(_ node: JSONNode) throws -> String? {
        if node.isNull { return nil }
        if let text = node.stringValue { return text }
        return try node["content"].string()
    }

    private static func readJSON(_ path: String) throws -> JSONNode? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let node = try JSONNode(parsing: Array(data), file: path)
        _ = try node.object()
        return node
    }
}
