import Foundation
import Tensors

// Legend: N packed tokens, M scored targets, C hidden, F MLP hidden, V vocab, H/K query/kv heads, D head dim.

/// Errors in what a caller asks of a model (token ids, lengths), as opposed to programmer errors.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case tokenOutOfRange(id: Int32, vocabSize: Int)
    case sequenceTooLong(length: Int, limit: Int, reason: String)
    case emptySequence

    public var description: String {
        switch self {
        case .tokenOutOfRange(let id, let vocabSize):
            "token id \(id) is outside the vocabulary 0..<\(vocabSize)"
        case .sequenceTooLong(let length, let limit, let reason):
            "a sequence of \(length) tokens exceeds \(reason) (\(limit))"
        case .emptySequence: "a sequence has no tokens"
        }
    }
}

/// A decoder-only transformer (Llama, Qwen2, Qwen3, Mistral) with the training interface.
///
/// Every loss goes through these two calls:
///
///     let logp = model.forward(batch, temperature: 0.7)   // log p of each target token
///     model.backward(dLogp: weights)                      // parameters.gradients += d(Σ w·logp)/dθ
///
/// Forward is transformers' `LlamaForCausalLM` (and siblings) in float32: embed, then per layer
/// x += o(attn(rope(norm_qk(qkv(rms(x)))))); x += down(silu(gate(rms(x))) * up(rms(x))), then the
/// final norm and lm_head (or the tied embedding), with logits made a chunk of rows at a time.
/// Heads other than lm_head (a value head, a classifier) use `forwardHidden` and
/// `backward(dHidden:)`, which stop at the final norm's output.
///
/// One layer body (`layerForward`) serves training, prefill and decoding; each projection is a
/// `Linear`, which carries its frozen flag, precision and adapters.
public final class Transformer {
    public let config: ModelConfig
    public let parameters: ParameterStore
    /// lm_head (log-probs through `forward`), or a score head (`forwardScores`).
    public let outputHead: OutputHead
    /// Keep only each layer's input and recompute the rest during backward (less memory, ~1/3 more time).
    public var gradientCheckpointing = false
    /// Up to this many bytes of bf16 softmax numerators are kept for the lm_head's backward
    /// (`SoftmaxNumerators`); a batch needing more recomputes its logits there instead.
    public var keptSoftmaxLimitBytes = 512 << 20
    private let softmaxNumerators = SoftmaxNumerators()
    /// Called by `backward` after each decoder layer's backward, from the last layer down.
    ///
    /// With the layer's index: that layer's parameter gradients (and the adapters' on it) are then
    /// complete for the pass, as are the final norm's and an untied lm_head's; the embedding's come
    /// last. A data-parallel trainer starts summing them across ranks here, while the layers below run.
    public var afterLayerBackward: ((Int) -> Void)?
    /// The folder this model was loaded from; its tokenizer files travel with every save.
    public var sourceFolder: String?
    /// The decoder layers, each with its projections.
    public let layers: [DecoderLayer]
    /// The LoRA adapters on this model's projections, if any (`LoRA.init` attaches them).
    public internal(set) var lora: LoRA?
    /// What an optimizer updates: the adapters' parameters when there are any, else every parameter.
    public var trainableParameters: ParameterStore { lora?.parameters ?? parameters }
    /// Freezes every base parameter (projections, norms, embeddings, lm_head): backward then
    /// computes input gradients only, for adapters, and never allocates the base's gradient buffer.
    public var frozenBase = false {
        didSet {
            for linear in layers.flatMap(\.linears) { linear.frozen = frozenBase }
            if !float32WeightsReleased && outputHead == .languageModel {
                headCopy.layouts = frozenBase ? .rowMajor : [.rowMajor, .packed]
            }
        }
    }
    /// The decoder layers' projections' matmul precision (the embedding, norms, attention, lm_head
    /// and log-softmax stay float32).
    public var precision = LinearPrecision.float32 {
        didSet {
            for linear in layers.flatMap(\.linears) { linear.precision = precision }
            if precision == .float32 && outputHead == .languageModel { headCopy.release() }
        }
    }
    /// Whether some weights are held in bf16 only (`holdFrozenWeightsInBF16`): the model can run but
    /// not be saved or trained in float32.
    public var float32WeightsReleased: Bool {
        layers.contains { $0.linears.contains(where: \.float32Released) }
    }

    /// Bytes this model's weights hold now: the float32 parameters (less what bf16-only layers
    /// gave back), their bf16 copies and lm_head's, and the adapters' parameters.
    public var weightBytes: Int {
        let linears = layers.flatMap(\.linears)
        let released = linears.filter(\.float32Released).reduce(0) { $0 + $1.outputs * $1.inputs }
        let untiedHeadReleased = float32WeightsReleased && !config.tieWordEmbeddings ? head.count : 0
        let headCopyBytes = outputHead == .languageModel ? headCopy.bytes : 0
        return 4 * (parameters.count - released - untiedHeadReleased)
            + linears.reduce(0) { $0 + $1.extraBytes }
            + headCopyBytes + 4 * (lora?.parameters.count ?? 0)
    }

    /// Keeps every frozen bf16 projection in bf16 only, halving its weights' memory.
    ///
    /// For the reference model, a LoRA base (`backward`: gradients flow through it), a model that
    /// only samples or scores. The embedding and norms, which are read in float32, stay; an untied
    /// lm_head goes too, since bf16 reads only its copy.
    public func holdFrozenWeightsInBF16(backward: Bool) {
        precondition(
            frozenBase && precision == .bf16, "only a frozen bf16 model can drop its float32 weights")
        for linear in layers.flatMap(\.linears) { linear.holdInBF16Only(backward: backward) }
        if !config.tieWordEmbeddings {
            headCopy.pin(backward ? .rowMajor : .packed)
            discardPages(head.pointer, count: head.count)
        } else if !backward {
            headCopy.layouts = .packed
        }
    }

    /// y (N, V) = x (N, C) lm_headᵀ, through the bf16 copy when `precision` is bf16.
    func headForward(y: Tensor, x: Tensor) {
        if let headBF16 {
            linearForwardBF16(y: y, x: x, weight: headBF16)
        } else {
            linearForward(y: y, x: x, weight: head)
        }
    }

    /// lm_head (or the tied embedding) in bf16, when `precision` is bf16.
    private lazy var headCopy = BFloat16Copy(of: head, in: parameters)
    var headBF16: BFloat16Weight? { precision == .bf16 ? headCopy.value : nil }

    let rope: RotaryEmbedding
    /// cos / sin tables for positions 0..<count, grown by doubling (decoding asks every step).
    private var ropeTables: (cos: [Float], sin: [Float], count: Int) = ([], [], 0)

    /// RoPE tables covering positions 0..<positions (possibly more).
    func ropeTables(positions: Int) -> (cos: [Float], sin: [Float]) {
        if ropeTables.count < positions {
            let count = max(positions, 2 * ropeTables.count, 64)
            let (cos, sin) = rope.tables(positions: count)
            ropeTables = (cos, sin, count)
        }
        return (ropeTables.cos, ropeTables.sin)
    }
    private var saved: SavedForward?
    /// Buffers of `decodeStep`, reused from step to step (grown when more sequences are live).
    var decodeWorkspace: DecodeWorkspace?
    /// Activation buffers reused across batches (grown when a batch needs more tokens).
    private var pool: [LayerActivations] = []
    private var residualPool = TensorStorage(count: 0)

    /// `count` activation sets for N tokens, reusing the pool's buffers when they are big enough.
    func activations(_ count: Int, tokens N: Int) -> [LayerActivations] {
        if pool.count < count || (pool.first?.capacity ?? 0) < N {
            let capacity = max(N, pool.first?.capacity ?? 0)
            pool = []  // free the old buffers before allocating the new ones
            pool = (0..<count).map { _ in LayerActivations(capacity: capacity, config: config) }
        }
        let result = Array(pool.prefix(count))
        for a in result { a.bind(tokens: N) }
        return result
    }

    /// L+1 residual-stream tensors of (N, C), from a reused buffer.
    private func residualTensors(tokens N: Int) -> [Tensor] {
        let (C, L) = (config.hiddenSize, config.numHiddenLayers)
        let pool = reuse(&residualPool, shape: [L + 1, N, C])
        return (0...L).map { Tensor(storage: pool.storage, offset: $0 * N * C, shape: [N, C]) }
    }

    /// Everything `backward` needs from the last `forward`.
    private struct SavedForward {
        let batch: TokenBatch
        let temperature: Float
        let cos: [Float]
        let sin: [Float]
        /// Layer l's input at l, the last layer's output at L; (N, C) each.
        let residuals: [Tensor]
        /// Per layer, or one scratch set under gradient checkpointing.
        let layers: [LayerActivations]
        let checkpointed: Bool
        let finalRows: Tensor  // (M, C) residual rows of the targets
        let finalNormed: Tensor  // (M, C)
        let finalRstd: Tensor  // (M)
        let lse: Tensor?  // (M), when the lm_head ran
        let numerators: SoftmaxNumerators?  // the lm_head's softmax, when kept
    }

    public init(config: ModelConfig, parameters: ParameterStore, head: OutputHead = .languageModel) {
        precondition(
            parameters.slots.map(\.name) == config.parameterLayout(head: head).map(\.name)
                && parameters.count
                    == config.parameterLayout(head: head).reduce(0) { $0 + $1.shape.reduce(1, *) },
            "parameter store does not match the config")
        self.config = config
        self.parameters = parameters
        outputHead = head
        rope = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
        layers = (0..<config.numHiddenLayers).map {
            DecoderLayer(layer: $0, config: config, store: parameters)
        }
    }

    var embedding: Tensor { parameters.value("model.embed_tokens.weight") }
    var headName: String { config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight" }
    var head: Tensor { parameters.value(headName) }

    /// Checks ids and lengths before any work starts.
    public func validate(_ batch: TokenBatch) throws {
        if let bad = batch.tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw ModelError.tokenOutOfRange(id: bad, vocabSize: config.vocabSize)
        }
        let longest = batch.sequences.maxLength
        if longest > config.maxPositionEmbeddings {
            throw ModelError.sequenceTooLong(
                length: longest, limit: config.maxPositionEmbeddings, reason: "max_position_embeddings")
        }
        if let window = config.slidingWindow, longest > window {
            throw ModelError.sequenceTooLong(
                length: longest, limit: window,
                reason: "Mistral's sliding_window, which this engine does not implement")
        }
    }

    // MARK: - Forward

    /// Log-probabilities of `batch`'s target tokens under softmax(logits / temperature): (M).
    @discardableResult
    public func forward(_ batch: TokenBatch, temperature: Float = 1) -> [Float] {
        forward(batch, temperature: temperature, backwardFollows: true)
    }

    private func forward(_ batch: TokenBatch, temperature: Float, backwardFollows: Bool) -> [Float] {
        precondition(
            outputHead == .languageModel, "log-probs need lm_head; this is a score model (forwardScores)")
        let (finalRows, finalNormed, finalRstd, residuals, layers, cos, sin) = trunkForward(batch)
        let M = batch.targetRows.count
        let (logp, lse) = (Tensor(zeros: [M]), Tensor(zeros: [M]))
        // bf16 keeps the softmax numerators, so the backward skips a second lm_head matmul; float32
        // recomputes the logits (a float32 copy would take twice the memory).
        let keep = backwardFollows && headBF16 != nil && 2 * M * config.vocabSize <= keptSoftmaxLimitBytes
        logSoftmaxGatherForward(
            logp: logp, lse: lse, hidden: finalNormed, weight: head, weightBF16: headBF16,
            targets: batch.targetTokens, temperature: temperature, keeping: keep ? softmaxNumerators : nil)
        saved = SavedForward(
            batch: batch, temperature: temperature, cos: cos, sin: sin, residuals: residuals, layers: layers,
            checkpointed: gradientCheckpointing, finalRows: finalRows, finalNormed: finalNormed,
            finalRstd: finalRstd, lse: lse, numerators: keep ? softmaxNumerators : nil)
        return logp.toArray()
    }

    /// The final norm's output at `batch`'s target rows, (M, C).
    ///
    /// It is what any head reads (lm_head, a value head, a classifier's score);
    /// `backward(dHidden:)` takes its gradient.
    public func forwardHidden(_ batch: TokenBatch) -> Tensor {
        let (finalRows, finalNormed, finalRstd, residuals, layers, cos, sin) = trunkForward(batch)
        saved = SavedForward(
            batch: batch, temperature: 1, cos: cos, sin: sin, residuals: residuals, layers: layers,
            checkpointed: gradientCheckpointing, finalRows: finalRows, finalNormed: finalNormed,
            finalRstd: finalRstd, lse: nil, numerators: nil)
        return finalNormed
    }

    /// Embedding, every layer, and the final norm at the target rows.
    private func trunkForward(_ batch: TokenBatch) -> (
        finalRows: Tensor, finalNormed: Tensor, finalRstd: Tensor, residuals: [Tensor],
        layers: [LayerActivations], cos: [Float], sin: [Float]
    ) {
        let N = batch.tokenCount
        let C = config.hiddenSize
        let (cos, sin) = ropeTables(positions: batch.sequences.maxLength)
        saved = nil
        let residuals = residualTensors(tokens: N)
        embeddingForward(x: residuals[0], tokens: batch.tokens, table: embedding)
        let activations = activations(gradientCheckpointing ? 1 : config.numHiddenLayers, tokens: N)
        for l in 0..<config.numHiddenLayers {
            layerForward(
                l, x: residuals[l], out: residuals[l + 1], into: activations[gradientCheckpointing ? 0 : l],
                positions: batch.sequences.positions, cos: cos, sin: sin, attention: .packed(batch.sequences))
        }
        let M = batch.targetRows.count
        let finalRows = gatherRows(residuals.last!, batch.targetRows)
        let (finalNormed, finalRstd) = (Tensor(zeros: [M, C]), Tensor(zeros: [M]))
        rmsNormForward(
            y: finalNormed, rstd: finalRstd, x: finalRows, weight: parameters.value("model.norm.weight"),
            eps: config.rmsNormEps)
        return (finalRows, finalNormed, finalRstd, residuals, activations, cos, sin)
    }

    /// Log-probabilities of `batch`'s targets without keeping anything for backward: one layer's
    /// activations at a time (a reference model, or old log-probs, need no more).
    public func logProbabilities(_ batch: TokenBatch, temperature: Float = 1) -> [Float] {
        let saveCheckpointing = gradientCheckpointing
        gradientCheckpointing = true
        defer {
            gradientCheckpointing = saveCheckpointing
            saved = nil
        }
        return forward(batch, temperature: temperature, backwardFollows: false)
    }

    /// Logits (before any temperature) of the packed rows `rows` of `batch`: (rows.count, V).
    public func logits(_ batch: TokenBatch, rows: [Int]) -> [[Float]] {
        let saveCheckpointing = gradientCheckpointing
        gradientCheckpointing = true
        defer { gradientCheckpointing = saveCheckpointing }
        _ = forward(batch, temperature: 1, backwardFollows: false)
        let final = gatherRows(saved!.residuals.last!, rows)
        let normed = Tensor(zeros: final.shape)
        rmsNormForward(
            y: normed, rstd: Tensor(zeros: [rows.count]), x: final,
            weight: parameters.value("model.norm.weight"), eps: config.rmsNormEps)
        let out = Tensor(zeros: [rows.count, config.vocabSize])
        headForward(y: out, x: normed)
        saved = nil
        let flat = out.toArray()
        return (0..<rows.count).map { Array(flat[($0 * config.vocabSize)..<(($0 + 1) * config.vocabSize)]) }
    }

    /// How a layer's attention finds its keys and values.
    enum AttentionPass {
        /// Packed sequences attending to themselves (training, scoring, prefill); with caches,
        /// prompt p's keys and values are also stored in `caches[p]`.
        case packed(PackedSequences, caches: [KVCache]? = nil)
        /// One new token per sequence, attending to its cache and stored in it (decoding).
        case decode([KVCache])
    }

    /// The layer body every path runs: x (N, C) -> out (N, C), writing `a` (backward reads it).
    func layerForward(
        _ l: Int, x: Tensor, out: Tensor, into a: LayerActivations, positions: [Int32], cos: [Float],
        sin: [Float], attention pass: AttentionPass
    ) {
        let layer = layers[l]
        let (H, K, D) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim)
        let width = config.heads.qkvWidth
        let N = positions.count
        let (normed1, qkv, attention, middle, normed2) = (
            a[.normed1], a[.qkv], a[.attention], a[.middle], a[.normed2]
        )
        rmsNormForward(y: normed1, rstd: a[.rstd1], x: x, weight: layer.inputNorm, eps: config.rmsNormEps)
        layer.qkv.forward(y: qkv, x: normed1)
        if let qNorm = layer.qNorm, let kNorm = layer.kNorm, let raw = a.optional(.qkvRaw) {
            raw.copy(from: qkv)
            headRMSNormForward(
                y: qkv, rstd: a[.rstdQ], x: raw, weight: qNorm, eps: config.rmsNormEps, rows: N,
                rowStride: width, column: 0, heads: H)
            headRMSNormForward(
                y: qkv, rstd: a[.rstdK], x: raw, weight: kNorm, eps: config.rmsNormEps, rows: N,
                rowStride: width, column: H * D, heads: K)
        }
        ropeForward(
            x: qkv, rowStride: width, heads: H + K, headDim: D, positions: positions, cos: cos, sin: sin)
        let scale = 1 / Float(D).squareRoot()
        switch pass {
        case .packed(let sequences, let caches):
            attentionForward(
                out: attention, lse: a[.lse], qkv: qkv, sequences: sequences, heads: config.heads,
                scale: scale, bf16: precision == .bf16)
            for (p, cache) in (caches ?? []).enumerated() {
                cache.write(
                    layer: l, at: 0, qkv: qkv, qkvRow: sequences.offsets[p], count: sequences.lengths[p],
                    keyColumn: H * D)
            }
        case .decode(let caches):
            for (b, cache) in caches.enumerated() {
                cache.write(layer: l, at: cache.length, qkv: qkv, qkvRow: b, count: 1, keyColumn: H * D)
            }
            let lengths = caches.map { $0.length + 1 }
            attentionDecode(
                out: attention, q: qkv, keys: caches.map { UnsafeRawPointer($0.keys(l)) },
                values: caches.map { UnsafeRawPointer($0.values(l)) }, elements: caches[0].elements,
                lengths: lengths, heads: config.heads, scale: scale, qRowStride: width)
        }
        layer.output.forward(y: middle, x: attention)
        middle.add(x)
        rmsNormForward(y: normed2, rstd: a[.rstd2], x: middle, weight: layer.postNorm, eps: config.rmsNormEps)
        layer.gateUp.forward(y: a[.gateUp], x: normed2)
        swigluForward(h: a[.hidden], gateUp: a[.gateUp])
        layer.down.forward(y: out, x: a[.hidden])
        out.add(middle)
    }

    // MARK: - Backward

    /// Adds d(Σ_t dLogp[t] · logp[t]) / dθ to `parameters.gradients`, for the last `forward`.
    public func backward(dLogp: [Float]) {
        guard let s = saved, let lse = s.lse else {
            preconditionFailure("backward(dLogp:) without a forward")
        }
        let batch = s.batch
        precondition(
            dLogp.count == batch.targetRows.count,
            "\(dLogp.count) gradients for \(batch.targetRows.count) targets")
        let (M, C) = (batch.targetRows.count, config.hiddenSize)
        let dNormed = Tensor(zeros: [M, C])
        logSoftmaxGatherBackward(
            dHidden: dNormed, dWeight: frozenBase ? nil : parameters.gradient(headName), dLogp: dLogp,
            hidden: s.finalNormed, weight: head, weightBF16: headBF16, targets: batch.targetTokens, lse: lse,
            temperature: s.temperature, numerators: s.numerators)
        trunkBackward(s, dNormed: dNormed)
    }

    /// Adds d(Σ dHidden ⊙ hidden) / dθ for the `hidden` the last `forwardHidden` (or `forward`)
    /// returned or used: how a head other than lm_head trains the model under it.
    public func backward(dHidden: Tensor) {
        guard let s = saved else { preconditionFailure("backward(dHidden:) without a forward") }
        precondition(
            dHidden.shape == s.finalNormed.shape, "dHidden \(dHidden.shape) for \(s.finalNormed.shape)")
        trunkBackward(s, dNormed: dHidden)
    }

    /// From the final norm's output gradient (M, C) down to the embedding.
    private func trunkBackward(_ s: SavedForward, dNormed: Tensor) {
        let batch = s.batch
        let (N, C, M) = (batch.tokenCount, config.hiddenSize, batch.targetRows.count)
        let dRows = Tensor(zeros: [M, C])
        rmsNormBackward(
            dX: dRows, dWeight: frozenBase ? nil : parameters.gradient("model.norm.weight"), dY: dNormed,
            x: s.finalRows, weight: parameters.value("model.norm.weight"), rstd: s.finalRstd)
        let dX = Tensor(zeros: [N, C])
        for (t, row) in batch.targetRows.enumerated() {
            dX.view(offset: row * C, shape: [C]).add(dRows.view(offset: t * C, shape: [C]))
        }
        let scratch = LayerScratch(tokens: N, config: config)
        let recompute = s.checkpointed ? s.layers[0] : nil
        for l in stride(from: config.numHiddenLayers - 1, through: 0, by: -1) {
            let activations: LayerActivations
            if let recompute {
                layerForward(
                    l, x: s.residuals[l], out: scratch.output, into: recompute,
                    positions: batch.sequences.positions,
                    cos: s.cos, sin: s.sin, attention: .packed(batch.sequences))
                activations = recompute
            } else {
                activations = s.layers[l]
            }
            layerBackward(
                l, dX: dX, x: s.residuals[l], saved: activations, scratch: scratch, batch: batch,
                cos: s.cos, sin: s.sin)
            afterLayerBackward?(l)
        }
        if !frozenBase {
            embeddingBackward(
                dTable: parameters.gradient("model.embed_tokens.weight"), dX: dX, tokens: batch.tokens)
        }
    }

    /// dX holds d/d(layer output) on entry and d/d(layer input) on return.
    private func layerBackward(
        _ l: Int, dX: Tensor, x: Tensor, saved a: LayerActivations, scratch: LayerScratch, batch: TokenBatch,
        cos: [Float], sin: [Float]
    ) {
        let layer = layers[l]
        let (H, K, D) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim)
        let width = config.heads.qkvWidth
        let N = batch.tokenCount
        let normGradient = { (name: String) in self.frozenBase ? nil : layer.normGradient(name) }
        layer.down.backward(dX: scratch.dHidden, dY: dX, x: a[.hidden])
        swigluBackward(dGateUp: scratch.dGateUp, dH: scratch.dHidden, gateUp: a[.gateUp])
        layer.gateUp.backward(dX: scratch.dNormed, dY: scratch.dGateUp, x: a[.normed2])
        rmsNormBackward(
            dX: dX, accumulate: true, dWeight: normGradient("post_attention_layernorm.weight"),
            dY: scratch.dNormed, x: a[.middle], weight: layer.postNorm, rstd: a[.rstd2])
        layer.output.backward(dX: scratch.dAttention, dY: dX, x: a[.attention])
        attentionBackward(
            dQKV: scratch.dQKV, dOut: scratch.dAttention, out: a[.attention], lse: a[.lse], qkv: a[.qkv],
            sequences: batch.sequences, heads: config.heads, scale: 1 / Float(D).squareRoot(),
            bf16: precision == .bf16)
        ropeBackward(
            dX: scratch.dQKV, rowStride: width, heads: H + K, headDim: D,
            positions: batch.sequences.positions,
            cos: cos, sin: sin)
        if let qNorm = layer.qNorm, let kNorm = layer.kNorm, let raw = a.optional(.qkvRaw) {
            headRMSNormBackward(
                dX: scratch.dQKV, dWeight: normGradient("self_attn.q_norm.weight"), dY: scratch.dQKV, x: raw,
                weight: qNorm, rstd: a[.rstdQ], rows: N, rowStride: width, column: 0, heads: H)
            headRMSNormBackward(
                dX: scratch.dQKV, dWeight: normGradient("self_attn.k_norm.weight"), dY: scratch.dQKV, x: raw,
                weight: kNorm, rstd: a[.rstdK], rows: N, rowStride: width, column: H * D, heads: K)
        }
        layer.qkv.backward(dX: scratch.dNormed, dY: scratch.dQKV, x: a[.normed1])
        rmsNormBackward(
            dX: dX, accumulate: true, dWeight: normGradient("input_layernorm.weight"), dY: scratch.dNormed,
            x: x,
            weight: layer.inputNorm, rstd: a[.rstd1])
    }

    /// Drops what the last forward kept for backward (after inference-only use).
    public func releaseSavedActivations() { saved = nil }

    /// The final norm's output the last forward kept, (M, C), or nil.
    var savedHidden: Tensor? { saved?.finalNormed }

    /// Bytes of the activation buffers a forward over `tokens` packed tokens holds: the residual
    /// stream and `layers` per-layer sets (all of them for training, 1 under gradient
    /// checkpointing or without gradients).
    public static func activationBytes(config: ModelConfig, tokens: Int, layers: Int) -> Int {
        let width = LayerActivations.Buffer.allCases.reduce(0) { $0 + $1.width(config) }
        return 4 * tokens * ((config.numHiddenLayers + 1) * config.hiddenSize + layers * width)
    }

    /// Bytes of activation buffers this model holds between passes (they are reused): the
    /// residual stream, the per-layer sets, the bf16 softmax numerators, and the LoRA adapters'
    /// kept buffers.
    public var heldActivationBytes: Int {
        residualPool.count * 4 + pool.reduce(0) { $0 + $1.byteCount } + softmaxNumerators.bytes
            + (lora?.heldBytes ?? 0)
    }

    /// Bytes a backward over `tokens` packed tokens allocates while it runs: the gradient of the
    /// residual stream and the layer scratch every layer's backward reuses.
    public static func backwardScratchBytes(config: ModelConfig, tokens: Int) -> Int {
        let c = config
        return 4 * tokens
            * (3 * c.intermediateSize + 3 * c.hiddenSize + c.numAttentionHeads * c.headDim + c.heads.qkvWidth)
    }

    /// `backwardScratchBytes` for the most tokens this model's activation buffers have held.
    public var backwardScratchBytes: Int {
        Self.backwardScratchBytes(config: config, tokens: pool.map(\.capacity).max() ?? 0)
    }

    /// Bytes of activations the last forward kept for backward.
    public var savedActivationBytes: Int {
        guard let s = saved else { return 0 }
        return residualPool.count * 4 + s.layers.reduce(0) { $0 + $1.byteCount } + (s.numerators?.bytes ?? 0)
    }
}

/// Gradient buffers reused by every layer's backward.
private final class LayerScratch {
    let dHidden, dGateUp, dNormed, dAttention, dQKV, output: Tensor
    init(tokens N: Int, config: ModelConfig) {
        dHidden = Tensor(zeros: [N, config.intermediateSize])
        dGateUp = Tensor(zeros: [N, 2 * config.intermediateSize])
        dNormed = Tensor(zeros: [N, config.hiddenSize])
        dAttention = Tensor(zeros: [N, config.numAttentionHeads * config.headDim])
        dQKV = Tensor(zeros: [N, config.heads.qkvWidth])
        output = Tensor(zeros: [N, config.hiddenSize])
    }
}

/// Rows `rows` of x (R, C), copied into a new (rows.count, C) tensor.
private func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor {
    let C = x.shape[1]
    let result = Tensor(zeros: [rows.count, C])
    for (i, row) in rows.enumerated() {
        result.view(offset: i * C, shape: [C]).copy(from: x.view(offset: row * C, shape: [C]))
    }
    return result
}
