import ArgumentParser
import Foundation
import Models
import Tokenizers

struct ChatTemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-template",
        abstract:
            "Render a conversation with the model's chat template, as transformers' apply_chat_template.")

    @Option(help: "A model folder with tokenizer_config.json (or chat_template.jinja).") var model: String
    @Option(help: "A JSON file: a list of messages, or {\"messages\": [...], \"tools\": [...]}.")
    var messages: String
    @Flag(help: "End with the prompt for the assistant's reply.") var addGenerationPrompt = false
    @Option(help: "A named template from the config (for example tool_use).") var template: String?
    @OptionGroup var variables: TemplateOptions

    func run() throws {
        let config = try variables.applied(to: try TokenizerConfig.load(folder: try HubCache.resolve(model)))
        guard let data = FileManager.default.contents(atPath: messages) else {
            throw InputError(path: messages, line: nil, reason: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InputError(path: messages, line: nil, reason: "not UTF-8 text")
        }
        let json: Value
        do {
            json = try parseOrderedJSON(text)
        } catch let error as JSONSyntaxError {
            throw InputError(
                path: messages, line: error.line, reason: "column \(error.column): \(error.message)")
        }
        var conversation = json
        var tools = Value.none
        if case .object(let object) = json {
            conversation = object["messages"] ?? .undefined
            tools = object["tools"] ?? .none
        }
        guard case .array = conversation else {
            throw InputError(
                path: messages, line: nil, reason: "expected a list of messages or {\"messages\": [...]}")
        }
        // Errors name the template's file, line and column.
        print(
            try config.renderChat(
                messages: conversation, tools: tools, addGenerationPrompt: addGenerationPrompt,
                templateName: template),
            terminator: "")
    }
}
