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

/// The low-rank updates of one `Linear`'s adapted modules: for each module m (a row range of the
/// fused matrix), y[:, rows_m] += scaling · (x A_mᵀ) B_mᵀ, with A_m (r, in) and B_m (out_m, r).
///
/// The modules' A matrices are consecutive in the adapter store, so without dropout one matmul
/// gives every module's u = x Aᵀ (q, k and v read x once). The forward keeps U = [u_1 u_2 ...]
/// (N · r per module, a few hundred KiB) for the backward; a backward whose forward input is not
/// the one U came from (another batch size, another buffer) recomputes it.
final class LoRAAdapter: LinearAdapter {
    struct Part {
        let module: String
        /// This module's place among the model's adapted modules, which keys its dropout masks.
        let index: Int
        let rows: Range<Int>
        let a: Tensor  // (r, in)
        let b: Tensor  // (out, r)
        let aName: String
        let bName: String
    }

    let parts: [Part]
    let dropout: DropoutClock
    let store: ParameterStore
    let scaling: Float
    let rank: Int
    let inputs: Int
    /// Every part's A, stacked: (parts · r, in).
    let stackedA: Tensor
    /// Off: the base model alone (the reference policy for the KL term).
    var enabled = true
    /// U of the last forward, with what it was computed from.
    private var saved = TensorStorage(count: 0)
    private var savedFrom: Provenance?
    private var gradientScratch = TensorStorage(count: 0)

    /// Bytes of the buffers this adapter keeps between calls (U for the backward, dU).
    var heldBytes: Int { (saved.count + gradientScratch.count) * MemoryLayout<Float>.stride }

    init(parts: [Part], store: ParameterStore, scaling: Float, dropout: DropoutClock) {
        self.parts = parts
        self.store = store
        self.scaling = scaling
        self.dropout = dropout
        rank = parts[0].a.shape[0]
        inputs = parts[0].a.shape[1]
        stackedA = store.fused(parts.map(\.aName), columns: inputs)
    }

    /// The stacked A's gradient view.
    private var stackedAGradient: Tensor {
        store.fused(parts.map(\.aName), columns: inputs, gradient: true)
    }

    /// U = [dropout_m(x) A_mᵀ]_m, (N, parts · r), into `u`.
    private func project(_ x: Tensor, into u: Tensor) {
        let (N, R) = (x.shape[0], parts.count * rank)
        guard dropout.active else {
            BLAS.sgemm(
                transA: false, transB: true, m: N, n: R, k: inputs, a: x.pointer, lda: inputs,
                b: stackedA.pointer, ldb: inputs, c: u.pointer, ldc: R)
            return
        }
        for (j, part) in parts.enumerated() {
            let xd = dropout.scratch(0, shape: x.shape)
            dropout.apply(to: x, into: xd, stream: UInt64(part.index))
            BLAS.sgemm(
                transA: false, transB: true, m: N, n: rank, k: inputs, a: xd.pointer, lda: inputs,
                b: part.a.pointer, ldb: inputs, c: u.pointer + j * rank, ldc: R)
        }
    }

    /// What a U was computed from: the input buffer and its rows, and the dropout pass.
    private struct Provenance: Equatable {
        let input: UnsafeMutablePointer<Float>
        let rows: Int
        let pass: UInt64?
    }

    private func provenance(_ x: Tensor) -> Provenance {
        Provenance(input: x.pointer, rows: x.shape[0], pass: dropout.active ? dropout.pass : nil)
    }

    func forward(y: Tensor, x: Tensor) {
        guard enabled else { return }
        let (N, R) = (x.shape[0], parts.count * rank)
        let O = y.count / N
        let u = reuse(&saved, shape: [N, R])
        project(x, into: u)
        savedFrom = provenance(x)
        for (j, part) in parts.enumerated() {
            BLAS.sgemm(
                transA: false, transB: true, m: N, n: part.rows.count, k: rank, alpha: scaling,
                a: u.pointer + j * rank, lda: R, b: part.b.pointer, ldb: rank, beta: 1,
                c: y.pointer + part.rows.lowerBound, ldc: O)
        }
    }

    func backward(dX: Tensor?, dY: Tensor, x: Tensor) {
        guard enabled else { return }
        let (N, R) = (x.shape[0], parts.count * rank)
        let O = dY.count / N
        let u = reuse(&saved, shape: [N, R])
        if savedFrom != provenance(x) { project(x, into: u) }
        savedFrom = nil
        let du = reuse(&gradientScratch, shape: [N, R])
        for (j, part) in parts.enumerated() {
            let dYm = dY.pointer + part.rows.lowerBound  // (N, out) with row stride O
            // dB += scaling · dY_mᵀ u_m
            BLAS.sgemm(
                transA: true, transB: false, m: part.rows.count, n: rank, k: N, alpha: scaling, a: dYm,
                lda: O, b: u.pointer + j * rank, ldb: R, beta: 1, c: store.gradient(part.bName).pointer,
                ldc: rank)
            // du_m = scaling · dY_m B_m
            BLAS.sgemm(
                transA: false, transB: false, m: N, n: rank, k: part.rows.count, alpha: scaling, a: dYm,
                lda: O, b: part.b.pointer, ldb: rank, c: du.pointer + j * rank, ldc: R)
        }
        guard dropout.active else {
            // dA += duᵀ x and dX += du A, every part in one matmul each.
            BLAS.sgemm(
                transA: true, transB: false, m: R, n: inputs, k: N, a: du.pointer, lda: R, b: x.pointer,
                ldb: inputs, beta: 1, c: stackedAGradient.pointer, ldc: inputs)
            if let dX {
                BLAS.sgemm(
                    transA: false, transB: false, m: N, n: inputs, k: R, a: du.pointer, lda: R,
                    b: stackedA.pointer, ldb: inputs, beta: 1, c: dX.pointer, ldc: inputs)
            }
            return
        }
        for (j, part) in parts.enumerated() {
            // The same mask as the forward's: it is a function of the pass and position.
            let xd = dropout.scratch(0, shape: x.shape)
            dropout.apply(to: x, into: xd, stream: UInt64(part.index))
            BLAS.sgemm(
                transA: true, transB: false, m: rank, n: inputs, k: N, a: du.pointer + j * rank, lda: R,
                b: xd.pointer, ldb: inputs, beta: 1, c: store.gradient(part.aName).pointer, ldc: inputs)
            guard let dX else { continue }
            // dX += (du_m A_m) ⊙ mask_m: the product goes through the mask x went through.
            let product = dropout.scratch(1, shape: [N, inputs])
            BLAS.sgemm(
                transA: false, transB: false, m: N, n: inputs, k: rank, a: du.pointer + j * rank, lda: R,
                b: part.a.pointer, ldb: inputs, c: product.pointer, ldc: inputs)
            dropout.apply(to: product, into: dX, stream: UInt64(part.index), accumulate: true)
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

    func scratch(_ slot: Int, shape: [Int]) -> Tensor { reuse(&buffers[slot], shape: shape) }

    /// Bytes of the masked-input buffers kept between calls.
    var heldBytes: Int { buffers.reduce(0) { $0 + $1.count * MemoryLayout<Float>.stride } }

    /// Starts a forward and backward that train, with masks keyed by `pass`: trainers derive it from
    /// their state (step, chunk), so a resumed run draws the masks the straight one did.
    public func beginTrainingPass(_ pass: UInt64) {
        self.pass = pass
        training = true
    }

    /// Back to evaluation (no dropout): sampling, old and reference log-probabilities.
    public func endTrainingPass() { training = false }

    /// out = x ⊙ mask / (1 - p): element i is kept when its 16-bit share of the hash of (key, i / 4)
    /// is at least p · 2¹⁶ (one 64-bit hash serves four elements; sixteen elements at a time).
    func apply(to x: Tensor, into out: Tensor, stream: UInt64, accumulate: Bool = false) {
        let scale = 1 / (1 - probability)
        let threshold = UInt64((Double(probability) * 65536).rounded())
        let key =
            seed &* 0x9E37_79B9_7F4A_7C15 ^ pass &* 0xC2B2_AE3D_27D4_EB4F ^ stream &* 0x1656_67B1_9E37_79F9
        let (xp, op, count) = (x.pointer, out.pointer, x.count)
        @inline(__always) func hash(_ group: SIMD4<UInt64>) -> SIMD4<UInt64> {
            var z = SIMD4(repeating: key) &+ group &* 0xD6E8_FEB8_6659_FD93
            z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z &>> 31)
        }
        let blocks = count / 16
        parallelFor(blocks, minimumPerTask: 256) { range in
            for block in range {
                let groups = SIMD4<UInt64>(repeating: UInt64(4 * block)) &+ SIMD4(0, 1, 2, 3)
                // Lane by lane over the hash's sixteen 16-bit shares: a plain loop, which the
                // compiler vectorises (the SIMD types' lane widening stayed a call).
                withUnsafeBytes(of: hash(groups)) { raw in
                    let shares = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
                    let (x, o) = (xp + 16 * block, op + 16 * block)
                    for lane in 0..<16 {
                        let value = UInt64(shares[lane]) >= threshold ? x[lane] * scale : 0
                        o[lane] = accumulate ? o[lane] + value : value
                    }
                }
            }
        }
        for i in (16 * blocks)..<count {
            let z = hash(SIMD4(repeating: UInt64(i / 4)))[0]
            let share = (z >> (16 * UInt64(i % 4))) & 0xFFFF
            let value = share >= threshold ? xp[i] * scale : 0
            op[i] = accumulate ? op[i] + value : value
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
        // Per Linear, its modules' A matrices first (consecutive, so one matmul serves them), then
        // their B matrices.
        var layout: [(name: String, shape: [Int])] = []
        var placements: [(linear: Linear, modules: [Linear.Module])] = []
        for layer in model.layers {
            for linear in layer.linears {
                let chosenModules = linear.modules.filter { module in
                    chosen.map { $0.contains(module.name) }
                        ?? targets.contains(where: { module.name.hasSuffix("." + $0) })
                }
                guard !chosenModules.isEmpty else { continue }
                for module in chosenModules {
                    layout.append((Self.tensorName(module.name, "lora_A"), [settings.rank, linear.inputs]))
                }
                for module in chosenModules {
                    layout.append(
                        (Self.tensorName(module.name, "lora_B"), [module.rows.count, settings.rank]))
                }
                placements.append((linear, chosenModules))
            }
        }
        let store = ParameterStore(layout: layout)
        // A initialised module by module in the model's order.
        var rng = SplitMix64(seed: seed)
        for module in placements.flatMap(\.modules) {
            let slot = store.slot(Self.tensorName(module.name, "lora_A"))!
            let bound = 1 / Float(slot.shape[1]).squareRoot()
            let values = store.values.pointer + slot.offset
            for i in 0..<slot.count { values[i] = (rng.nextUniform() * 2 - 1) * bound }
        }
        let scaling = settings.scaling
        let clock = DropoutClock(probability: Float(settings.dropout), seed: seed)
        dropout = clock
        var index = 0
        adapters = placements.map { linear, modules in
            let parts = modules.map { module in
                defer { index += 1 }
                let (aName, bName) = (
                    Self.tensorName(module.name, "lora_A"), Self.tensorName(module.name, "lora_B")
                )
                return LoRAAdapter.Part(
                    module: module.name, index: index, rows: module.rows, a: store.value(aName),
                    b: store.value(bName), aName: aName, bName: bName)
            }
            let adapter = LoRAAdapter(parts: parts, store: store, scaling: scaling, dropout: clock)
            linear.adapters.append(adapter)
            return adapter
        }
        parameters = store
        model.frozenBase = true
        model.lora = self
    }

    /// The adapted module names, in layout order.
    public var modules: [String] { adapters.flatMap { $0.parts.map(\.module) } }

    /// Bytes the adapters keep between calls: each one's projected input and its gradient, and the
    /// dropout's masked-input buffers.
    public var heldBytes: Int { adapters.reduce(dropout.heldBytes) { $0 + $1.heldBytes } }

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
        precondition(!model.float32WeightsReleased, "merging into a base held in bf16 only")
        for layer in model.layers {
            for linear in layer.linears {
                for case let adapter as LoRAAdapter in linear.adapters where adapter.enabled {
                    for part in adapter.parts {
                        let (r, I) = (adapter.rank, linear.inputs)
                        BLAS.sgemm(
                            transA: false, transB: false, m: part.rows.count, n: I, k: r,
                            alpha: adapter.scaling, a: part.b.pointer, lda: r, b: part.a.pointer, ldb: I,
                            beta: 1, c: linear.weight.pointer + part.rows.lowerBound * I, ldc: I)
                    }
                }
                linear.adapters.removeAll { $0 is LoRAAdapter }
                model.parameters.valuesChanged()
            }
        }
        model.lora = nil
        model.frozenBase = false
    }
}
