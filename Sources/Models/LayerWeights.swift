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
            [p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"], columns: C,
            gradient: gradient)
        qkvBias = config.qkvBias
            ? store.fused([p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"],
                          columns: 1, gradient: gradient) : nil
        output = view("self_attn.o_proj.weight")
        outputBias = config.outputBias ? view("self_attn.o_proj.bias") : nil
        qNorm = config.qkNorm ? view("self_attn.q_norm.weight") : nil
        kNorm = config.qkNorm ? view("self_attn.k_norm.weight") : nil
        postNorm = view("post_attention_layernorm.weight")
        gateUp = store.fused([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"], columns: C, gradient: gradient)
        down = view("mlp.down_proj.weight")
    }
}

/// What one layer's forward saves for its backward, sized for N packed tokens.
final class LayerActivations {
    let normed1: Tensor  // (N, C) input_layernorm output
    let rstd1: Tensor  // (N)
    let qkvRaw: Tensor?  // (N, (H+2K)D) before q_norm / k_norm (Qwen3)
    let rstdQ: Tensor?  // (N, H)
    let rstdK: Tensor?  // (N, K)
    let qkv: Tensor  // (N, (H+2K)D) after norms and RoPE
    let attention: Tensor  // (N, H*D)
    let lse: Tensor  // (N, H)
    let middle: Tensor  // (N, C) residual stream after attention
    let normed2: Tensor  // (N, C)
    let rstd2: Tensor  // (N)
    let gateUp: Tensor  // (N, 2F)
    let hidden: Tensor  // (N, F) SwiGLU output

    init(tokens N: Int, config: ModelConfig) {
        let (C, F, H, K) = (config.hiddenSize, config.intermediateSize, config.numAttentionHeads, config.numKeyValueHeads)
        let width = config.heads.qkvWidth
        normed1 = Tensor(zeros: [N, C])
        rstd1 = Tensor(zeros: [N])
        qkvRaw = config.qkNorm ? Tensor(zeros: [N, width]) : nil
        rstdQ = config.qkNorm ? Tensor(zeros: [N, H]) : nil
        rstdK = config.qkNorm ? Tensor(zeros: [N, K]) : nil
        qkv = Tensor(zeros: [N, width])
        attention = Tensor(zeros: [N, H * config.headDim])
        lse = Tensor(zeros: [N, H])
        middle = Tensor(zeros: [N, C])
        normed2 = Tensor(zeros: [N, C])
        rstd2 = Tensor(zeros: [N])
        gateUp = Tensor(zeros: [N, 2 * F])
        hidden = Tensor(zeros: [N, F])
    }

    /// Bytes held, for memory reports.
    var byteCount: Int {
        let all: [Tensor?] = [normed1, rstd1, qkvRaw, rstdQ, rstdK, qkv, attention, lse, middle, normed2, rstd2, gateUp, hidden]
        return all.compactMap { $0 }.reduce(0) { $0 + $1.count * 4 }
    }
}
