import ArgumentParser
import Foundation
import Models

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Log-probabilities of token sequences.",
        discussion: """
            Each input line is {"tokens": [ids...]}; each output line is {"logprobs": [...]} with n-1 values \
            for n tokens, value i = log p(token i+1 | tokens 0..i) under softmax(logits / temperature).
            """)

    @OptionGroup var model: ModelOptions
    @Option(help: "JSONL input, one {\"tokens\": [...]} per line.") var input: String
    @Option(help: "Write here instead of standard output.") var output: String?
    @Option(help: "Divide logits by this before the softmax.") var temperature: Float = 1
    @Option(help: "Tokens per forward pass.") var batchTokens: Int = 4096

    func validate() throws {
        guard temperature > 0, temperature.isFinite else {
            throw ValidationError("--temperature must be positive")
        }
        guard batchTokens > 0 else { throw ValidationError("--batch-tokens must be positive") }
    }

    func run() throws {
        let transformer = try model.load()
        var sequences: [[Int32]] = []
        for (line, object) in try readJSONLines(input) {
            guard let values = object["tokens"] as? [Any] else {
                throw InputError(path: input, line: line, reason: "expected a \"tokens\" array of integers")
            }
            var tokens: [Int32] = []
            for value in values {
                guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                    number.doubleValue == number.doubleValue.rounded(),
                    let id = Int32(exactly: number.int64Value), id >= 0,
                    Int(id) < transformer.config.vocabSize
                else {
                    throw InputError(
                        path: input, line: line,
                        reason: "token \(value) is not an id in 0..<\(transformer.config.vocabSize)")
                }
                tokens.append(id)
            }
            guard !tokens.isEmpty else {
                throw InputError(path: input, line: line, reason: "\"tokens\" is empty")
            }
            if tokens.count > transformer.config.maxPositionEmbeddings {
                throw InputError(
                    path: input, line: line,
                    reason:
                        "\(tokens.count) tokens exceed max_position_embeddings \(transformer.config.maxPositionEmbeddings)"
                )
            }
            sequences.append(tokens)
        }
        let scores = try scoreSequences(
            sequences, model: transformer, temperature: temperature, tokenBudget: batchTokens)
        try writeLines(
            scores.map { "{\"logprobs\": [\($0.map { "\($0)" }.joined(separator: ", "))]}" }, to: output)
    }
}
