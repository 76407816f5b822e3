import Foundation
import Tensors

/// A resolved, validated model configuration: every default lives in `init(_:path:)`.
public struct ModelConfig: Equatable, Sendable {
    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RoPEScaling
    public var tieWordEmbeddings: Bool
    /// Bias on q_proj, k_proj, v_proj.
    public var qkvBias: Bool
    /// Bias on o_proj (Llama's attention_bias covers all four projections).
    public var outputBias: Bool
    public var maxPositionEmbeddings: Int
    /// Mistral's window; sequences longer than it are refused, as this engine attends to all positions.
    public var slidingWindow: Int?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// config.json's `pad_token_id`: where a sequence classifier stops reading (its last non-pad token).
    public var padTokenID: Int?
    /// The standard deviation transformers draws new matrices with (a new score head's).
    public var initializerRange = 0.02

    public var qkNorm: Bool { architecture.hasQKNorm }
    public var heads: AttentionHeads {
        AttentionHeads(queryHeads: numAttentionHeads, keyValueHeads: numKeyValueHeads, headDim: headDim)
    }

    public init(
        architecture: Architecture, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
        numHiddenLayers: Int,
        numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil, rmsNormEps: Float = 1e-6,
        ropeTheta: Double = 10_000, ropeScaling: RoPEScaling = .none, tieWordEmbeddings: Bool = false,
        maxPositionEmbeddings: Int = 2048
    ) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? hiddenSize / numAttentionHeads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tieWordEmbeddings = tieWordEmbeddings
        qkvBias = architecture.hasFixedQKVBias
        outputBias = false
        self.maxPositionEmbeddings = maxPositionEmbeddings
        slidingWindow = nil
        bosTokenID = nil
        eosTokenIDs = []
    }

    /// Resolves a config.json mirror; `path` is named in every error.
    public init(_ file: ConfigFile, path: String) throws {
        guard let className = file.architectures?.first else {
            throw ConfigError.missingField(path: path, field: "architectures")
        }
        guard let architecture = Architecture(className: className) else {
            throw ConfigError.unsupportedArchitecture(path: path, name: className)
        }
        if let act = file.hiddenAct, act != "silu" {
            throw ConfigError.unsupported(path: path, setting: "hidden_act '\(act)' (only 'silu')")
        }
        if file.mlpBias == true { throw ConfigError.unsupported(path: path, setting: "mlp_bias true") }
        if file.useSlidingWindow == true {
            throw ConfigError.unsupported(path: path, setting: "use_sliding_window true")
        }
        for (name, value) in [
            ("vocab_size", file.vocabSize), ("hidden_size", file.hiddenSize),
            ("intermediate_size", file.intermediateSize), ("num_hidden_layers", file.numHiddenLayers),
            ("num_attention_heads", file.numAttentionHeads),
        ] where value <= 0 {
            throw ConfigError.badField(path: path, field: name, expected: "a positive integer, got \(value)")
        }
        // Far above any released model, and small enough that no size computed from them overflows.
        for (name, value, limit) in [
            ("vocab_size", file.vocabSize, 1 << 24), ("hidden_size", file.hiddenSize, 1 << 16),
            ("intermediate_size", file.intermediateSize, 1 << 20),
            ("num_hidden_layers", file.numHiddenLayers, 1024),
            ("num_attention_heads", file.numAttentionHeads, 1024),
            ("num_key_value_heads", file.numKeyValueHeads ?? 1, 1024), ("head_dim", file.headDim ?? 2, 4096),
            ("max_position_embeddings", file.maxPositionEmbeddings ?? 1, 1 << 26),
        ] where value > limit {
            throw ConfigError.badField(
                path: path, field: name, expected: "at most \(limit) (no model is that large), got \(value)")
        }
        let kvHeads = file.numKeyValueHeads ?? file.numAttentionHeads
        guard kvHeads > 0, file.numAttentionHeads % kvHeads == 0 else {
            throw ConfigError.badField(
                path: path, field: "num_key_value_heads",
                expected: "a divisor of num_attention_heads (\(file.numAttentionHeads)), got \(kvHeads)")
        }
        if let positions = file.maxPositionEmbeddings, positions <= 0 {
            throw ConfigError.badField(
                path: path, field: "max_position_embeddings", expected: "a positive integer, got \(positions)"
            )
        }
        let theta = file.ropeParameters?.ropeTheta ?? file.ropeTheta ?? 10_000
        guard theta.isFinite, theta > 0 else {
            throw ConfigError.badField(
                path: path, field: "rope_theta", expected: "a positive number, got \(theta)")
        }
        if let eps = file.rmsNormEps, !(eps.isFinite && eps >= 0) {
            throw ConfigError.badField(
                path: path, field: "rms_norm_eps", expected: "a number at least 0, got \(eps)")
        }
        let headDim = file.headDim ?? file.hiddenSize / file.numAttentionHeads
        guard headDim > 0, headDim % 2 == 0 else {
            throw ConfigError.badField(
                path: path, field: "head_dim", expected: "a positive even number, got \(headDim)")
        }
        self.init(
            architecture: architecture, vocabSize: file.vocabSize, hiddenSize: file.hiddenSize,
            intermediateSize: file.intermediateSize, numHiddenLayers: file.numHiddenLayers,
            numAttentionHeads: file.numAttentionHeads, numKeyValueHeads: kvHeads, headDim: headDim,
            rmsNormEps: Float(file.rmsNormEps ?? 1e-6),
            ropeTheta: theta,
            ropeScaling: try Self.scaling(file.ropeParameters ?? file.ropeScaling, path: path),
            tieWordEmbeddings: file.tieWordEmbeddings ?? false,
            maxPositionEmbeddings: file.maxPositionEmbeddings ?? 2048)
        if architecture == .llama || architecture == .qwen3 {  // Mistral's projections never have bias
            qkvBias = file.attentionBias ?? false
            outputBias = file.attentionBias ?? false
        }
        if architecture == .mistral { slidingWindow = file.slidingWindow }
        bosTokenID = file.bosTokenID?.ids.first
        eosTokenIDs = file.eosTokenID?.ids ?? []
        padTokenID = file.padTokenID?.ids.first
        if let range = file.initializerRange, range.isFinite, range > 0 { initializerRange = range }
    }

    public static func load(path: String) throws -> ModelConfig {
        try ModelConfig(ConfigFile.load(path: path), path: path)
    }

    private static func scaling(_ parameters: RoPEParametersFile?, path: String) throws -> RoPEScaling {
        guard let parameters else { return .none }
        let type = parameters.ropeType ?? parameters.type ?? "default"
        switch type {
        case "default":
            return .none
        case "linear":
            guard let factor = parameters.factor else {
                throw ConfigError.missingField(path: path, field: "rope_scaling.factor")
            }
            guard factor.isFinite, factor > 0 else {
                throw ConfigError.badField(
                    path: path, field: "rope_scaling.factor", expected: "a positive number, got \(factor)")
            }
            return .linear(factor: factor)
        case "llama3":
            guard let factor = parameters.factor, let low = parameters.lowFreqFactor,
                let high = parameters.highFreqFactor, let original = parameters.originalMaxPositionEmbeddings
            else {
                throw ConfigError.missingField(
                    path: path,
                    field:
                        "rope_scaling.{factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}"
                )
            }
            guard factor.isFinite, factor > 0, original > 0, low.isFinite, high.isFinite, high > low, low > 0
            else {
                throw ConfigError.badField(
                    path: path, field: "rope_scaling",
                    expected:
                        "factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0, "
                        + "got factor \(factor), low \(low), high \(high), original \(original)")
            }
            return .llama3(
                factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: original)
        default:
            throw ConfigError.unsupported(
                path: path, setting: "rope type '\(type)' (supported: default, linear, llama3)")
        }
    }

    /// config.json contents for this configuration, in Hugging Face's key names.
    public func configDictionary(dtype: String) -> [String: Any] {
        var dict: [String: Any] = [
            "architectures": [architecture.className], "model_type": architecture.rawValue,
            "vocab_size": vocabSize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": numHiddenLayers, "num_attention_heads": numAttentionHeads,
            "num_key_value_heads": numKeyValueHeads, "head_dim": headDim, "rms_norm_eps": Double(rmsNormEps),
            "rope_theta": ropeTheta, "tie_word_embeddings": tieWordEmbeddings, "hidden_act": "silu",
            "max_position_embeddings": maxPositionEmbeddings, "torch_dtype": dtype,
        ]
        if architecture == .llama || architecture == .qwen3 { dict["attention_bias"] = qkvBias }
        switch ropeScaling {
        case .none: break
        case .linear(let factor): dict["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        case .llama3(let factor, let low, let high, let original):
            dict["rope_scaling"] = [
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                "original_max_position_embeddings": original,
            ]
        }
        if let bosTokenID { dict["bos_token_id"] = bosTokenID }
        if !eosTokenIDs.isEmpty {
            dict["eos_token_id"] = eosTokenIDs.count == 1 ? eosTokenIDs[0] : eosTokenIDs
        }
        if let slidingWindow { dict["sliding_window"] = slidingWindow }
        return dict
    }
}
