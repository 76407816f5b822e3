import ArgumentParser
import Foundation
import Models
import Tokenizers

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Log-probabilities of token sequences, texts, or completions given prompts.",
        discussion: """
            Input lines: {"tokens": [ids...]} or {"text": ...} score every token after the first; \
            {"prompt": ..., "completion": ...} scores the completion's tokens only (with --chat the \
            prompt, or a "messages" list, is first rendered with the chat template and its generation \
            prompt).

            Each output line is {"logprobs": [...]}: value i = log p(token | the tokens before it) \
            under softmax(logits / temperature).
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var template: TemplateOptions
    @Option(help: "JSONL input.") var input: String
    @Option(help: "Write here instead of standard output.") var output: String?
    @Option(parsing: .unconditional, help: "Divide logits by this before the softmax.") var temperature:
        Float = 1
    @Option(parsing: .unconditional, help: "Tokens per forward pass.") var batchTokens: Int = 4096
    @Flag(help: "Render prompts (or \"messages\") with the model's chat template.") var chat = false

    func validate() throws {
        guard temperature > 0, temperature.isFinite else {
            throw ValidationError("--temperature must be positive")
        }
        guard batchTokens > 0 else { throw ValidationError("--batch-tokens must be positive") }
    }

    func run() throws {
        let transformer = try model.load()
        precision.apply(to: transformer)
        let lines = try readJSONLines(input)
        var tokenizer: Tokenizer?
        var config: TokenizerConfig?
        func textTokenizer() throws -> Tokenizer {
            if let tokenizer { return tokenizer }
            tokenizer = try Tokenizer(path: try model.folder())
            return tokenizer!
        }
        var sequences: [[Int32]] = []
        var firstScored: [Int] = []
        for (line, object) in lines {
            let fail = { (reason: String) in InputError(path: input, line: line, reason: reason) }
            var tokens: [Int32]
            var first = 1
            if let values = object["tokens"]?.listValue {
                tokens = try values.map { value in
                    guard let id = value.tokenID(below: transformer.config.vocabSize) else {
                        throw fail(
                            "token \(value.jsonText) is not an id in 0..<\(transformer.config.vocabSize)")
                    }
                    return id
                }
            } else if let text = object["text"]?.stringValue {
                tokens = try textTokenizer().encode(text)
            } else if let completion = object["completion"]?.stringValue {
                let tokenizer = try textTokenizer()
                let promptTokens: [Int32]
                if chat {
                    if config == nil {
                        config = try template.applied(
                            to: try TokenizerConfig.load(folder: try model.folder()))
                    }
                    let messages: Value
                    if let list = object["messages"], list.listValue != nil {
                        messages = list
                    } else if let prompt = object["prompt"]?.stringValue {
                        messages = .array([
                            .object(Object([("role", .string("user")), ("content", .string(prompt))]))
                        ])
                    } else {
                        throw fail("expected a \"prompt\" string or a \"messages\" list")
                    }
                    let rendered = try config!.renderChat(messages: messages, addGenerationPrompt: true)
                    // The template writes any BOS itself, so none is added again (as apply_chat_template).
                    promptTokens = tokenizer.encode(rendered, addSpecialTokens: false)
                } else {
                    guard let prompt = object["prompt"]?.stringValue else {
                        throw fail("expected a \"prompt\" string")
                    }
                    promptTokens = tokenizer.encode(prompt)
                }
                tokens = promptTokens + tokenizer.encode(completion, addSpecialTokens: false)
                first = max(1, promptTokens.count)
            } else {
                throw fail("expected \"tokens\", \"text\", or \"prompt\" and \"completion\"")
            }
            guard !tokens.isEmpty else { throw fail("nothing to score: no tokens") }
            if tokens.count > transformer.config.maxPositionEmbeddings {
                throw fail(
                    "\(tokens.count) tokens exceed max_position_embeddings \(transformer.config.maxPositionEmbeddings)"
                )
            }
            if let bad = tokens.first(where: { Int($0) >= transformer.config.vocabSize }) {
                throw fail(
                    "the tokenizer gave id \(bad), outside the model's vocabulary of \(transformer.config.vocabSize)"
                )
            }
            sequences.append(tokens)
            firstScored.append(first)
        }
        let scores = try scoreSequences(
            sequences, firstScored: firstScored, model: transformer, temperature: temperature,
            tokenBudget: batchTokens)
        try writeLines(
            scores.map { "{\"logprobs\": [\($0.map(jsonNumber).joined(separator: ", "))]}" }, to: output)
    }
}
