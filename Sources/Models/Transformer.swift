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
public final class Transformer {
    public let config: ModelConfig
    public let parameters: ParameterStore
    /// Keep only each layer's input and recompute the rest during backward (less memory, ~1/3 more time).
    public var gradientCheckpointing = false
    /// The folder this model was loaded from; its tokenizer files travel with every save.
    public var sourceFolder: String?

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
    let weights: [LayerWeights]
    private lazy var gradients: [LayerWeights] = (0..<config.numHiddenLayers).map {
        LayerWeights(layer: $0, config: config, store: parameters, gradient: true)
    }
    private var saved: SavedForward?
    /// Buffers of `decodeStep`, reused from step to step (grown when more sequences are live).
    var decodeWorkspace: DecodeWorkspace?
    /// Activation buffers reused across batches (grown when a batch needs more tokens).
    private var pool: [LayerActivations] = []
    private var residualPool: TensorStorage?

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
        if (residualPool?.count ?? 0) < (L + 1) * N * C {
            residualPool = nil
            residualPool = TensorStorage(count: (L + 1) * N * C)
        }
        return (0...L).map { Tensor(storage: residualPool!, offset: $0 * N * C, shape: [N, C]) }
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
        let lse: Tensor  // (M)
    }

    public init(config: ModelConfig, parameters: ParameterStore) {
        precondition(parameters.count == config.parameterCount, "parameter store does not match the config")
        self.config = config
        self.parameters = parameters
        rope = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
        weights = (0..<config.numHiddenLayers).map {
            LayerWeights(layer: $0, config: config, store: parameters, gradient: false)
        }
    }

    var embedding: Tensor { parameters.value("model.embed_tokens.weight") }
    var head: Tensor {
        parameters.value(config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight")
    }
    var headGradient: Tensor {
        parameters.gradient(config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight")
    }

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
        let N = batch.tokenCount
        let C = config.hiddenSize
        let (cos, sin) = ropeTables(positions: batch.sequences.maxLength)
        saved = nil
        let residuals = residualTensors(tokens: N)
        embeddingForward(x: residuals[0], tokens: batch.tokens, table: embedding)
        let layers = activations(gradientCheckpointing ? 1 : config.numHiddenLayers, tokens: N)
        for l in 0..<config.numHiddenLayers {
            layerForward(
                l, x: residuals[l], out: residuals[l + 1], saving: layers[gradientCheckpointing ? 0 : l],
                batch: batch, cos: cos, sin: sin)
        }
        let M = batch.targetRows.count
        let finalRows = gatherRows(residuals.last!, batch.targetRows)
        let (finalNormed, finalRstd) = (Tensor(zeros: [M, C]), Tensor(zeros: [M]))
        rmsNormForward(
            y: finalNormed, rstd: finalRstd, x: finalRows, weight: parameters.value("model.norm.weight"),
            eps: config.rmsNormEps)
        let (logp, lse) = (Tensor(zeros: [M]), Tensor(zeros: [M]))
        logSoftmaxGatherForward(
            logp: logp, lse: lse, hidden: finalNormed, weight: head, targets: batch.targetTokens,
            temperature: temperature)
        saved = SavedForward(
            batch: batch, temperature: temperature, cos: cos, sin: sin, residuals: residuals, layers: layers,
            checkpointed: gradientCheckpointing, finalRows: finalRows, finalNormed: finalNormed,
            finalRstd: finalRstd, lse: lse)
        return logp.toArray()
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
        return forward(batch, temperature: temperature)
    }

    /// Logits (before any temperature) of the packed rows `rows` of `batch`: (rows.count, V).
    public func logits(_ batch: TokenBatch, rows: [Int]) -> [[Float]] {
        let saveCheckpointing = gradientCheckpointing
        gradientCheckpointing = true
        defer { gradientCheckpointing = saveCheckpointing }
        forward(batch)
        let final = gatherRows(saved!.residuals.last!, rows)
        let normed = Tensor(zeros: final.shape)
        rmsNormForward(
            y: normed, rstd: Tensor(zeros: [rows.count]), x: final,
            weight: parameters.value("model.norm.weight"), eps: config.rmsNormEps)
        let out = Tensor(zeros: [rows.count, config.vocabSize])
        linearForward(y: out, x: normed, weight: head)
        saved = nil
        let flat = out.toArray()
        return (0..<rows.count).map { Array(flat[($0 * config.vocabSize)..<(($0 + 1) * config.vocabSize)]) }
    }

    func layerForward(
        _ l: Int, x: Tensor, out: Tensor, saving a: LayerActivations, batch: TokenBatch, cos: [Float],
        sin: [Float]
    ) {
        let w = weights[l]
        let (H, K, D) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim)
        let width = config.heads.qkvWidth
        let N = batch.tokenCount
        rmsNormForward(y: a.normed1, rstd: a.rstd1, x: x, weight: w.inputNorm, eps: config.rmsNormEps)
        linearForward(y: a.qkv, x: a.normed1, weight: w.qkv, bias: w.qkvBias)
        if let qNorm = w.qNorm, let kNorm = w.kNorm, let raw = a.qkvRaw {
            raw.copy(from: a.qkv)
            headRMSNormForward(
                y: a.qkv, rstd: a.rstdQ!, x: raw, weight: qNorm, eps: config.rmsNormEps, rows: N,
                rowStride: width, column: 0, heads: H)
            headRMSNormForward(
                y: a.qkv, rstd: a.rstdK!, x: raw, weight: kNorm, eps: config.rmsNormEps, rows: N,
                rowStride: width, column: H * D, heads: K)
        }
        ropeForward(
            x: a.qkv, rowStride: width, heads: H + K, headDim: D, positions: batch.sequences.positions,
            cos: cos, sin: sin)
        attentionForward(
            out: a.attention, lse: a.lse, qkv: a.qkv, sequences: batch.sequences, heads: config.heads,
            scale: 1 / Float(D).squareRoot())
        linearForward(y: a.middle, x: a.attention, weight: w.output, bias: w.outputBias)
        a.middle.add(x)
        rmsNormForward(y: a.normed2, rstd: a.rstd2, x: a.middle, weight: w.postNorm, eps: config.rmsNormEps)
        linearForward(y: a.gateUp, x: a.normed2, weight: w.gateUp)
        swigluForward(h: a.hidden, gateUp: a.gateUp)
        linearForward(y: out, x: a.hidden, weight: w.down)
        out.add(a.middle)
    }

    // MARK: - Backward

    /// Adds d(Σ_t dLogp[t] · logp[t]) / dθ to `parameters.gradients`, for the last `forward`.
    public func backward(dLogp: [Float]) {
        guard let s = saved else { preconditionFailure("backward without a forward") }
        let batch = s.batch
        precondition(
            dLogp.count == batch.targetRows.count,
            "\(dLogp.count) gradients for \(batch.targetRows.count) targets")
        let (N, C, M) = (batch.tokenCount, config.hiddenSize, batch.targetRows.count)
        _ = gradients
        let dNormed = Tensor(zeros: [M, C])
        logSoftmaxGatherBackward(
            dHidden: dNormed, dWeight: headGradient, dLogp: dLogp, hidden: s.finalNormed,
            weight: head, targets: batch.targetTokens, lse: s.lse, temperature: s.temperature)
        let dRows = Tensor(zeros: [M, C])
        rmsNormBackward(
            dX: dRows, dWeight: parameters.gradient("model.norm.weight"), dY: dNormed, x: s.finalRows,
            weight: parameters.value("model.norm.weight"), rstd: s.finalRstd)
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
                    l, x: s.residuals[l], out: scratch.output, saving: recompute, batch: batch, cos: s.cos,
                    sin: s.sin)
                activations = recompute
            } else {
                activations = s.layers[l]
            }
            layerBackward(
                l, dX: dX, x: s.residuals[l], saved: activations, scratch: scratch, batch: batch,
                cos: s.cos, sin: s.sin)
        }
        embeddingBackward(
            dTable: parameters.gradient("model.embed_tokens.weight"), dX: dX, tokens: batch.tokens)
    }

    /// dX holds d/d(layer output) on entry and d/d(layer input) on return.
    private func layerBackward(
        _ l: Int, dX: Tensor, x: Tensor, saved a: LayerActivations, scratch: LayerScratch, batch: TokenBatch,
        cos: [Float], sin: [Float]
    ) {
        let (w, g) = (weights[l], gradients[l])
        let (H, K, D) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim)
        let width = config.heads.qkvWidth
        let N = batch.tokenCount
        linearBackward(dX: scratch.dHidden, dWeight: g.down, dY: dX, x: a.hidden, weight: w.down)
        swigluBackward(dGateUp: scratch.dGateUp, dH: scratch.dHidden, gateUp: a.gateUp)
        linearBackward(
            dX: scratch.dNormed, dWeight: g.gateUp, dY: scratch.dGateUp, x: a.normed2, weight: w.gateUp)
        rmsNormBackward(
            dX: dX, accumulate: true, dWeight: g.postNorm, dY: scratch.dNormed, x: a.middle,
            weight: w.postNorm, rstd: a.rstd2)
        linearBackward(
            dX: scratch.dAttention, dWeight: g.output, dBias: g.outputBias, dY: dX, x: a.attention,
            weight: w.output)
        attentionBackward(
            dQKV: scratch.dQKV, dOut: scratch.dAttention, out: a.attention, lse: a.lse, qkv: a.qkv,
            sequences: batch.sequences, heads: config.heads, scale: 1 / Float(D).squareRoot())
        ropeBackward(
            dX: scratch.dQKV, rowStride: width, heads: H + K, headDim: D,
            positions: batch.sequences.positions,
            cos: cos, sin: sin)
        if let qNorm = w.qNorm, let kNorm = w.kNorm, let raw = a.qkvRaw {
            headRMSNormBackward(
                dX: scratch.dQKV, dWeight: g.qNorm!, dY: scratch.dQKV, x: raw, weight: qNorm,
                rstd: a.rstdQ!, rows: N, rowStride: width, column: 0, heads: H)
            headRMSNormBackward(
                dX: scratch.dQKV, dWeight: g.kNorm!, dY: scratch.dQKV, x: raw, weight: kNorm,
                rstd: a.rstdK!, rows: N, rowStride: width, column: H * D, heads: K)
        }
        linearBackward(
            dX: scratch.dNormed, dWeight: g.qkv, dBias: g.qkvBias, dY: scratch.dQKV, x: a.normed1,
            weight: w.qkv)
        rmsNormBackward(
            dX: dX, accumulate: true, dWeight: g.inputNorm, dY: scratch.dNormed, x: x, weight: w.inputNorm,
            rstd: a.rstd1)
    }

    /// Drops what the last forward kept for backward (after inference-only use).
    public func releaseSavedActivations() { saved = nil }

    /// Bytes of activations the last forward kept for backward.
    public var savedActivationBytes: Int {
        guard let s = saved else { return 0 }
        return (residualPool?.count ?? 0) * 4 + s.layers.reduce(0) { $0 + $1.byteCount }
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
