import Tensors

// Legend: P prompts, B live sequences (one new token each), C hidden, V vocab.

extension Transformer {
    /// Runs prompts (packed, any lengths) through the model once, filling a new KV cache for each.
    ///
    /// - Returns: the logits of each prompt's last token, (P, V), and the caches, whose capacity
    ///   is `capacity[p]` tokens (prompt plus the room left for generation).
    public func prefill(_ prompts: [[Int32]], capacity: [Int]) -> (logits: Tensor, caches: [KVCache]) {
        let batch = TokenBatch(sequences: prompts, scored: prompts.map { $0.map { _ in false } })
        let N = batch.tokenCount
        let C = config.hiddenSize
        let caches = zip(prompts, capacity).map { prompt, room in
            precondition(
                room >= prompt.count, "cache capacity \(room) below the prompt's \(prompt.count) tokens")
            return KVCache(
                layers: config.numHiddenLayers, width: config.numKeyValueHeads * config.headDim,
                capacity: room, elements: cacheElements)
        }
        let (cos, sin) = ropeTables(positions: batch.sequences.maxLength)
        var x = Tensor(zeros: [N, C])
        var next = Tensor(zeros: [N, C])
        embeddingForward(x: x, tokens: batch.tokens, table: embedding)
        let scratch = LayerActivations(capacity: N, config: config)
        for l in 0..<config.numHiddenLayers {
            layerForward(
                l, x: x, out: next, into: scratch, positions: batch.sequences.positions, cos: cos, sin: sin,
                attention: .packed(batch.sequences, caches: caches))
            swap(&x, &next)
        }
        for (p, cache) in caches.enumerated() { cache.advance(by: prompts[p].count) }
        let lastRows = (0..<prompts.count).map { batch.sequences.offsets[$0 + 1] - 1 }
        return (finalLogits(x, rows: lastRows), caches)
    }

    /// What this model's KV caches hold: bf16 for a bf16 model (what its bf16 matmuls produced,
    /// rounded; half the bytes decoding reads), else float32.
    public var cacheElements: CacheElements {
        CacheElements.forHeads(dim: config.headDim, bf16: precision == .bf16)
    }

    /// One decoding step for B sequences, returning the next-token logits, (B, V).
    ///
    /// Token b is appended to sequence b, whose past is `caches[b]`. One matmul per layer covers all B.
    public func decodeStep(tokens: [Int32], caches: [KVCache]) -> Tensor {
        let B = tokens.count
        precondition(caches.count == B, "one cache per token")
        let positions = caches.map { Int32($0.length) }
        let (cos, sin) = ropeTables(positions: Int(positions.max()!) + 1)
        if (decodeWorkspace?.capacity ?? 0) < B {
            decodeWorkspace = nil
            decodeWorkspace = DecodeWorkspace(capacity: B, config: config)
        }
        let workspace = decodeWorkspace!.bind(rows: B)
        var (x, out) = (workspace.x, workspace.out)
        embeddingForward(x: x, tokens: tokens, table: embedding)
        for l in 0..<config.numHiddenLayers {
            layerForward(
                l, x: x, out: out, into: workspace.layer, positions: positions, cos: cos, sin: sin,
                attention: .decode(caches))
            swap(&x, &out)
        }
        for cache in caches { cache.advance(by: 1) }
        return finalLogits(x, rows: Array(0..<B))
    }

    /// Logits of rows of the last layer's output: final norm, then lm_head (or the tied embedding).
    func finalLogits(_ x: Tensor, rows: [Int]) -> Tensor {
        let C = config.hiddenSize
        let selected = Tensor(zeros: [rows.count, C])
        for (i, row) in rows.enumerated() {
            selected.view(offset: i * C, shape: [C]).copy(from: x.view(offset: row * C, shape: [C]))
        }
        rmsNormForward(
            y: selected, rstd: Tensor(zeros: [rows.count]), x: selected,
            weight: parameters.value("model.norm.weight"), eps: config.rmsNormEps)
        let logits = Tensor(zeros: [rows.count, config.vocabSize])
        headForward(y: logits, x: selected)
        return logits
    }
}

/// The per-step buffers of `decodeStep` for up to `capacity` sequences: the layer body's buffers
/// and the two residual-stream tensors it alternates between.
final class DecodeWorkspace {
    let capacity: Int
    let layer: LayerActivations
    private let residuals: TensorStorage
    private let width: Int
    private(set) var x, out: Tensor

    init(capacity: Int, config: ModelConfig) {
        self.capacity = capacity
        width = config.hiddenSize
        layer = LayerActivations(capacity: capacity, config: config)
        residuals = TensorStorage(count: 2 * capacity * width)
        x = Tensor(storage: residuals, offset: 0, shape: [capacity, width])
        out = Tensor(storage: residuals, offset: capacity * width, shape: [capacity, width])
    }

    /// Points the views at the first `rows` rows' worth of each buffer.
    func bind(rows B: Int) -> DecodeWorkspace {
        layer.bind(tokens: B)
        x = Tensor(storage: residuals, offset: 0, shape: [B, width])
        out = Tensor(storage: residuals, offset: capacity * width, shape: [B, width])
        return self
    }
}
