import Foundation
import SafeTensors
import Tensors

/// What reads the final norm's output.
///
/// transformers' `*ForCausalLM` lm_head (or the tied embedding), or the `score` of
/// `*ForSequenceClassification`, a bias-free linear map to `labels` outputs per position. A PPO
/// critic is a score model with one label, read at every completion position; a reward model
/// reads it at the last token.
public enum OutputHead: Equatable, Sendable {
    case languageModel
    case score(labels: Int)
}

extension ModelConfig {
    /// The Hugging Face parameter names and shapes for `head`: a score model has `score.weight`
    /// (labels, hidden) where a language model has `lm_head.weight`.
    public func parameterLayout(head: OutputHead) -> [(name: String, shape: [Int])] {
        switch head {
        case .languageModel:
            return parameterLayout
        case .score(let labels):
            return parameterLayout.filter { $0.name != "lm_head.weight" } + [
                ("score.weight", [labels, hiddenSize])
            ]
        }
    }
}

extension Transformer {
    /// The score head's weight (labels, C); only on a score model.
    var scoreWeight: Tensor {
        guard case .score = outputHead else { preconditionFailure("this model has no score head") }
        return parameters.value("score.weight")
    }

    /// The score head at `batch`'s target rows, (M, labels), keeping what `backward(dScores:)` needs.
    ///
    /// Row t is read from the position that predicts target t: for a critic, the value of the state
    /// before completion token t (TRL's `full_value[:, context_length - 1 : -1]`).
    public func forwardScores(_ batch: TokenBatch) -> Tensor {
        let hidden = forwardHidden(batch)
        let weight = scoreWeight
        let out = Tensor(zeros: [hidden.shape[0], weight.shape[0]])
        linearForward(y: out, x: hidden, weight: weight)
        return out
    }

    /// `forwardScores` without keeping anything for backward (one layer's activations at a time).
    public func scores(_ batch: TokenBatch) -> Tensor {
        let saveCheckpointing = gradientCheckpointing
        gradientCheckpointing = true
        defer {
            gradientCheckpointing = saveCheckpointing
            releaseSavedActivations()
        }
        return forwardScores(batch)
    }

    /// Adds d(Σ dScores ⊙ scores) / dθ for the last `forwardScores`: the score weight's gradient
    /// (unless the base is frozen), then the trunk's through the final norm's output.
    public func backward(dScores: Tensor) {
        guard let hidden = savedHidden else { preconditionFailure("backward(dScores:) without a forward") }
        let weight = scoreWeight
        precondition(
            dScores.shape == [hidden.shape[0], weight.shape[0]],
            "dScores \(dScores.shape) for \(hidden.shape)")
        let dHidden = Tensor(zeros: hidden.shape)
        linearBackward(
            dX: dHidden, dWeight: frozenBase ? nil : parameters.gradient("score.weight"), dY: dScores,
            x: hidden,
            weight: weight)
        backward(dHidden: dHidden)
    }
}

/// Why a folder cannot be a value model (PPO's critic).
public enum ValueModelError: Error, CustomStringConvertible, Equatable {
    case labels(folder: String, found: [Int], hidden: Int)

    public var description: String {
        switch self {
        case .labels(let folder, let found, let hidden):
            "\(folder): tensor 'score.weight' has shape \(found); a value model has one output per "
                + "position, [1, \(hidden)] (num_labels 1)"
        }
    }
}

extension ModelLoader {
    /// A value model (PPO's critic) from a Hugging Face folder.
    ///
    /// A `*ForSequenceClassification` folder with one label keeps its `score.weight`; a causal LM folder (the policy's, say) gets a
    /// new score head drawn as transformers initialises one, N(0, initializer_range) under `seed`,
    /// and its lm_head is not loaded. Returns the model and whether the head is new.
    public static func loadValueModel(folder: String, seed: UInt64) throws -> (
        model: Transformer, newHead: Bool
    ) {
        let config = try ModelConfig.load(path: folder + "/config.json")
        let weights = try SafeTensorsCollection(folder: folder)
        let newHead = weights.info("score.weight") == nil
        if let info = weights.info("score.weight"), info.shape != [1, config.hiddenSize] {
            throw ValueModelError.labels(folder: folder, found: info.shape, hidden: config.hiddenSize)
        }
        let model = try load(
            folder: folder, head: .score(labels: 1), skipping: newHead ? ["score.weight"] : [])
        if newHead {
            var rng = SplitMix64(seed: seed)
            let weight = model.parameters.value("score.weight")
            let std = Float(config.initializerRange)
            for i in 0..<weight.count { weight[i] = std * rng.nextNormal() }
        }
        return (model, newHead)
    }
}

extension TokenBatch {
    /// Sequences packed back to back, one row of each read.
    ///
    /// Row `rows[s]` (0-based within sequence s) is read. A reward model reads its score there, at the last token that is not padding;
    /// nothing is predicted, so `targetTokens` holds the token at each row.
    public init(sequences: [[Int32]], readingRows rows: [Int]) {
        precondition(rows.count == sequences.count, "one row per sequence")
        self.sequences = PackedSequences(lengths: sequences.map(\.count))
        tokens = sequences.flatMap { $0 }
        targetRows = zip(self.sequences.offsets, rows).map { $0 + $1 }
        targetTokens = zip(sequences, rows).map { $0[$1] }
        precondition(
            zip(sequences, rows).allSatisfy { $0.indices.contains($1) }, "a row outside its sequence")
    }
}
