import Foundation
import Generation
import Models
import Tensors

/// A training run's memory before any work, by the same categories the trainer logs
/// (`memory/...`, see `MemoryAccount`): what `grpo info --algorithm` prints.
public struct MemoryEstimate: Sendable {
    /// What one step trains on.
    public struct Batch: Sendable {
        /// Completions per optimizer step (for PPO, per mini-batch; the rollout holds
        /// `num_mini_batches` of them).
        public var completions = 64
        public var numGenerations = 8
        public var promptLength = 128
        public var completionLength = 256
        public var forwardBatchTokens = 1024
        public var maxCacheBytes = 4 << 30

        public init() {}
    }

    public var categories: [(name: String, bytes: Int)]
    public var total: Int { categories.reduce(0) { $0 + $1.bytes } }

    /// The estimate for training `config` with `algorithm`; `referenceWeight` is beta (kl_coef for
    /// PPO: a reference model is held when it is positive and there are no adapters), `lora` the
    /// adapters, if any.
    public init(
        config: ModelConfig, algorithm: AdvantageEstimator, referenceWeight: Double, lora: LoRASettings?,
        precision: LinearPrecision, gradientCheckpointing: Bool, batch: Batch, numMiniBatches: Int = 1
    ) {
        let P = config.parameterCount
        let (C, V, L) = (config.hiddenSize, config.vocabSize, config.numHiddenLayers)
        let linear = config.parameterLayout.filter { $0.name.hasSuffix("_proj.weight") }.reduce(0) {
            $0 + $1.shape.reduce(1, *)
        }
        let untiedHead = config.tieWordEmbeddings ? 0 : V * C
        let adapters =
            lora.map { settings in
                config.parameterLayout.filter { entry in
                    settings.resolvedTargets.contains { entry.name.hasSuffix("." + $0 + ".weight") }
                }.reduce(0) { $0 + settings.rank * ($1.shape[0] + $1.shape[1]) }
            } ?? 0
        let bf16 = precision == .bf16
        // Trained weights in bf16 keep both layouts of each projection's copy (4 bytes a weight)
        // and lm_head's; frozen ones keep one bf16 layout instead of their float32 values.
        let frozenBF16 =
            4 * (P - linear - untiedHead) + 2 * (linear + untiedHead) + (untiedHead == 0 ? 2 * V * C : 0)
        let policyWeights: Int
        if lora != nil {
            policyWeights = (bf16 ? frozenBF16 : 4 * P) + 4 * adapters
        } else {
            policyWeights = 4 * P + (bf16 ? 4 * linear + 4 * V * C : 0)
        }
        let trainable = lora != nil ? adapters : P
        var categories: [(String, Int)] = [
            ("policy_weights", policyWeights), ("gradients", 4 * trainable), ("optimizer", 8 * trainable),
        ]
        if referenceWeight > 0 && lora == nil { categories.append(("reference", bf16 ? frozenBF16 : 4 * P)) }
        // One forward's tokens: groups pack their prompt once; at least one whole sequence.
        let groupTokens = batch.promptLength + batch.numGenerations * batch.completionLength
        let rolloutCompletions = batch.completions * (algorithm == .ppo ? numMiniBatches : 1)
        let allTokens = rolloutCompletions / max(batch.numGenerations, 1) * groupTokens
        let tokens = min(
            allTokens, max(batch.forwardBatchTokens, batch.promptLength + batch.completionLength))
        let trainingLayers = gradientCheckpointing ? 1 : L
        var activations = Transformer.activationBytes(config: config, tokens: tokens, layers: trainingLayers)
        if referenceWeight > 0 && lora == nil {
            activations += Transformer.activationBytes(config: config, tokens: tokens, layers: 1)
        }
        if algorithm == .ppo {
            let critic = P - untiedHead + C
            categories.append(("critic", 16 * critic))
            activations += Transformer.activationBytes(config: config, tokens: tokens, layers: trainingLayers)
        }
        categories.append(("activations", activations))
        // bf16 attention's kept buffers: one forward's groups, every completion at full length.
        let families = max(tokens / max(groupTokens, 1), 1)
        let (prompt, completion) = (max(batch.promptLength, 1), max(batch.completionLength, 1))
        let packed = PackedSequences(
            lengths: (0..<families).flatMap { _ in
                [prompt] + [Int](repeating: completion, count: batch.numGenerations)
            },
            parents: (0..<families).flatMap { f in
                [nil] + [Int?](repeating: f * (batch.numGenerations + 1), count: batch.numGenerations)
            })
        let attention = bf16 ? attentionScratchBytes(sequences: packed, heads: config.heads) : 0
        categories.append(
            ("backward", Transformer.backwardScratchBytes(config: config, tokens: tokens) + attention))
        let groupCache =
            KVCache.bytes(
                layers: L, width: config.numKeyValueHeads * config.headDim,
                tokens: batch.promptLength + batch.completionLength,
                elements: CacheElements.forHeads(dim: config.headDim, bf16: bf16))
            * (batch.numGenerations + 1)
        let groups = max(rolloutCompletions / max(batch.numGenerations, 1), 1)
        categories.append(
            ("kv_cache", min(groups, max(batch.maxCacheBytes / max(groupCache, 1), 1)) * groupCache))
        // The logits chunk covers the completion tokens of a forward, a chunk of rows at a time.
        let targets = tokens * batch.numGenerations * batch.completionLength / max(groupTokens, 1)
        categories.append(("logits", min(logitChunkRows(vocabSize: V), max(targets, 1)) * V * 4))
        self.categories = categories
    }
}
