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
        let (C, H, D) = (config.hiddenSize, config.numAttentionHeads, config.headDim)
        let caches = zip(prompts, capacity).map { prompt, room in
            precondition(
                room >= prompt.count, "cache capacity \(room) below the prompt's \(prompt.count) tokens")
            return KVCache(layers: config.numHiddenLayers, width: config.numKeyValueHeads * D, capacity: room)
        }
        let (cos, sin) = ropeTables(positions: batch.sequences.maxLength)
        var x = Tensor(zeros: [N, C])
        var next = Tensor(zeros: [N, C])
        embeddingForward(x: x, tokens: batch.tokens, table: embedding)
        let scratch = LayerActivations(capacity: N, config: config)
        for l in 0..<config.numHiddenLayers {
            layerForward(l, x: x, out: next, saving: scratch, batch: batch, cos: cos, sin: sin)
            for (p, cache) in caches.enumerated() {
                cache.write(
                    layer: l, at: 0, qkv: scratch.qkv, qkvRow: batch.sequences.offsets[p],
                    count: prompts[p].count,
                    keyColumn: H * D)
            }
            swap(&x, &next)
        }
        for (p, cache) in caches.enumerated() { cache.advance(by: prompts[p].count) }
        let lastRows = (0..<prompts.count).map { batch.sequences.offsets[$0 + 1] - 1 }
        return (finalLogits(x, rows: lastRows), caches)
    }

    /// One decoding step for B sequences, returning the next-token logits, (B, V).
    ///
    /// Token b is appended to sequence b, whose past is `caches[b]`. One matmul per layer covers all B.
    public func decodeStep(tokens: [Int32], caches: [KVCache]) -> Tensor {
        let B = tokens.count
        precondition(caches.count == B, "one cache per token")
        let (C, H, K, D) = (
            config.hiddenSize, config.numAttentionHeads, config.numKeyValueHeads, config.headDim
        )
        let width = config.heads.qkvWidth
        let positions = caches.map { Int32($0.length) }
        let (cos, sin) = ropeTables(positions: Int(positions.max()!) + 1)
        if (decodeWorkspace?.capacity ?? 0) < B {
            decodeWorkspace = DecodeWorkspace(capacity: B, config: config)
        }
        let workspace = decodeWorkspace!.bind(rows: B)
        let (x, normed, rstd, qkv, attention) = (
            workspace.x, workspace.normed, workspace.rstd, workspace.qkv, workspace.attention
        )
        let (middle, gateUp, hidden, out) = (
            workspace.middle, workspace.gateUp, workspace.hidden, workspace.out
        )
        embeddingForward(x: x, tokens: tokens, table: embedding)
        let rowRstd = rstd.view(shape: [B])
        for l in 0..<config.numHiddenLayers {
            let w = weights[l]
            rmsNormForward(y: normed, rstd: rowRstd, x: x, weight: w.inputNorm, eps: config.rmsNormEps)
            linearForward(y: qkv, x: normed, weight: w.qkv, bias: w.qkvBias)
            if let qNorm = w.qNorm, let kNorm = w.kNorm {
                headRMSNormForward(
                    y: qkv, rstd: rstd.view(shape: [B * H]), x: qkv, weight: qNorm, eps: config.rmsNormEps,
                    rows: B, rowStride: width, column: 0, heads: H)
                headRMSNormForward(
                    y: qkv, rstd: rstd.view(shape: [B * K]), x: qkv, weight: kNorm, eps: config.rmsNormEps,
                    rows: B, rowStride: width, column: H * D, heads: K)
            }
            ropeForward(
                x: qkv, rowStride: width, heads: H + K, headDim: D, positions: positions, cos: cos, sin: sin)
            for (b, cache) in caches.enumerated() {
                cache.write(layer: l, at: cache.length, qkv: qkv, qkvRow: b, count: 1, keyColumn: H * D)
            }
            let lengths = caches.map { $0.length + 1 }
            attentionDecode(
                out: attention, q: qkv, keys: zip(caches, lengths).map { $0.keys(l, rows: $1) },
                values: zip(caches, lengths).map { $0.values(l, rows: $1) }, lengths: lengths,
                heads: config.heads,
                scale: 1 / Float(D).squareRoot(), qRowStride: width)
            linearForward(y: middle, x: attention, weight: w.output, bias: w.outputBias)
            middle.add(x)
            rmsNormForward(y: normed, rstd: rowRstd, x: middle, weight: w.postNorm, eps: config.rmsNormEps)
            linearForward(y: gateUp, x: normed, weight: w.gateUp)
            swigluForward(h: hidden, gateUp: gateUp)
            linearForward(y: out, x: hidden, weight: w.down)
            out.add(middle)
            x.copy(from: out)
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
        linearForward(y: logits, x: selected, weight: head)
        return logits
    }
}

/// The per-step buffers of `decodeStep` for up to `capacity` sequences, as views of one buffer.
final class DecodeWorkspace {
    let capacity: Int
    private let storage: TensorStorage
    private let widths: [Int]
    private(set) var x, normed, rstd, qkv, attention, middle, gateUp, hidden, out: Tensor

    init(capacity: Int, config: ModelConfig) {
        self.capacity = capacity
        let (C, H) = (config.hiddenSize, config.numAttentionHeads)
        widths = [
            C, C, max(H, config.numKeyValueHeads, 1), config.heads.qkvWidth, H * config.headDim, C,
            2 * config.intermediateSize, config.intermediateSize, C,
        ]
        storage = TensorStorage(count: capacity * widths.reduce(0, +))
        let empty = Tensor(storage: storage, offset: 0, shape: [0])
        (x, normed, rstd, qkv, attention, middle, gateUp, hidden, out) =
            (empty, empty, empty, empty, empty, empty, empty, empty, empty)
    }

    /// Points the views at the first `rows` rows' worth of each buffer.
    func bind(rows B: Int) -> DecodeWorkspace {
        var offset = 0
        let views = widths.map { width -> Tensor in
            defer { offset += capacity * width }
            return Tensor(storage: storage, offset: offset, shape: [B, width])
        }
        (x, normed, rstd, qkv, attention, middle, gateUp, hidden, out) =
            (views[0], views[1], views[2], views[3], views[4], views[5], views[6], views[7], views[8])
        return self
    }
}
