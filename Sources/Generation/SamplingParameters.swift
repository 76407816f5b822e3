/// How completions are sampled; the names are TRL's / transformers' generation options.
public struct SamplingParameters: Sendable {
    /// 0 means greedy (argmax) decoding.
    public var temperature: Float = 1
    /// 0 keeps every token.
    public var topK = 0
    public var topP: Float = 1
    public var minP: Float = 0
    /// Hugging Face's repetition penalty; 1 means none.
    ///
    /// Logits of tokens already in the sequence are divided by it when positive and multiplied by
    /// it when negative.
    public var repetitionPenalty: Float = 1
    public var maxNewTokens = 128
    /// Token ids that end a completion (the model's EOS ids by default).
    public var stopTokenIDs: [Int32] = []
    /// Texts that end a completion; the text returned stops before them.
    public var stopStrings: [String] = []
    public var numGenerations = 1
    public var seed: UInt64 = 0
    /// The index of the first prompt in the whole batch: completion k of prompt i samples from the
    /// stream of (seed, firstPromptIndex + i, k), so a batch split across processes samples what the
    /// whole batch would.
    public var firstPromptIndex = 0

    public init() {}

    /// Checks every value before any work starts.
    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else {
            throw GenerationError.invalidParameter(
                "temperature must be 0 (greedy) or positive, got \(temperature)")
        }
        guard topK >= 0 else {
            throw GenerationError.invalidParameter("top_k must be 0 (off) or positive, got \(topK)")
        }
        guard topP > 0, topP <= 1 else {
            throw GenerationError.invalidParameter("top_p must be in (0, 1], got \(topP)")
        }
        guard minP >= 0, minP <= 1 else {
            throw GenerationError.invalidParameter("min_p must be in [0, 1], got \(minP)")
        }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw GenerationError.invalidParameter(
                "repetition_penalty must be positive, got \(repetitionPenalty)")
        }
        guard maxNewTokens > 0 else {
            throw GenerationError.invalidParameter("max_new_tokens must be positive, got \(maxNewTokens)")
        }
        guard numGenerations > 0 else {
            throw GenerationError.invalidParameter("num_generations must be positive, got \(numGenerations)")
        }
        if stopStrings.contains("") {
            throw GenerationError.invalidParameter("stop strings must not be empty")
        }
    }
}

/// Errors in a generation request, found before any work starts.
public enum GenerationError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(String)
    case emptyPrompt(index: Int)
    case promptTooLong(index: Int, tokens: Int, maxNewTokens: Int, context: Int)
    case tokenOutOfRange(index: Int, id: Int32, vocabSize: Int)
    case cacheBudgetTooSmall(needed: Int, budget: Int)
    case nonFiniteLogits(model: String)

    /// The 0-based index of the prompt at fault, for errors about one prompt.
    public var promptIndex: Int? {
        switch self {
        case .emptyPrompt(let index), .promptTooLong(let index, _, _, _), .tokenOutOfRange(let index, _, _):
            index
        default: nil
        }
    }

    /// What is wrong with the prompt at `promptIndex` ("is empty", "has token id 7, ..."), so a caller
    /// can name the file and line the prompt came from instead.
    public var promptProblem: String? {
        switch self {
        case .emptyPrompt: "is empty"
        case .promptTooLong(_, let tokens, let maxNewTokens, let context):
            "has \(tokens) tokens; with max_new_tokens \(maxNewTokens) that exceeds the model's context of \(context)"
        case .tokenOutOfRange(_, let id, let vocabSize):
            "has token id \(id), outside the vocabulary 0..<\(vocabSize)"
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .invalidParameter(let message): message
        case .emptyPrompt(let index), .promptTooLong(let index, _, _, _), .tokenOutOfRange(let index, _, _):
            "prompt \(index) \(promptProblem!)"
        case .cacheBudgetTooSmall(let needed, let budget):
            "one prompt's group needs \(needed) bytes of KV cache, more than the budget of \(budget)"
        case .nonFiniteLogits(let model):
            "\(model): the model computed NaN or infinite logits (its weights are broken or overflow float32)"
        }
    }
}
