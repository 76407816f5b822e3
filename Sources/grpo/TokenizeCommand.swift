import ArgumentParser
import Foundation
import Models
import Tokenizers

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Text to token ids with a model's tokenizer.json, or ids back to text.",
        discussion: """
            Lines {"text": ...} give {"ids": [...]}, exactly as AutoTokenizer(text)["input_ids"] (or with \
            add_special_tokens=False under --no-special-tokens). With --decode, lines {"ids": [...]} give \
            {"text": ...}.
            """)

    @Option(help: "A model folder holding tokenizer.json, or the tokenizer.json file.") var model: String
    @Option(help: "JSONL input.") var input: String
    @Option(help: "Write here instead of standard output.") var output: String?
    @Flag(help: "Do not add the post-processor's special tokens (BOS and the like).") var noSpecialTokens =
        false
    @Flag(help: "Decode {\"ids\": [...]} lines instead of encoding text.") var decode = false
    @Flag(help: "With --decode: leave special tokens out of the text.") var skipSpecialTokens = false

    func run() throws {
        let tokenizer = try Tokenizer(path: try HubCache.resolve(model))
        var lines: [String] = []
        for (line, object) in try readJSONLines(input) {
            if decode {
                guard let values = object["ids"]?.listValue else {
                    throw InputError(path: input, line: line, reason: "expected an \"ids\" array of integers")
                }
                let ids = try values.map { value -> Int32 in
                    guard let id = value.tokenID(below: Int(Int32.max)), tokenizer.token(for: id) != nil
                    else {
                        throw InputError(
                            path: input, line: line,
                            reason: "\(value.jsonText) is not a token id of this tokenizer")
                    }
                    return id
                }
                lines.append(
                    "{\"text\": \(jsonString(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)))}")
            } else {
                guard let text = object["text"]?.stringValue else {
                    throw InputError(path: input, line: line, reason: "expected a \"text\" string")
                }
                let ids = tokenizer.encode(text, addSpecialTokens: !noSpecialTokens)
                lines.append("{\"ids\": [\(ids.map(String.init).joined(separator: ", "))]}")
            }
        }
        try writeLines(lines, to: output)
    }
}
