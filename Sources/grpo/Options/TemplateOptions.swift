import ArgumentParser
import Tokenizers

/// Extra chat-template variables, as `apply_chat_template(..., **kwargs)` and TRL's
/// `chat_template_kwargs` take them.
struct TemplateOptions: ParsableArguments {
    @Option(
        name: [.customLong("chat-template-kwargs"), .customLong("template-kwargs")],
        help: ArgumentHelp(
            "Template variables as a JSON object, for example '{\"enable_thinking\": false}'.",
            valueName: "json"))
    var chatTemplateKwargs: String?

    /// The variables; bad JSON is an error naming the option.
    func kwargs() throws -> [String: Value] {
        guard let chatTemplateKwargs else { return [:] }
        do {
            return try TokenizerConfig.templateKwargs(
                json: chatTemplateKwargs, source: "--chat-template-kwargs")
        } catch let error as TokenizerError {
            throw ValidationError("\(error)")
        }
    }

    /// `config` with the variables set.
    func applied(to config: TokenizerConfig) throws -> TokenizerConfig {
        var config = config
        for (key, value) in try kwargs() { config.templateKwargs[key] = value }
        return config
    }
}
