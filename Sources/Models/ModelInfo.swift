import Foundation

/// Parameter counts and bytes by category, and what training in float32 with AdamW holds.
public struct ModelInfo {
    public let config: ModelConfig

    public init(config: ModelConfig) { self.config = config }

    /// Parameter counts keyed by category: embeddings, attention, mlp, norms, lm_head.
    public var countsByCategory: [(category: String, count: Int)] {
        var counts: [String: Int] = [:]
        for (name, shape) in config.parameterLayout {
            let category: String
            if name.contains("embed_tokens") {
                category = "embeddings"
            } else if name.hasPrefix("lm_head") {
                category = "lm_head"
            } else if name.contains("norm") {
                category = "norms"
            } else if name.contains("self_attn") {
                category = "attention"
            } else {
                category = "mlp"
            }
            counts[category, default: 0] += shape.reduce(1, *)
        }
        return ["embeddings", "attention", "mlp", "norms", "lm_head"].compactMap { c in
            counts[c].map { (c, $0) }
        }
    }

    public func report() -> String {
        let c = config
        var lines = [
            "architecture        \(c.architecture.className)",
            "layers              \(c.numHiddenLayers)",
            "hidden size         \(c.hiddenSize) (MLP \(c.intermediateSize))",
            "attention heads     \(c.numAttentionHeads) query, \(c.numKeyValueHeads) key/value, head dim \(c.headDim)",
            "vocabulary          \(c.vocabSize)",
            "embeddings          \(c.tieWordEmbeddings ? "tied to lm_head" : "separate lm_head")",
            "rope                theta \(c.ropeTheta), scaling \(c.ropeScaling)",
            "parameters          \(c.parameterCount) (\(formatBytes(c.parameterCount * 4)) in float32)",
            "",
            "category            parameters      float32",
        ]
        for (category, count) in countsByCategory {
            lines.append(pad(category, 20) + pad(String(count), 16) + formatBytes(count * 4))
        }
        let n = c.parameterCount * 4
        lines += [
            "",
            "training (full fine-tune, float32, AdamW)",
            pad("  weights", 36) + formatBytes(n),
            pad("  gradients", 36) + formatBytes(n),
            pad("  optimizer state (m, v)", 36) + formatBytes(2 * n),
            pad("  frozen reference (beta > 0)", 36) + formatBytes(n),
        ]
        return lines.joined(separator: "\n")
    }
}

/// `s` padded with spaces to `width` columns (one space after it when it is wider).
public func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

/// Bytes in binary units with three significant figures: "1.23 GiB".
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.3g %@", value, units[unit])
}
