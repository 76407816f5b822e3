import Tensors

/// Where one named parameter lives in the flat buffer.
public struct ParameterSlot: Equatable, Sendable {
    public let name: String
    public let offset: Int
    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// Every parameter of a model in ONE flat Float32 buffer, with Hugging Face names as views, and
/// the gradient in a second buffer of the same layout (as llm.c does).
///
/// Consecutive slots are laid out so that q/k/v (weights and biases) and gate/up form single
/// matrices the transformer multiplies in one call. AdamW, zeroing and clipping are single loops
/// over `values` / `gradients`.
public final class ParameterStore {
    public let slots: [ParameterSlot]
    public let values: TensorStorage
    public private(set) lazy var gradients = TensorStorage(count: values.count)
    private let index: [String: Int]
    /// Bumped whenever `values` change after loading (an optimizer step, a merge), so copies made
    /// from them (bf16 weights) know to convert again.
    public private(set) var version = 0

    /// Marks `values` as changed.
    public func valuesChanged() { version &+= 1 }

    public init(layout: [(name: String, shape: [Int])]) {
        var offset = 0
        var slots: [ParameterSlot] = []
        for (name, shape) in layout {
            slots.append(ParameterSlot(name: name, offset: offset, shape: shape))
            offset += shape.reduce(1, *)
        }
        self.slots = slots
        values = TensorStorage(count: offset)
        index = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1.name, $0) })
    }

    public var count: Int { values.count }

    public func slot(_ name: String) -> ParameterSlot? { index[name].map { slots[$0] } }

    /// The value view of parameter `name` (a programmer error if the layout lacks it).
    public func value(_ name: String) -> Tensor {
        guard let slot = slot(name) else { preconditionFailure("no parameter named \(name)") }
        return Tensor(storage: values, offset: slot.offset, shape: slot.shape)
    }

    /// The gradient view of parameter `name`.
    public func gradient(_ name: String) -> Tensor {
        guard let slot = slot(name) else { preconditionFailure("no parameter named \(name)") }
        return Tensor(storage: gradients, offset: slot.offset, shape: slot.shape)
    }

    /// A view spanning the consecutive parameters `names` as one (rows, columns) matrix.
    func fused(_ names: [String], columns: Int, gradient: Bool = false) -> Tensor {
        let first = slot(names[0])!
        var rows = 0
        var expectedOffset = first.offset
        for name in names {
            let s = slot(name)!
            precondition(s.offset == expectedOffset, "\(name) does not follow \(names[0]) in the flat layout")
            expectedOffset += s.count
            rows += s.count / columns
        }
        return Tensor(storage: gradient ? gradients : values, offset: first.offset, shape: [rows, columns])
    }

    public func zeroGradients() { Tensor(storage: gradients, offset: 0, shape: [gradients.count]).zero() }
}

extension ModelConfig {
    /// The Hugging Face parameter names and shapes, in the flat layout's order.
    public var parameterLayout: [(name: String, shape: [Int])] {
        let (C, F, V, D) = (hiddenSize, intermediateSize, vocabSize, headDim)
        let (H, K) = (numAttentionHeads, numKeyValueHeads)
        var layout: [(String, [Int])] = [("model.embed_tokens.weight", [V, C])]
        for l in 0..<numHiddenLayers {
            let p = "model.layers.\(l)."
            layout.append((p + "input_layernorm.weight", [C]))
            layout += [
                (p + "self_attn.q_proj.weight", [H * D, C]), (p + "self_attn.k_proj.weight", [K * D, C]),
                (p + "self_attn.v_proj.weight", [K * D, C]),
            ]
            if qkvBias {
                layout += [
                    (p + "self_attn.q_proj.bias", [H * D]), (p + "self_attn.k_proj.bias", [K * D]),
                    (p + "self_attn.v_proj.bias", [K * D]),
                ]
            }
            layout.append((p + "self_attn.o_proj.weight", [C, H * D]))
            if outputBias { layout.append((p + "self_attn.o_proj.bias", [C])) }
            if qkNorm {
                layout += [(p + "self_attn.q_norm.weight", [D]), (p + "self_attn.k_norm.weight", [D])]
            }
            layout.append((p + "post_attention_layernorm.weight", [C]))
            layout += [
                (p + "mlp.gate_proj.weight", [F, C]), (p + "mlp.up_proj.weight", [F, C]),
                (p + "mlp.down_proj.weight", [C, F]),
            ]
        }
        layout.append(("model.norm.weight", [C]))
        if !tieWordEmbeddings { layout.append(("lm_head.weight", [V, C])) }
        return layout
    }

    public var parameterCount: Int { parameterLayout.reduce(0) { $0 + $1.shape.reduce(1, *) } }
}
