import Tensors

/// One decoder layer's parameters: its four projections as `Linear` units (q/k/v fused into one
/// matrix, gate/up into another) and its norm weights.
public final class DecoderLayer {
    public let index: Int
    /// q_proj, k_proj, v_proj as one ((H+2K)D, C) matrix, with their biases when the model has them.
    public let qkv: Linear
    /// o_proj: (C, H·D).
    public let output: Linear
    /// gate_proj and up_proj as one (2F, C) matrix.
    public let gateUp: Linear
    /// down_proj: (C, F).
    public let down: Linear
    let inputNorm: Tensor
    let postNorm: Tensor
    let qNorm: Tensor?
    let kNorm: Tensor?
    private let store: ParameterStore
    private let prefix: String

    init(layer l: Int, config: ModelConfig, store: ParameterStore) {
        index = l
        self.store = store
        let p = "model.layers.\(l)."
        prefix = p
        let C = config.hiddenSize
        qkv = Linear(
            store: store, modules: ["q_proj", "k_proj", "v_proj"].map { p + "self_attn." + $0 }, inputs: C,
            bias: config.qkvBias)
        output = Linear(
            store: store, modules: [p + "self_attn.o_proj"],
            inputs: config.numAttentionHeads * config.headDim,
            bias: config.outputBias)
        gateUp = Linear(
            store: store, modules: [p + "mlp.gate_proj", p + "mlp.up_proj"], inputs: C, bias: false)
        down = Linear(
            store: store, modules: [p + "mlp.down_proj"], inputs: config.intermediateSize, bias: false)
        inputNorm = store.value(p + "input_layernorm.weight")
        postNorm = store.value(p + "post_attention_layernorm.weight")
        qNorm = config.qkNorm ? store.value(p + "self_attn.q_norm.weight") : nil
        kNorm = config.qkNorm ? store.value(p + "self_attn.k_norm.weight") : nil
    }

    /// Every projection, in the order the layer applies them.
    public var linears: [Linear] { [qkv, output, gateUp, down] }

    /// The gradient view of one of this layer's norm weights (`input_layernorm` and the like).
    func normGradient(_ name: String) -> Tensor { store.gradient(prefix + name) }
}

/// What one layer's forward saves for its backward (and what prefill and decode work in).
///
/// The tensors are views of one buffer that later batches of up to `capacity` tokens reuse:
/// re-faulting a gigabyte of fresh pages per step cost more than the elementwise kernels. Every
/// view is fully written by the layer's forward.
final class LayerActivations {
    /// The saved tensors, each (N, width) or (N) for width 1; width 0 means absent for this model.
    enum Buffer: Int, CaseIterable {
        case normed1  // input_layernorm output, (N, C)
        case rstd1  // (N)
        case qkvRaw  // (N, (H+2K)D) before q_norm / k_norm (Qwen3 only)
        case rstdQ  // (N, H), Qwen3 only
        case rstdK  // (N, K), Qwen3 only
        case qkv  // (N, (H+2K)D) after the norms and RoPE
        case attention  // (N, H·D)
        case lse  // (N, H)
        case middle  // (N, C) residual stream after attention
        case normed2  // (N, C)
        case rstd2  // (N)
        case gateUp  // (N, 2F)
        case hidden  // (N, F) SwiGLU output

        func width(_ c: ModelConfig) -> Int {
            switch self {
            case .normed1, .middle, .normed2: c.hiddenSize
            case .rstd1, .rstd2: 1
            case .qkvRaw: c.qkNorm ? c.heads.qkvWidth : 0
            case .rstdQ: c.qkNorm ? c.numAttentionHeads : 0
            case .rstdK: c.qkNorm ? c.numKeyValueHeads : 0
            case .qkv: c.heads.qkvWidth
            case .attention: c.numAttentionHeads * c.headDim
            case .lse: c.numAttentionHeads
            case .gateUp: 2 * c.intermediateSize
            case .hidden: c.intermediateSize
            }
        }
    }

    private let storage: TensorStorage
    private let config: ModelConfig
    let capacity: Int
    private var views: [Tensor?] = []

    init(capacity: Int, config: ModelConfig) {
        self.capacity = capacity
        self.config = config
        storage = TensorStorage(count: capacity * Buffer.allCases.reduce(0) { $0 + $1.width(config) })
        bind(tokens: capacity)
    }

    /// Points every view at the first N tokens' worth of the buffer.
    func bind(tokens N: Int) {
        precondition(N <= capacity, "\(N) tokens exceed the activation buffer's \(capacity)")
        var offset = 0
        views = Buffer.allCases.map { buffer in
            let width = buffer.width(config)
            defer { offset += capacity * width }
            return width == 0
                ? nil : Tensor(storage: storage, offset: offset, shape: width == 1 ? [N] : [N, width])
        }
    }

    subscript(_ buffer: Buffer) -> Tensor {
        guard let view = views[buffer.rawValue] else {
            preconditionFailure("\(buffer) is absent for this model")
        }
        return view
    }

    /// The buffer, or nil when this model has none (q/k norms outside Qwen3).
    func optional(_ buffer: Buffer) -> Tensor? { views[buffer.rawValue] }

    /// Bytes held, for memory reports.
    var byteCount: Int { storage.count * 4 }
}
