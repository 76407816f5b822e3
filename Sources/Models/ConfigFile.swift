import Foundation

/// `rope_scaling` (classic) or `rope_parameters` (transformers 5) in config.json.
public struct RoPEParametersFile: Codable, Equatable, Sendable {
    public var ropeType: String?
    public var type: String?
    public var ropeTheta: Double?
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type"
        case type
        case ropeTheta = "rope_theta"
        case factor
        case lowFreqFactor = "low_freq_factor"
        case highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }
}

/// A token id field that config files write as one integer or a list.
public struct TokenIDs: Codable, Equatable, Sendable {
    public var ids: [Int]
    public init(_ ids: [Int]) { self.ids = ids }
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let single = try? container.decode(Int.self) {
            ids = [single]
        } else {
            ids = try container.decode([Int].self)
        }
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if ids.count == 1 { try container.encode(ids[0]) } else { try container.encode(ids) }
    }
}

/// Exactly the config.json keys this project reads; optional where Hugging Face's are optional.
public struct ConfigFile: Codable, Sendable {
    public var architectures: [String]?
    public var modelType: String?
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var rmsNormEps: Double?
    public var ropeTheta: Double?
    public var ropeScaling: RoPEParametersFile?
    public var ropeParameters: RoPEParametersFile?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var hiddenAct: String?
    public var maxPositionEmbeddings: Int?
    public var slidingWindow: Int?
    public var useSlidingWindow: Bool?
    public var bosTokenID: TokenIDs?
    public var eosTokenID: TokenIDs?
    public var padTokenID: TokenIDs?
    public var torchDtype: String?
    public var dtype: String?
    public var initializerRange: Double?

    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case rmsNormEps = "rms_norm_eps"
        case initializerRange = "initializer_range"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings"
        case slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window"
        case bosTokenID = "bos_token_id"
        case eosTokenID = "eos_token_id"
        case padTokenID = "pad_token_id"
        case torchDtype = "torch_dtype"
        case dtype
    }

    /// Decodes config.json, turning decoding failures into errors that name the file and the key.
    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.unreadable(path: path)
        }
        do {
            return try JSONDecoder().decode(ConfigFile.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            let at = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            throw ConfigError.missingField(path: path, field: at)
        } catch let DecodingError.typeMismatch(type, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError.badField(path: path, field: field, expected: expectation(type, field: field))
        } catch let DecodingError.valueNotFound(type, context) {
            throw ConfigError.badField(
                path: path, field: context.codingPath.map(\.stringValue).joined(separator: "."),
                expected: "\(type), not null")
        } catch {
            // Foundation reports a number that does not fit an integer field (2e62, 1.5) as invalid
            // JSON, without the field: find it.
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ConfigError.malformed(path: path, reason: "not valid JSON")
            }
            let integers = [
                CodingKeys.vocabSize, .hiddenSize, .intermediateSize, .numHiddenLayers, .numAttentionHeads,
                .numKeyValueHeads, .headDim, .maxPositionEmbeddings, .slidingWindow,
            ].map(\.rawValue)
            // Token ids too: `eos_token_id` may be a list.
            var candidates: [(String, Any)] = integers.compactMap { key in object[key].map { (key, $0) } }
            for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
                if let list = object[key] as? [Any] {
                    candidates += list.map { (key, $0) }
                } else if let value = object[key] {
                    candidates.append((key, value))
                }
            }
            for (key, item) in candidates {
                guard let number = item as? NSNumber, !(item is Bool) else { continue }
                let value = number.doubleValue
                if abs(value) >= 9.2e18 {
                    throw ConfigError.badField(
                        path: path, field: key, expected: "a number that fits, got \(number)")
                }
                if value != value.rounded() {
                    throw ConfigError.badField(
                        path: path, field: key, expected: "a whole number, got \(number)")
                }
            }
            throw ConfigError.malformed(
                path: path,
                reason: "a value does not fit its field (a number too large, or of the wrong kind)")
        }
    }
}

/// What can be wrong with a model's config.json; every case names the file.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String)
    case malformed(path: String, reason: String)
    case missingField(path: String, field: String)
    case badField(path: String, field: String, expected: String)
    case unsupportedArchitecture(path: String, name: String)
    case unsupported(path: String, setting: String)

    public var description: String {
        switch self {
        case .unreadable(let path): "\(path): cannot read the model config"
        case .malformed(let path, let reason): "\(path): \(reason)"
        case .missingField(let path, let field): "\(path): missing required field '\(field)'"
        case .badField(let path, let field, let expected): "\(path): field '\(field)' should be \(expected)"
        case .unsupportedArchitecture(let path, let name):
            "\(path): unsupported architecture '\(name)' (supported: \(Architecture.allCases.map(\.className).joined(separator: ", ")))"
        case .unsupported(let path, let setting): "\(path): unsupported setting: \(setting)"
        }
    }
}

/// What a field of Swift type `type` holds, in JSON's words.
private func expectation(_ type: Any.Type, field: String) -> String {
    if field.hasSuffix("token_id") { return "a token id (an integer) or a list of them" }
    switch type {
    case is Bool.Type: return "true or false"
    case is Int.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is String.Type: return "a string"
    default: return "\(type)".hasPrefix("Array") ? "a list" : "\(type)"
    }
}
