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

    /// The folder the config was read from, named in errors.
    public var folder = ""

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
            "messages": messages, "tools": tools, "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": bosToken.map(Value.string) ?? .undefined,
            "eos_token": eosToken.map(Value.string) ?? .undefined,
            "pad_token": padToken.map(Value.string) ?? .undefined,
            "unk_token": unkToken.map(Value.string) ?? .undefined,
        ]
        for (key, value) in extra { variables[key] = value }
        return try ChatTemplate(source).render(variables)
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
            } else if !template.isNull {
                for entry in try template.array() {
                    config.chatTemplates[try entry["name"].string()] = try entry["template"].string()
                }
            }
        }
        if let data = FileManager.default.contents(atPath: folder + "/chat_template.jinja") {
            guard let text = String(validating: Array(data), as: UTF8.self) else {
                throw TokenizerError.badField(
                    path: folder + "/chat_template.jinja", at: "(file)", expected: "UTF-8 text")
            }
            config.chatTemplates["default"] = text
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
