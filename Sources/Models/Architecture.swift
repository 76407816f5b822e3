/// The decoder-only families this engine runs; each differs from Llama in a few switches.
public enum Architecture: String, CaseIterable, Sendable {
    case llama, qwen2, qwen3, mistral

    /// The transformers class name written in config.json's "architectures".
    public var className: String {
        switch self {
        case .llama: "LlamaForCausalLM"
        case .qwen2: "Qwen2ForCausalLM"
        case .qwen3: "Qwen3ForCausalLM"
        case .mistral: "MistralForCausalLM"
        }
    }

    /// The transformers class of this family with a score head (`*ForSequenceClassification`).
    public var classifierClassName: String {
        className.replacingOccurrences(of: "ForCausalLM", with: "ForSequenceClassification")
    }

    /// The family of a `*ForCausalLM` or `*ForSequenceClassification` class name.
    public init?(className: String) {
        guard
            let match = Architecture.allCases.first(where: {
                $0.className == className || $0.classifierClassName == className
            })
        else {
            return nil
        }
        self = match
    }

    /// Qwen2 always has biases on q, k and v (and none on o); the others follow `attention_bias`.
    var hasFixedQKVBias: Bool { self == .qwen2 }
    /// Qwen3 normalises each query and key head (q_norm, k_norm) before RoPE.
    var hasQKNorm: Bool { self == .qwen3 }
}
