import Foundation
import Tensors

/// LoRA's settings, under TRL's `ModelConfig` names (`lora_r`, `lora_alpha`, ...) and PEFT's
/// `LoraConfig` semantics.
public struct LoRASettings: Sendable, Equatable {
    /// The rank r of each update B·A.
    public var rank = 16
    /// The update is scaled by alpha / r (alpha / √r with rsLoRA).
    public var alpha = 32.0
    /// Dropout on the adapters' input during training (TRL's default 0.05; PEFT's 0).
    public var dropout = 0.0
    /// Module names (q_proj, ..., down_proj), or nil for PEFT's default for the architecture.
    public var targetModules: [String]?
    public var useRSLoRA = false

    public init() {}

    /// The seven projections of a decoder layer, PEFT's names.
    public static let projectionNames = [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]

    public var scaling: Float { Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }

    /// The module names adapted: `all-linear` is every projection (PEFT leaves lm_head out), the
    /// default PEFT's for Llama, Qwen2/3 and Mistral (q_proj and v_proj).
    public var resolvedTargets: [String] {
        guard let targetModules else { return ["q_proj", "v_proj"] }
        if targetModules.contains("all-linear") { return Self.projectionNames }
        return Self.projectionNames.filter(targetModules.contains)
    }
}

/// What is wrong with LoRA settings or an adapter folder; each case names the file or key.
public enum LoRAError: Error, CustomStringConvertible, Equatable {
    case badSetting(key: String, expected: String)
    case unsupportedAdapter(path: String, reason: String)
    case mismatch(path: String, tensor: String, reason: String)

    public var description: String {
        switch self {
        case .badSetting(let key, let expected): "\(key): expected \(expected)"
        case .unsupportedAdapter(let path, let reason): "\(path): \(reason)"
        case .mismatch(let path, let tensor, let reason): "\(path): tensor '\(tensor)': \(reason)"
        }
    }
}

/// One module's low-rank update: y[:, rows] += scaling · (x Aᵀ) Bᵀ, with A (r, in) and B (out, r).
///
/// Nothing is saved between forward and backward: backward recomputes u = x Aᵀ, which is r/out of
/// the base matmul's work, so gradient checkpointing's recomputed layers need no extra state.
final class LoRAAdapter: LinearAdapter {
    let module: String
    /// This adapter's place among the model's, which keys its dropout masks.
    let index: Int
    let dropout: DropoutClock
    let rows: Range<Int>
    let a: Tensor  // (r, in)
    let b: Tensor  // (out, r)
    let store: ParameterStore
    let scaling: Float
    /// Off: the base model alone (the reference policy for the KL term).
    var enabled = true

    init(
        module: String, index: Int, rows: Range<Int>, store: ParameterStore, scaling: Float,
        dropout: DropoutClock
    ) {
        self.module = module
        self.index = index
        self.dropout = dropout
        self.rows = rows
        self.store = store
        self.scaling = scaling
        a = store.value(LoRA.tensorName(module, "lora_A"))
        b = store.value(LoRA.tensorName(module, "lora_B"))
    }

    var rank: Int { a.shape[0] }

    /// x with this pass's dropout mask applied (x itself when dropout is off).
    private func dropped(_ x: Tensor) -> Tensor {
        guard dropout.active else { return x }
        let result = dropout.scratch(0, shape: x.shape)
        dropout.apply(to: x, into: result, stream: UInt64(index))
        return result
    }

    func forward(y: Tensor, x: Tensor) {
        guard enabled else { return }
        let (N, r, I) = (x.shape[0], rank, a.shape[1])
        let O = y.count / N
        let xd = dropped(x)
        let u = Tensor(zeros: [N, r])
        BLAS.sgemm(
            transA: false, transB: true, m: N, n: r, k: I, a: xd.pointer, lda: I, b: a.pointer, ldb: I,
            c: u.pointer, ldc: r)
        BLAS.sgemm(
            transA: false, transB: true, m: N, n: rows.count, k: r, alpha: scaling, a: u.pointer, lda: r,
            b: b.pointer, ldb: r, beta: 1, c: y.pointer + rows.lowerBound, ldc: O)
    }

    func backward(dX: Tensor?, dY: Tensor, x: Tensor) {
        guard enabled else { return }
        let (N, r, I) = (x.shape[0], rank, a.shape[1])
        let O = dY.count / N
        let dYm = dY.pointer + rows.lowerBound  // (N, out) with row stride O
        let xd = dropped(x)  // the same mask as the forward's: it is a function of the pass and position
        let u = Tensor(zeros: [N, r])
        BLAS.sgemm(
            transA: false, transB: true, m: N, n: r, k: I, a: xd.pointer, lda: I, b: a.pointer, ldb: I,
            c: u.pointer, ldc: r)
        let dA = store.gradient(LoRA.tensorName(module, "lora_A"))
        let dB = store.gradient(LoRA.tensorName(module, "lora_B"))
        // dB += scaling · dY_mᵀ u
        BLAS.sgemm(
            transA: true, transB: false, m: rows.count, n: r, k: N, alpha: scaling, a: dYm, lda: O,
            b: u.pointer, ldb: r, beta: 1, c: dB.pointer, ldc: r)
        // du = scaling · dY_m B, then dA += duᵀ x and dX += du A
        let du = Tensor(zeros: [N, r])
        BLAS.sgemm(
            transA: false, transB: false, m: N, n: r, k: rows.count, alpha: scaling, a: dYm, lda: O,
            b: b.pointer, ldb: r, c: du.pointer, ldc: r)
        BLAS.sgemm(
            transA: true, transB: false, m: r, n: I, k: N, a: du.pointer, lda: r, b: xd.pointer, ldb: I,
            beta: 1, c: dA.pointer, ldc: I)
        guard let dX else { return }
        if dropout.active {
            // dX += (du A) ⊙ mask: the product goes through the same mask x did.
            let product = dropout.scratch(1, shape: [N, I])
            BLAS.sgemm(
                transA: false, transB: false, m: N, n: I, k: r, a: du.pointer, lda: r, b: a.pointer, ldb: I,
                c: product.pointer, ldc: I)
            dropout.apply(to: product, into: dX, stream: UInt64(index), accumulate: true)
        } else {
            BLAS.sgemm(
                transA: false, transB: false, m: N, n: I, k: r, a: du.pointer, lda: r, b: a.pointer, ldb: I,
                beta: 1, c: dX.pointer, ldc: I)
        }
    }
}

/// Dropout on the adapters' input (PEFT's `lora_dropout`), on in training passes only.
///
/// A pass's mask is a function of (seed, pass, adapter, element), so backward, and the forward
/// that gradient checkpointing recomputes, see exactly the forward's mask without storing it.
public final class DropoutClock {
    public let probability: Float
    /// The run's seed (a resumed run sets it again, whatever made the adapter).
    public var seed: UInt64
    /// The current training pass's key.
    public private(set) var pass: UInt64 = 0
    private var training = false

    init(probability: Float, seed: UInt64) {
        self.probability = probability
        self.seed = seed
    }

    var active: Bool { training && probability > 0 }

    /// Two buffers the adapters take turns with (they run one after another), kept between calls:
    /// fresh pages for every masked copy cost more than the masking.
    private var buffers = [TensorStorage(count: 0), TensorStorage(count: 0)]

    func scratch(_ slot: Int, shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        if buffers[slot].count < count {
            buffers[slot] = TensorStorage(count: 0)
            buffers[slot] = TensorStorage(count: count)
        }
        return Tensor(storage: buffers[slot], offset: 0, shape: shape)
    }

    /// Starts a forward and backward that train, with masks keyed by `pass`: trainers derive it from
    /// their state (step, chunk), so a resumed run draws the masks the straight one did.
    public func beginTrainingPass(_ pass: UInt64) {
        self.pass = pass
        training = true
    }

    /// Back to evaluation (no dropout): sampling, old and reference log-probabilities.
    public func endTrainingPass() { training = false }

    /// out = x ⊙ mask / (1 - p): element i is kept when its 16-bit share of the hash of (key, i / 4)
    /// is at least p · 2¹⁶ (one 64-bit hash serves four elements).
    func apply(to x: Tensor, into out: Tensor, stream: UInt64, accumulate: Bool = false) {
        let scale = 1 / (1 - probability)
        let threshold = UInt64((Double(probability) * 65536).rounded())
        let key =
            seed &* 0x9E37_79B9_7F4A_7C15 ^ pass &* 0xC2B2_AE3D_27D4_EB4F ^ stream &* 0x1656_67B1_9E37_79F9
        let (xp, op, count) = (x.pointer, out.pointer, x.count)
        let groups = (count + 3) / 4
        parallelFor(groups, minimumPerTask: 1024) { range in
            for g in range {
                var z = key &+ UInt64(g) &* 0xD6E8_FEB8_6659_FD93
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                for j in 0..<min(4, count - 4 * g) {
                    let i = 4 * g + j
                    let value = (z >> (16 * UInt64(j))) & 0xFFFF >= threshold ? xp[i] * scale : 0
                    op[i] = accumulate ? op[i] + value : value
                }
            }
        }
    }
}

/// The LoRA adapters of a model: their parameters in a `ParameterStore` of their own, under PEFT's
/// tensor names, and one `LoRAAdapter` hung on each adapted module's `Linear`.
///
/// Only these parameters train (AdamW sees this store); the base is frozen. Switching the adapters
/// off gives the base model back, which is the reference policy of the KL term: no second copy.
public final class LoRA {
    public let settings: LoRASettings
    public let parameters: ParameterStore
    let adapters: [LoRAAdapter]
    /// `lora_dropout`'s masks; trainers bracket each gradient pass with it.
    public let dropout: DropoutClock

    /// PEFT's name of a module's LoRA matrix: `base_model.model.<module>.lora_A.weight`.
    static func tensorName(_ module: String, _ matrix: String) -> String {
        "base_model.model.\(module).\(matrix).weight"
    }

    /// Adapters on `model`'s target modules, A initialised as PEFT does (Kaiming-uniform with
    /// a = √5, so U(-1/√in, 1/√in)) from `seed`, B zero: the adapted model starts as the base.
    ///
    /// `modules`, when given, names exactly the modules to adapt (an adapter file's), instead of
    /// the settings' target names.
    public init(model: Transformer, settings: LoRASettings, modules chosen: Set<String>? = nil, seed: UInt64)
        throws
    {
        guard settings.rank >= 1, settings.rank <= 4096 else {
            throw LoRAError.badSetting(key: "lora_r", expected: "a rank from 1 to 4096, got \(settings.rank)")
        }
        guard settings.alpha.isFinite, settings.alpha > 0 else {
            throw LoRAError.badSetting(
                key: "lora_alpha", expected: "a positive number, got \(settings.alpha)")
        }
        guard settings.dropout >= 0, settings.dropout < 1 else {
            throw LoRAError.badSetting(
                key: "lora_dropout", expected: "a probability in [0, 1), got \(settings.dropout)")
        }
        if let targets = settings.targetModules {
            for name in targets where name != "all-linear" && !LoRASettings.projectionNames.contains(name) {
                throw LoRAError.badSetting(
                    key: "lora_target_modules",
                    expected:
                        "module names among \(LoRASettings.projectionNames.joined(separator: ", ")) or all-linear, got '\(name)'"
                )
            }
        }
        self.settings = settings
        let targets = settings.resolvedTargets
        var layout: [(name: String, shape: [Int])] = []
        var placements: [(linear: Linear, module: Linear.Module)] = []
        for layer in model.layers {
            for linear in layer.linears {
                for module in linear.modules
                where targets.contains(where: { module.name.hasSuffix("." + $0) }) {
                    layout.append((Self.tensorName(module.name, "lora_A"), [settings.rank, linear.inputs]))
                    layout.append(
                        (Self.tensorName(module.name, "lora_B"), [module.rows.count, settings.rank]))
                    placements.append((linear, module))
                }
            }
        }
        let store = ParameterStore(layout: layout)
        var rng = SplitMix64(seed: seed)
        for slot in store.slots where slot.name.hasSuffix("lora_A.weight") {
            let bound = 1 / Float(slot.shape[1]).squareRoot()
            let values = store.values.pointer + slot.offset
            for i in 0..<slot.count { values[i] = (rng.nextUniform() * 2 - 1) * bound }
        }
        let scaling = settings.scaling
        let clock = DropoutClock(probability: Float(settings.dropout), seed: seed)
        dropout = clock
        adapters = placements.enumerated().map { index, placement in
            let (linear, module) = placement
            let adapter = LoRAAdapter(
                module: module.name, index: index, rows: module.rows, store: store, scaling: scaling,
                dropout: clock)
            linear.adapters.append(adapter)
            return adapter
        }
        parameters = store
        model.frozenBase = true
        model.lora = self
    }

    /// The adapted module names, in layout order.
    public var modules: [String] { adapters.map(\.module) }

    /// Off, the model computes the base's outputs (for the reference log-probabilities).
    public var enabled: Bool {
        get { adapters.first?.enabled ?? false }
        set { for adapter in adapters { adapter.enabled = newValue } }
    }
}

extension LoRA {
    /// Folds every adapter into its base weight, W[rows] += scaling · B A (PEFT's
    /// `merge_and_unload`), and takes the adapters off the model, which is then a plain model
    /// with the adapted behaviour.
    public func mergeIntoBase(_ model: Transformer) {
        for layer in model.layers {
            for linear in layer.linears {
                for case let adapter as LoRAAdapter in linear.adapters where adapter.enabled {
                    let (r, I) = (adapter.rank, linear.inputs)
                    BLAS.sgemm(
                        transA: false, transB: false, m: adapter.rows.count, n: I, k: r,
                        alpha: adapter.scaling,
                        a: adapter.b.pointer, lda: r, b: adapter.a.pointer, ldb: I, beta: 1,
                        c: linear.weight.pointer + adapter.rows.lowerBound * I, ldc: I)
                }
                linear.adapters.removeAll { $0 is LoRAAdapter }
            }
        }
        model.lora = nil
        model.frozenBase = false
    }
}
