import Foundation
import Tokenizers

/// One supervised example: its tokens and which of them the loss learns.
public struct SFTExample: Sendable, Equatable {
    /// 1-based line in the file.
    public var line: Int
    public var tokens: [Int32]
    /// Per token: true when the loss predicts it (completion or assistant tokens).
    public var trained: [Bool]

    public var trainedCount: Int { trained.lazy.filter { $0 }.count }
}

/// Loads supervised fine-tuning data, one JSON object a line, in TRL's dataset forms.
///
/// - `{"prompt": text, "completion": text}`: the completion and an EOS token are learned;
/// - `{"messages": [...]}`: the chat rendered with the model's template, the assistant turns learned
///   (each turn's text from the end of the generation prompt through the template's end of turn);
/// - `{"prompt": [messages], "completion": [messages]}`: the same, learning the completion's turns;
/// - `{"text": text}`: plain language modelling on all of it, EOS appended.
///
/// With `completionOnlyLoss` false every token is learned. Examples longer than `maxLength` keep
/// their first `maxLength` tokens, as TRL truncates; one with nothing left to learn is an error.
public func loadSFTDataset(
    path: String, tokenizer: Tokenizer, config: TokenizerConfig, eosTokenID: Int32?, maxLength: Int?,
    completionOnlyLoss: Bool = true, textField: String = "text"
) throws -> [SFTExample] {
    var examples: [SFTExample] = []
    for (line, object) in try readJSONLObjects(path) {
        func fail(_ reason: String) -> DatasetError { DatasetError(path: path, line: line, reason: reason) }
        let config = try lineTemplateConfig(config, object, path: path, line: line)
        var pieces: [(text: String, trained: Bool)]
        var appendEOS = false
        switch (object["prompt"], object["completion"], object["messages"], object[textField]) {
        case (.string(let prompt)?, .string(let completion)?, nil, nil):
            pieces = [(prompt, false), (completion, true)]
            appendEOS = true
        case (.array(let prompt)?, .array(let completion)?, nil, nil):
            pieces = try chatPieces(
                prompt + completion, trainedFrom: prompt.count, config: config, fail: fail)
        case (nil, nil, .array(let messages)?, nil):
            pieces = try chatPieces(messages, trainedFrom: 0, config: config, fail: fail)
        case (nil, nil, nil, .string(let text)?):
            pieces = [(text, true)]
            appendEOS = true
        case (.some, nil, nil, nil):
            throw fail("has \"prompt\" without \"completion\"")
        case (nil, .some, nil, nil):
            throw fail("has \"completion\" without \"prompt\"")
        case (nil, nil, nil, nil):
            throw fail(
                "expected \"prompt\" and \"completion\", \"messages\", or \"\(textField)\" (dataset_text_field)"
            )
        default:
            throw fail(
                "expected one form: \"prompt\" and \"completion\" (both text or both message lists), "
                    + "\"messages\" (a list), or \"text\"")
        }
        var tokens: [Int32] = []
        var trained: [Bool] = []
        for piece in pieces where !piece.text.isEmpty {
            let ids = tokenizer.encode(piece.text, addSpecialTokens: false)
            tokens += ids
            trained += Array(repeating: piece.trained || !completionOnlyLoss, count: ids.count)
        }
        if appendEOS, let eos = eosTokenID, tokens.last != eos {
            tokens.append(eos)
            trained.append(true)
        }
        if let maxLength, tokens.count > maxLength {
            tokens.removeLast(tokens.count - maxLength)
            trained.removeLast(trained.count - maxLength)
        }
        // The first token is never predicted: nothing precedes it.
        if !trained.isEmpty { trained[0] = false }
        let example = SFTExample(line: line, tokens: tokens, trained: trained)
        guard example.trainedCount > 0 else {
            guard pieces.contains(where: { $0.trained && !$0.text.isEmpty }) else {
                throw fail("nothing to learn: no assistant turn and no completion text (SFT learns those)")
            }
            throw fail(
                maxLength.map { "nothing to learn within max_length \($0) tokens (the prompt fills them)" }
                    ?? "nothing to learn")
        }
        examples.append(example)
    }
    guard !examples.isEmpty else { throw DatasetError(path: path, line: nil, reason: "has no examples") }
    return examples
}

/// Splits a rendered chat into untrained and trained (assistant) text by rendering it turn by turn:
/// each assistant turn is what the full render adds after the render with the generation prompt.
private func chatPieces(
    _ messages: [Value], trainedFrom first: Int, config: TokenizerConfig, fail: (String) -> DatasetError
) throws -> [(text: String, trained: Bool)] {
    func render(_ upTo: Int, generationPrompt: Bool) throws -> String {
        do {
            return try config.renderChat(
                messages: .array(Array(messages[..<upTo])), addGenerationPrompt: generationPrompt)
        } catch {
            throw fail("chat template: \(error)")
        }
    }
    var pieces: [(String, Bool)] = []
    var done = ""
    for (i, message) in messages.enumerated() {
        guard case .object(let fields) = message, case .string(let role)? = fields["role"] else {
            throw fail("message \(i + 1) needs a \"role\" (and \"content\")")
        }
        guard role == "assistant", i >= first else { continue }
        let prefix = try render(i, generationPrompt: true)
        let full = try render(i + 1, generationPrompt: false)
        guard prefix.hasPrefix(done), full.hasPrefix(prefix) else {
            throw fail(
                "the chat template does not render this conversation turn by turn (message \(i + 1) "
                    + "changes earlier text), so its assistant tokens cannot be told apart")
        }
        pieces.append((String(prefix.dropFirst(done.count)), false))
        pieces.append((String(full.dropFirst(prefix.count)), true))
        done = full
    }
    let whole = try render(messages.count, generationPrompt: false)
    guard whole.hasPrefix(done) else {
        throw fail("the chat template does not render this conversation turn by turn")
    }
    pieces.append((String(whole.dropFirst(done.count)), false))
    return pieces
}
