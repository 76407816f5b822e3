import ArgumentParser
import Foundation
import Generation
import Models
import Tokenizers
import Training

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Sample completions with a KV cache; a single prompt streams to the terminal.",
        discussion: """
            Input lines {"prompt": ...}, {"messages": [...]} or {"tokens": [...]} give output lines \
            {"completions": [{"text", "tokens", "logprobs", "finish_reason"}, ...]}. Log-probs are \
            log softmax(logits / temperature) of each sampled token, as TRL computes them.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var precision: PrecisionOptions
    @OptionGroup var template: TemplateOptions
    @Option(help: "One prompt (streams its completion).") var prompt: String?
    @Option(help: "JSONL prompts.") var input: String?
    @Option(help: "Write JSONL here instead of standard output.") var output: String?
    @Flag(help: "Render prompts with the chat template and its generation prompt.") var chat = false
    @Option(parsing: .unconditional, help: "Completions per prompt.") var numGenerations = 1
    @Option(parsing: .unconditional, help: "Tokens to generate at most.") var maxNewTokens = 128
    @Option(parsing: .unconditional, help: "0 for greedy decoding.") var temperature: Float = 1
    @Option(parsing: .unconditional, help: "Nucleus sampling threshold.") var topP: Float = 1
    @Option(parsing: .unconditional, help: "Keep the k most likely tokens (0: all).") var topK = 0
    @Option(
        parsing: .unconditional, help: "Keep tokens at least this fraction as likely as the most likely one.")
    var minP: Float = 0
    @Option(parsing: .unconditional, help: "Hugging Face's repetition penalty (1: none).")
    var repetitionPenalty: Float = 1
    @Option(parsing: .singleValue, help: "A text that ends a completion (repeatable).") var stop: [String] =
        []
    @Option(parsing: .unconditional, help: "Random seed.") var seed: UInt64 = 0
    @Option(name: .customLong("max-cache-mib"), parsing: .unconditional, help: "KV-cache budget in MiB.")
    var maxCacheMiB = 4096

    func validate() throws {
        guard (prompt == nil) != (input == nil) else {
            throw ValidationError("give exactly one of --prompt and --input")
        }
    }

    func run() throws {
        var parameters = SamplingParameters()
        parameters.temperature = temperature
        parameters.topP = topP
        parameters.topK = topK
        parameters.minP = minP
        parameters.repetitionPenalty = repetitionPenalty
        parameters.maxNewTokens = maxNewTokens
        parameters.numGenerations = numGenerations
        parameters.stopStrings = stop
        parameters.seed = seed
        try parameters.validate()
        let transformer = try model.load()
        precision.apply(to: transformer)
        let tokenizer = try Tokenizer(path: try model.folder())
        let config = try template.applied(to: try TokenizerConfig.load(folder: try model.folder()))
        parameters.stopTokenIDs = stopTokenIDs(model: transformer, tokenizer: tokenizer, config: config)
        let generator = Generator(model: transformer, tokenizer: tokenizer)
        guard (1...(1 << 30)).contains(maxCacheMiB) else {
            throw ValidationError("--max-cache-mib must be between 1 and \(1 << 30), got \(maxCacheMiB)")
        }
        generator.maxCacheBytes = maxCacheMiB << 20

        func encode(_ text: String) throws -> [Int32] {
            guard chat else { return tokenizer.encode(text) }
            let messages = Value.array([
                .object(Object([("role", .string("user")), ("content", .string(text))]))
            ])
            return tokenizer.encode(
                try config.renderChat(messages: messages, addGenerationPrompt: true), addSpecialTokens: false)
        }

        if let prompt {
            var streamed: [Int32] = []
            var printed = ""
            let groups = try generator.generate(prompts: [try encode(prompt)], parameters: parameters) {
                _, sample, token in
                guard sample == 0 else { return }
                streamed.append(token)
                let text = tokenizer.decode(streamed, skipSpecialTokens: true)
                // Hold back a character that is still incomplete UTF-8.
                guard !text.hasSuffix("\u{FFFD}"), text.hasPrefix(printed) else { return }
                FileHandle.standardOutput.write(Data(text.dropFirst(printed.count).utf8))
                printed = text
            }
            let first = groups[0][0]
            let rest = (first.text ?? "").dropFirst(printed.count)
            print(rest)
            for (g, completion) in groups[0].enumerated().dropFirst() {
                print(
                    "--- completion \(g + 1) (\(completion.finishReason.rawValue))\n\(completion.text ?? "")")
            }
            return
        }
        var prompts: [[Int32]] = []
        var lines: [Int] = []
        for (line, object) in try readJSONLines(input!) {
            lines.append(line)
            if let text = object["prompt"]?.stringValue {
                prompts.append(try encode(text))
            } else if let messages = object["messages"], messages.listValue != nil {
                let rendered = try config.renderChat(messages: messages, addGenerationPrompt: true)
                prompts.append(tokenizer.encode(rendered, addSpecialTokens: false))
            } else if let values = object["tokens"]?.listValue {
                prompts.append(
                    try values.map { value in
                        guard let id = value.tokenID(below: Int(Int32.max)) else {
                            throw InputError(
                                path: input!, line: line,
                                reason: "token \(value.jsonText) is not an integer id")
                        }
                        return id
                    })
            } else {
                throw InputError(
                    path: input!, line: line, reason: "expected \"prompt\", \"messages\" or \"tokens\"")
            }
        }
        let groups: [[Completion]]
        do {
            groups = try generator.generate(prompts: prompts, parameters: parameters)
        } catch let error as GenerationError {
            guard let index = error.promptIndex, let problem = error.promptProblem else { throw error }
            throw InputError(path: input!, line: lines[index], reason: "the prompt \(problem)")
        }
        try writeLines(
            groups.map { group in
                let items = group.map { c in
                    "{\"text\": \(jsonString(c.text ?? "")), \"tokens\": [\(c.tokens.map(String.init).joined(separator: ", "))], "
                        + "\"logprobs\": [\(c.logprobs.map(jsonNumber).joined(separator: ", "))], \"finish_reason\": \"\(c.finishReason.rawValue)\"}"
                }
                return "{\"completions\": [\(items.joined(separator: ", "))]}"
            }, to: output)
    }
}
