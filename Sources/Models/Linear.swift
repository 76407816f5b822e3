import Foundation
import Tensors

/// The arithmetic a linear layer's matmuls run in.
public enum LinearPrecision: String, Sendable {
    /// float32 inputs, weights and accumulation.
    case float32
    /// bf16 inputs and weights (a bf16 copy of the float32 master weight), float32 accumulation,
    /// float32 outputs and gradients.
    case bf16
}

/// What a user asks for (`precision: float32 | bf16 | auto`, TRL's `bf16: true`), resolved against
/// this machine: bf16 needs the CPU's bf16 instructions.
public enum PrecisionSetting: String, Sendable, CaseIterable {
    case float32
    case bf16
    case auto

    /// The precision to run, and a note to print when bf16 was asked for and cannot run here.
    public func resolved(bf16Available: Bool = BFloat16Matmul.isAvailable) -> (LinearPrecision, note: String?)
    {
        switch self {
        case .float32: return (.float32, nil)
        case .auto: return (bf16Available ? .bf16 : .float32, nil)
        case .bf16:
            if bf16Available { return (.bf16, nil) }
            return (
                .float32,
                "precision bf16: this CPU (\(CPUFeatures.vectorClass)) has no bf16 matmul instructions (avx512_bf16); running float32"
            )
        }
    }
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
    public var frozen = false {
        didSet { if !float32Released { lowPrecision.layouts = frozen ? .rowMajor : [.rowMajor, .packed] } }
    }
    public var precision = LinearPrecision.float32 {
        didSet {
            precondition(
                !float32Released || precision == .bf16, "\(modules[0].name): float32 weights were released")
            if precision == .float32 { lowPrecision.release() }
        }
    }
    /// The float32 weight's memory was given back (`holdInBF16Only`): only the bf16 copy is left.
    public private(set) var float32Released = false
    public var adapters: [any LinearAdapter] = []

    private let store: ParameterStore
    private let weightOffset: Int
    private let lowPrecision: BFloat16Copy
    private let biasOffset: Int?

    /// The fused matrix of `modules` (consecutive in the store's layout), with their biases when
    /// `bias`.
    init(store: ParameterStore, modules names: [String], inputs: Int, bias: Bool) {
        self.store = store
        weight = store.fused(names.map { $0 + ".weight" }, columns: inputs)
        weightOffset = weight.offset
        lowPrecision = BFloat16Copy(of: weight, in: store)
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

    var bf16Weight: BFloat16Weight { lowPrecision.value }

    /// Bytes held besides the float32 parameters (the bf16 copy of the weight).
    public var extraBytes: Int { lowPrecision.bytes }

    /// Keeps a frozen bf16 layer's weight in bf16 only, halving the weight's memory.
    ///
    /// The bf16 copy is made (and never remade) and the float32 weight's pages go back to the
    /// system: row-major when gradients will flow through the layer (`backward`, a LoRA base),
    /// else packed for the forward kernels. Using the float32 weight afterwards (float32
    /// precision, training it) or a backward without `backward` is a programmer error.
    public func holdInBF16Only(backward: Bool) {
        precondition(frozen && precision == .bf16, "only a frozen bf16 layer can drop its float32 weight")
        guard !float32Released else { return }
        lowPrecision.pin(backward ? .rowMajor : .packed)
        discardPages(weight.pointer, count: weight.count)
        float32Released = true
    }

    /// y (N, outputs) = x (N, inputs) Wᵀ + b, plus every adapter's contribution.
    public func forward(y: Tensor, x: Tensor) {
        precondition(!float32Released || precision == .bf16)
        switch precision {
        case .float32: linearForward(y: y, x: x, weight: weight, bias: bias)
        case .bf16: linearForwardBF16(y: y, x: x, weight: bf16Weight, bias: bias)
        }
        for adapter in adapters { adapter.forward(y: y, x: x) }
    }

    /// dX (=, or += when `accumulate`) dY W (nil: not needed); dW += dYᵀ x and db += Σ dY unless
    /// frozen; adapters add their share of dX and their own gradients.
    public func backward(dX: Tensor?, accumulate: Bool = false, dY: Tensor, x: Tensor) {
        precondition(!float32Released || (frozen && precision == .bf16))
        let (dWeight, dBias) = frozen ? (nil, nil) : (weightGradient, biasGradient)
        switch precision {
        case .float32:
            linearBackward(
                dX: dX, accumulate: accumulate, dWeight: dWeight, dBias: dBias, dY: dY, x: x, weight: weight)
        case .bf16:
            linearBackwardBF16(
                dX: dX, accumulate: accumulate, dWeight: dWeight, dBias: dBias, dY: dY, x: x,
                weight: bf16Weight)
        }
        for adapter in adapters { adapter.backward(dX: dX, dY: dY, x: x) }
    }
}

/// A bf16 copy of a weight in a `ParameterStore`, made on first use and again only when the store's
/// values changed (once per optimizer step; once per run for a frozen weight), never per call.
///
/// `layouts` says which layouts to hold: a trained weight needs row-major for the backward's dX and
/// the packed one for fast forwards; a frozen weight in a trained model (a LoRA base) row-major
/// only, so its memory stays halved; a weight that only runs forwards (the reference model) packed
/// only.
final class BFloat16Copy {
    let source: Tensor
    private let store: ParameterStore
    private var weight: BFloat16Weight?
    private var version = 0
    /// Made once and kept: the float32 source is gone.
    private var pinned = false
    var layouts: BFloat16Weight.Layouts = [.rowMajor, .packed] {
        didSet {
            guard layouts != oldValue else { return }
            precondition(!pinned, "the bf16 copy is all that is left of this weight")
            weight = nil
        }
    }

    init(of source: Tensor, in store: ParameterStore) {
        precondition(source.shape.count == 2, "a bf16 copy is of a matrix, got \(source.shape)")
        self.source = source
        self.store = store
    }

    var value: BFloat16Weight {
        if let weight, version == store.version || pinned { return weight }
        let converted =
            weight ?? BFloat16Weight(outputs: source.shape[0], inputs: source.shape[1], layouts: layouts)
        converted.update(from: source.pointer)
        weight = converted
        version = store.version
        return converted
    }

    var bytes: Int { weight?.bytes ?? 0 }

    func release() {
        precondition(!pinned, "the bf16 copy is all that is left of this weight")
        weight = nil
    }

    /// Makes the copy now, in `layouts`, and keeps it whatever the store does later.
    func pin(_ layouts: BFloat16Weight.Layouts) {
        self.layouts = layouts
        _ = value
        pinned = true
    }
}

/// Gives the whole pages inside `count` floats at `pointer` back to the system (they read as zeros
/// if touched again); a no-op where `madvise` is not Linux's.
func discardPages(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
    #if os(Linux)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: pointer) + page - 1) / page * page
        let end = Int(bitPattern: pointer + count) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    #endif
}
