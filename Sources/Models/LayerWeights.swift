import Tensors

/// Views of one decoder layer's parameters (or of their gradients), computed once.
struct LayerWeights {
    let inputNorm: Tensor
    /// q_proj, k_proj, v_proj as one ((H+2K)D, C) matrix; biases as one ((H+2K)D) vector.
    let qkv: Tensor
    let qkvBias: Tensor?
    let output: Tensor
    let outputBias: Tensor?
    let qNorm: Tensor?
    let kNorm: Tensor?
    let postNorm: Tensor
    /// gate_proj and up_proj as one (2F, C) matrix.
    let gateUp: Tensor
    let down: Tensor

    init(layer l: Int, config: ModelConfig, store: ParameterStore, gradient: Bool) {
        let p = "model.layers.\(l)."
        let view = { (name: String) in gradient ? store.gradient(p + name) : store.value(p + name) }
        let C = config.hiddenSize
        inputNorm = view("input_layernorm.weight")
        qkv = store.fused(
            [p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"],
            columns: C,
            gradient: gradient)
        qkvBias =
            config.qkvBias
            ? store.fused(
                [p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"],
                columns: 1, gradient: gradient) : nil
        output = view("self_attn.o_proj.weight")
        outputBias = config.outputBias ? view("self_attn.o_proj.bias") : nil
        qNorm = config.qkNorm ? view("self_attn.q_norm.weight") : nil
        kNorm = config.qkNorm ? view("self_attn.k_norm.weight") : nil
        postNorm = view("post_attention_layernorm.weight")
        gateUp = store.fused(
            [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"], columns: C, gradient: gradient)
        down = view("mlp.down_proj.weight")
    }
}

/// What one layer's forward saves for its backward.
///
/// The tensors are views of one buffer that later batches of up to `capacity` tokens reuse:
/// re-faulting a gigabyte of fresh pages per step cost more than the elementwise kernels. Every
/// view is fully written by the layer's forward.
final class LayerActivations {
    private let storage: TensorStorage
    private let config: ModelConfig
    let capacity: Int
    private(set) var normed1: Tensor  // (N, C) input_layernorm output
    private(set) var rstd1: Tensor  // (N)
    private(set) var qkvRaw: Tensor?  // (N, (H+2K)D) before q_norm / k_norm (Qwen3)
    private(set) var rstdQ: Tensor?  // (N, H)
    private(set) var rstdK: Tensor?  // (N, K)
    private(set) var qkv: Tensor  // (N, (H+2K)D) after norms and RoPE
    private(set) var attention: Tensor  // (N, H*D)
    private(set) var lse: Tensor  // (N, H)
    private(set) var middle: Tensor  // (N, C) residual stream after attention
    private(set) var normed2: Tensor  // (N, C)
    private(set) var rstd2: Tensor  // (N)
    private(set) var gateUp: Tensor  // (N, 2F)
    private(set) var hidden: Tensor  // (N, F) SwiGLU output

    /// Widths (elements per token) of each saved tensor, in field order.
    private static func widths(_ c: ModelConfig) -> [Int] {
        let q = c.qkNorm
        return [
            c.hiddenSize, 1, q ? c.heads.qkvWidth : 0, q ? c.numAttentionHeads : 0,
            q ? c.numKeyValueHeads : 0,
            c.heads.qkvWidth, c.numAttentionHeads * c.headDim, c.numAttentionHeads, c.hiddenSize,
            c.hiddenSize, 1,
            2 * c.intermediateSize, c.intermediateSize,
        ]
    }

    init(capacity: Int, config: ModelConfig) {
        self.capacity = capacity
        self.config = config
        storage = TensorStorage(count: capacity * Self.widths(config).reduce(0, +))
        let empty = Tensor(storage: storage, offset: 0, shape: [0])
        (normed1, rstd1, qkv, attention, lse, middle, normed2, rstd2, gateUp, hidden) =
            (empty, empty, empty, empty, empty, empty, empty, empty, empty, empty)
        bind(tokens: capacity)
    }

    /// Points every view at the first N tokens' worth of the buffer.
    func bind(tokens N: Int) {
        precondition(N <= capacity, "\(N) tokens exceed the activation buffer's \(capacity)")
        var offset = 0
        let views = Self.widths(config).map { width -> Tensor? in
            defer { offset += capacity * width }
            return width == 0
                ? nil : Tensor(storage: storage, offset: offset, shape: width == 1 ? [N] : [N, width])
        }
        normed1 = views[0]!
        rstd1 = views[1]!
        qkvRaw = views[2]
        rstdQ = views[3]
        rstdK = views[4]
        qkv = views[5]!
        attention = views[6]!
        lse = views[7]!
        middle = views[8]!
        normed2 = views[9]!
        rstd2 = views[10]!
        gateUp = views[11]!
        hidden = views[12]!
    }

    /// Bytes held, for memory reports.
    var byteCount: Int { storage.count * 4 }
}
