import Tensors

/// The arithmetic a linear layer's matmuls run in.
public enum LinearPrecision: String, Sendable {
    /// float32 inputs, weights and accumulation.
    case float32
}

/// Something added to a linear layer's output, trained or not (LoRA is one).
///
/// `forward` adds its contribution to `y`; `backward` adds its share of dX (when asked for) and
/// accumulates its own parameters' gradients. Both see the whole fused matrix's rows; an adapter
/// on one module of a fused projection (q of q/k/v) works on that module's rows only.
public protocol LinearAdapter: AnyObject {
    func forward(y: Tensor, x: Tensor)
    func backward(dX: Tensor?, dY: Tensor, x: Tensor)
}

/// One projection of the model, `y = x Wᵀ + b`, as torch.nn.Linear: every matmul of a layer goes
/// through one of these.
///
/// It owns views of its weight and bias in the flat `ParameterStore` (and, on demand, of their
/// gradients), the Hugging Face modules it holds (q_proj, k_proj and v_proj of one fused matrix,
/// as row ranges), whether it is frozen (a frozen layer's backward skips the dW matmul and never
/// touches the gradient buffer), its compute precision, and any adapters.
public final class Linear {
    /// One Hugging Face module inside the (possibly fused) matrix, for example
    /// `model.layers.0.self_attn.k_proj` at rows H·D..<(H+K)·D.
    public struct Module: Sendable, Equatable {
        public let name: String
        public let rows: Range<Int>

        public init(name: String, rows: Range<Int>) {
            self.name = name
            self.rows = rows
        }
    }

    public let modules: [Module]
    public let weight: Tensor
    public let bias: Tensor?
    /// No weight or bias gradient: backward computes dX only.
    public var frozen = false
    public var precision = LinearPrecision.float32
    public var adapters: [any LinearAdapter] = []

    private let store: ParameterStore
    private let weightOffset: Int
    private let biasOffset: Int?

    /// The fused matrix of `modules` (consecutive in the store's layout), with their biases when
    /// `bias`.
    init(store: ParameterStore, modules names: [String], inputs: Int, bias: Bool) {
        self.store = store
        weight = store.fused(names.map { $0 + ".weight" }, columns: inputs)
        weightOffset = weight.offset
        if bias {
            let fused = store.fused(names.map { $0 + ".bias" }, columns: 1)
            self.bias = fused.view(shape: [fused.count])
            biasOffset = fused.offset
        } else {
            self.bias = nil
            biasOffset = nil
        }
        var row = 0
        modules = names.map { name in
            let rows = store.slot(name + ".weight")!.shape[0]
            defer { row += rows }
            return Module(name: name, rows: row..<(row + rows))
        }
    }

    public var outputs: Int { weight.shape[0] }
    public var inputs: Int { weight.shape[1] }

    /// The gradient views (allocating the store's gradient buffer on first use).
    var weightGradient: Tensor { Tensor(storage: store.gradients, offset: weightOffset, shape: weight.shape) }
    var biasGradient: Tensor? {
        biasOffset.map { Tensor(storage: store.gradients, offset: $0, shape: [outputs]) }
    }

    /// y (N, outputs) = x (N, inputs) Wᵀ + b, plus every adapter's contribution.
    public func forward(y: Tensor, x: Tensor) {
        linearForward(y: y, x: x, weight: weight, bias: bias)
        for adapter in adapters { adapter.forward(y: y, x: x) }
    }

    /// dX (=, or += when `accumulate`) dY W (nil: not needed); dW += dYᵀ x and db += Σ dY unless
    /// frozen; adapters add their share of dX and their own gradients.
    public func backward(dX: Tensor?, accumulate: Bool = false, dY: Tensor, x: Tensor) {
        linearBackward(
            dX: dX, accumulate: accumulate, dWeight: frozen ? nil : weightGradient,
            dBias: frozen ? nil : biasGradient, dY: dY, x: x, weight: weight)
        for adapter in adapters { adapter.backward(dX: dX, dY: dY, x: x) }
    }
}
