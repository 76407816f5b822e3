/// Why a completion ended.
public enum FinishReason: String, Sendable, Equatable, Codable {
    /// A stop token or stop string.
    case stop
    /// `maxNewTokens` reached.
    case length
}

/// One sampled completion.
public struct Completion: Sendable, Equatable, Codable {
    public var tokens: [Int32]
    /// log softmax(logits / temperature)[token] of each sampled token (temperature 1 when greedy).
    public var logprobs: [Float]
    public var finishReason: FinishReason
    /// The decoded text (up to a stop string), when the generator has a tokenizer.
    public var text: String?
}
