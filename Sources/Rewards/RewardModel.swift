import Foundation
import Models
import SafeTensors
import Tensors
import Tokenizers

/// A reward model: a Hugging Face `LlamaForSequenceClassification`, `Qwen2ForSequenceClassification`,
/// `Qwen3ForSequenceClassification` or `MistralForSequenceClassification` folder with one label,
/// scored as TRL's `GRPOTrainer` scores one.
///
/// The text is the prompt followed by the completion; for a chat dataset, the reward model's own chat
/// template over the prompt's messages with the completion as the assistant's turn (no generation
/// prompt). It is tokenized without added special tokens, and the score is the head's output at the
/// last token that is not padding, as transformers pools: the padding token is the tokenizer's
/// `pad_token`, else its `eos_token` (TRL sets the model's `pad_token_id` to it), else config.json's
/// `pad_token_id`; with none, the last token. A text made only of padding is read at its first
/// token, as transformers' argmax does.
///
/// Sequences are packed into forward passes of about `batchTokens` tokens, one layer's activations
/// held at a time.
///
///     rewards:
///       - {name: reward_model, model: ./my-reward-model}
public final class RewardModel: Reward {
    public let name: String
    public let requiredFields: [String] = []
    public let folder: String
    public let model: Transformer
    public let tokenizer: Tokenizer
    public let tokenizerConfig: TokenizerConfig
    /// Where pooling stops: the last token that is not this one.
    public let padTokenID: Int32?
    public let batchTokens: Int

    public init(folder: String, name: String? = nil, batchTokens: Int = 4096) throws {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw RewardError.model(
                "\(folder): no such folder (option 'model' names a reward model's folder)")
        }
        for file in ["config.json", "tokenizer.json"] where !manager.fileExists(atPath: folder + "/" + file) {
            throw RewardError.model(
                "\(folder): no \(file); a reward model folder holds config.json, its weights and tokenizer.json"
            )
        }
        let weights = try SafeTensorsCollection(folder: folder)
        guard let head = weights.info("score.weight") else {
            throw RewardError.model(
                "\(folder): no tensor 'score.weight'; a reward model is a *ForSequenceClassification folder "
                    + "(a causal LM's lm_head does not score)")
        }
        guard head.shape.count == 2, head.shape[0] == 1 else {
            throw RewardError.model(
                "\(folder): tensor 'score.weight' has shape \(head.shape); a reward model has one label "
                    + "(num_labels 1), shape [1, hidden_size]")
        }
        model = try ModelLoader.load(folder: folder, head: .score(labels: 1))
        tokenizer = try Tokenizer(path: folder)
        tokenizerConfig = try TokenizerConfig.load(folder: folder)
        let padToken = tokenizerConfig.padToken ?? tokenizerConfig.eosToken
        padTokenID = padToken.flatMap(tokenizer.tokenID) ?? model.config.padTokenID.map(Int32.init)
        self.folder = folder
        self.name = name ?? URL(fileURLWithPath: folder).standardizedFileURL.lastPathComponent
        self.batchTokens = batchTokens
    }

    /// The text the model scores for `input`.
    public func text(_ input: RewardInput) throws -> String {
        guard let messages = input.messages else { return input.prompt + input.completion }
        guard case .array(var list) = messages else {
            throw RewardError.model("the prompt's messages are not a list")
        }
        list.append(
            .object(Object([("role", .string("assistant")), ("content", .string(input.completion))])))
        do {
            return try tokenizerConfig.renderChat(messages: .array(list), addGenerationPrompt: false)
        } catch {
            throw RewardError.model("\(folder): the chat template over a conversational prompt: \(error)")
        }
    }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        scores(try batch.map { tokenizer.encode(try text($0), addSpecialTokens: false) })
    }

    /// The score of each token sequence (nil for an empty one).
    public func scores(_ sequences: [[Int32]]) -> [Double?] {
        var result = [Double?](repeating: nil, count: sequences.count)
        for range in tokenBudgetChunks(sequences.map(\.count), budget: batchTokens) {
            let chunk = range.filter { !sequences[$0].isEmpty }
            guard !chunk.isEmpty else { continue }
            let batch = TokenBatch(
                sequences: chunk.map { sequences[$0] }, readingRows: chunk.map { poolingRow(sequences[$0]) })
            let out = model.scores(batch)
            for (row, index) in chunk.enumerated() { result[index] = Double(out[row]) }
        }
        return result
    }

    /// The row transformers reads: the last token that is not padding, or 0 when all are.
    public func poolingRow(_ sequence: [Int32]) -> Int {
        guard let padTokenID else { return sequence.count - 1 }
        return sequence.lastIndex { $0 != padTokenID } ?? 0
    }
}
