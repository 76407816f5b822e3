import Foundation
import Models
import SafeTensors
import Tensors
import Testing

/// A small Qwen3-shaped model (q/k norms, bias-free) and a Qwen2-shaped one (q/k/v bias, untied
/// head): every kind of parameter the seam routes.
private let seamConfigs: [ModelConfig] = [
    ModelConfig(
        architecture: .qwen3, vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2,
        numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 6, tieWordEmbeddings: true,
        maxPositionEmbeddings: 64),
    ModelConfig(
        architecture: .qwen2, vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2,
        numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: false, maxPositionEmbeddings: 64),
]

private let seamBatch = TokenBatch(sequences: [[1, 5, 9, 2, 7], [3, 3, 8]])

/// Σ g ⊙ hidden for fixed pseudo-random g, in Double.
private func hiddenLoss(_ model: Transformer, _ g: [Float]) -> Double {
    let hidden = model.forwardHidden(seamBatch).toArray()
    model.releaseSavedActivations()
    return zip(hidden, g).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// Expects the gradients in `model.parameters.gradients` of three entries of each named parameter
/// to be `loss`'s central differences.
private func expectFiniteDifferences(_ model: Transformer, _ names: [String], _ loss: () -> Double) throws {
    for name in names {
        let slot = try #require(model.parameters.slot(name))
        for k in [0, slot.count / 2, slot.count - 1] {
            let i = slot.offset + k
            let values = model.parameters.values.pointer
            let original = values[i]
            let eps: Float = 1e-2
            values[i] = original + eps
            let up = loss()
            values[i] = original - eps
            let down = loss()
            values[i] = original
            let numeric = (up - down) / (2 * Double(eps))
            let analytic = Double(model.parameters.gradients.pointer[i])
            #expect(
                abs(numeric - analytic) <= 2e-2 * max(1, abs(numeric)),
                "\(name)[\(k)]: analytic \(analytic), numeric \(numeric)")
        }
    }
}

/// `forwardHidden` / `backward(dHidden:)`, the path a value head or a classifier uses, give the
/// gradient central differences give, for a parameter of every kind.
@Test(arguments: [0, 1])
func hiddenStateGradientsMatchFiniteDifferences(configIndex: Int) throws {
    let config = seamConfigs[configIndex]
    let model = ModelLoader.randomModel(config: config, seed: 3)
    let M = seamBatch.targetRows.count
    let g = (0..<(M * config.hiddenSize)).map { Float(sin(Double($0) * 1.7)) }
    _ = model.forwardHidden(seamBatch)
    model.parameters.zeroGradients()
    model.backward(dHidden: Tensor(g, shape: [M, config.hiddenSize]))
    var names = [
        "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
        "model.layers.1.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight",
        "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
    ]
    names +=
        config.qkNorm ? ["model.layers.0.self_attn.k_norm.weight"] : ["model.layers.1.self_attn.k_proj.bias"]
    try expectFiniteDifferences(model, names) { hiddenLoss(model, g) }
}

/// A frozen base: backward computes input gradients only (for adapters) and leaves every base
/// gradient as it was; unfrozen, the same step fills them.
@Test func aFrozenBaseGetsNoGradient() throws {
    let model = ModelLoader.randomModel(config: seamConfigs[1], seed: 4)
    let weights = [Float](repeating: 1, count: seamBatch.targetRows.count)
    model.frozenBase = true
    let linears = model.layers.flatMap(\.linears)
    #expect(linears.allSatisfy { $0.frozen })
    model.parameters.zeroGradients()
    model.forward(seamBatch)
    model.backward(dLogp: weights)
    let gradients = model.parameters.gradients
    #expect((0..<gradients.count).allSatisfy { gradients.pointer[$0] == 0 })
    model.frozenBase = false
    model.forward(seamBatch)
    model.backward(dLogp: weights)
    for name in ["model.embed_tokens.weight", "lm_head.weight", "model.layers.0.mlp.gate_proj.weight"] {
        let slot = try #require(model.parameters.slot(name))
        #expect((slot.offset..<(slot.offset + slot.count)).contains { gradients.pointer[$0] != 0 }, "\(name)")
    }
}

/// Each projection is one `Linear` holding its Hugging Face modules as row ranges of the fused
/// matrix (what an adapter on q_proj alone works on).
@Test func projectionsNameTheirModules() {
    let config = seamConfigs[1]
    let model = ModelLoader.randomModel(config: config, seed: 5)
    let layer = model.layers[1]
    let (H, K, D) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim)
    let (q, k) = (H * D, K * D)
    let expected: [Linear.Module] = [
        Linear.Module(name: "model.layers.1.self_attn.q_proj", rows: 0..<q),
        Linear.Module(name: "model.layers.1.self_attn.k_proj", rows: q..<(q + k)),
        Linear.Module(name: "model.layers.1.self_attn.v_proj", rows: (q + k)..<(q + 2 * k)),
    ]
    #expect(layer.qkv.modules == expected)
    #expect(layer.qkv.bias?.count == (H + 2 * K) * D)
    #expect(
        layer.gateUp.modules.map(\.name) == ["model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj"])
    #expect(layer.down.inputs == config.intermediateSize && layer.down.outputs == config.hiddenSize)
    #expect(layer.output.precision == .float32)
}

/// Σ g ⊙ scores of a score model, in Double.
private func scoreLoss(_ model: Transformer, _ g: [Float]) -> Double {
    let scores = model.scores(seamBatch).toArray()
    return zip(scores, g).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// A score head (a PPO critic's, one label; a classifier's, three): `forwardScores` is the final
/// hidden state times score.weightᵀ at every target row, and `backward(dScores:)` gives central
/// differences' gradients for the head and the trunk under it.
@Test(arguments: [(0, 1), (1, 3)])
func scoreHeadGradientsMatchFiniteDifferences(configIndex: Int, labels: Int) throws {
    let config = seamConfigs[configIndex]
    let model = ModelLoader.randomModel(config: config, seed: 5, head: .score(labels: labels))
    #expect(model.parameters.slot("lm_head.weight") == nil)
    #expect(model.parameters.slot("score.weight")?.shape == [labels, config.hiddenSize])
    let M = seamBatch.targetRows.count
    let hidden = model.forwardHidden(seamBatch).toArray()
    let scores = model.forwardScores(seamBatch).toArray()
    let weight = model.parameters.value("score.weight").toArray()
    let C = config.hiddenSize
    for row in [0, M - 1] {
        for label in 0..<labels {
            let expected = (0..<C).reduce(Float(0)) { $0 + hidden[row * C + $1] * weight[label * C + $1] }
            #expect(abs(scores[row * labels + label] - expected) <= 1e-5 * max(1, abs(expected)))
        }
    }
    let g = (0..<(M * labels)).map { Float(cos(Double($0) * 1.3)) }
    model.parameters.zeroGradients()
    _ = model.forwardScores(seamBatch)
    model.backward(dScores: Tensor(g, shape: [M, labels]))
    let names = [
        "score.weight", "model.norm.weight", "model.layers.1.mlp.down_proj.weight",
        "model.embed_tokens.weight",
    ]
    try expectFiniteDifferences(model, names) { scoreLoss(model, g) }
}

/// A value model saved is a transformers `*ForSequenceClassification` folder with one label and no
/// lm_head, and loads back with its score head; a causal LM folder loads as a value model with a
/// new head drawn at initializer_range, and a head with two labels is refused, naming the tensor.
@Test func valueModelsSaveAndLoadAsSequenceClassifiers() throws {
    let root = NSTemporaryDirectory() + "grpo-value-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let config = seamConfigs[1]
    try ModelLoader.save(ModelLoader.randomModel(config: config, seed: 6), to: root + "/lm")
    let (fresh, newHead) = try ModelLoader.loadValueModel(folder: root + "/lm", seed: 9)
    #expect(newHead)
    let head = fresh.parameters.value("score.weight").toArray()
    let std = (head.reduce(0) { $0 + $1 * $1 } / Float(head.count)).squareRoot()
    #expect(std > 0.01 && std < 0.04, "a new head is drawn N(0, 0.02): std \(std)")
    try ModelLoader.save(fresh, to: root + "/critic")
    let json =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: root + "/critic/config.json")))
        as! [String: Any]
    #expect(json["architectures"] as? [String] == ["Qwen2ForSequenceClassification"])
    #expect((json["id2label"] as? [String: String])?.count == 1)
    let file = try SafeTensors.SafeTensorsFile(path: root + "/critic/model.safetensors")
    #expect(file.tensors["lm_head.weight"] == nil && file.tensors["score.weight"]?.shape == [1, 16])
    let (back, again) = try ModelLoader.loadValueModel(folder: root + "/critic", seed: 1)
    #expect(!again)
    #expect(back.parameters.value("score.weight").toArray() == head)

    try ModelLoader.save(
        ModelLoader.randomModel(config: config, seed: 6, head: .score(labels: 2)), to: root + "/two")
    #expect(throws: ValueModelError.labels(folder: root + "/two", found: [2, 16], hidden: 16)) {
        try ModelLoader.loadValueModel(folder: root + "/two", seed: 1)
    }
}
