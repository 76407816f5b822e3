import Foundation
import Models
import SafeTensors
import Tensors
import Testing

private let loraConfig = ModelConfig(
    architecture: .qwen2, vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2,
    numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: false, maxPositionEmbeddings: 64)
private let loraBatch = TokenBatch(sequences: [[1, 5, 9, 2, 7], [3, 3, 8]])

/// An all-linear rank-3 adapter with non-zero B everywhere (as a trained one has).
private func adaptedModel(seed: UInt64 = 7) throws -> (Transformer, LoRA) {
    let model = ModelLoader.randomModel(config: loraConfig, seed: seed)
    var settings = LoRASettings()
    settings.rank = 3
    settings.alpha = 6
    settings.targetModules = ["all-linear"]
    let lora = try LoRA(model: model, settings: settings, seed: seed)
    var rng = SplitMix64(seed: seed + 1)
    for slot in lora.parameters.slots where slot.name.hasSuffix("lora_B.weight") {
        for i in 0..<slot.count { lora.parameters.values.pointer[slot.offset + i] = rng.nextNormal() * 0.1 }
    }
    return (model, lora)
}

@Test func adaptersStartAsTheBaseAndSwitchOff() throws {
    let base = ModelLoader.randomModel(config: loraConfig, seed: 7).logProbabilities(loraBatch)
    let model = ModelLoader.randomModel(config: loraConfig, seed: 7)
    let lora = try LoRA(model: model, settings: LoRASettings(), seed: 1)
    #expect(lora.modules.count == 2 * 2)  // q_proj and v_proj, PEFT's default, in both layers
    #expect(model.logProbabilities(loraBatch) == base)  // B starts at zero
    let (adapted, trained) = try adaptedModel()
    #expect(trained.modules.count == 7 * 2)
    let on = adapted.logProbabilities(loraBatch)
    #expect(on != base)
    trained.enabled = false
    #expect(adapted.logProbabilities(loraBatch) == base)
    #expect(adapted.trainableParameters === trained.parameters)
}

/// Adapter gradients (A and B of every module, including the q, k and v slices of the fused
/// matrix) equal central differences of Σ w·logp; the frozen base gets none.
@Test func adapterGradientsMatchFiniteDifferences() throws {
    let (model, lora) = try adaptedModel()
    let weights = (0..<loraBatch.targetRows.count).map { Float(cos(Double($0) * 0.9)) }
    func loss() -> Double {
        zip(model.logProbabilities(loraBatch), weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    lora.parameters.zeroGradients()
    model.forward(loraBatch)
    model.backward(dLogp: weights)
    let values = lora.parameters.values.pointer
    let gradients = lora.parameters.gradients.pointer
    for slot in lora.parameters.slots where slot.name.contains("layers.1.") || slot.name.contains("k_proj") {
        for k in [0, slot.count / 3, slot.count - 1] {
            let i = slot.offset + k
            let original = values[i]
            let eps: Float = 5e-3
            values[i] = original + eps
            let up = loss()
            values[i] = original - eps
            let down = loss()
            values[i] = original
            let numeric = (up - down) / (2 * Double(eps))
            #expect(
                abs(numeric - Double(gradients[i])) <= 1e-2 * max(0.1, abs(numeric)),
                "\(slot.name)[\(k)]: analytic \(gradients[i]), numeric \(numeric)")
        }
    }
}

/// `lora_dropout`: in a training pass the adapters see x through a mask keyed by the pass, so the
/// gradient is that of the dropped-out forward (finite differences agree, and so does the forward
/// gradient checkpointing recomputes); outside training passes the adapters see x whole.
@Test func dropoutMasksTheAdaptersInputInTrainingPassesOnly() throws {
    let model = ModelLoader.randomModel(config: loraConfig, seed: 7)
    var settings = LoRASettings()
    settings.rank = 3
    settings.targetModules = ["all-linear"]
    settings.dropout = 0.3
    let lora = try LoRA(model: model, settings: settings, seed: 7)
    var rng = SplitMix64(seed: 8)
    for slot in lora.parameters.slots where slot.name.hasSuffix("lora_B.weight") {
        for i in 0..<slot.count { lora.parameters.values.pointer[slot.offset + i] = rng.nextNormal() * 0.1 }
    }
    let plain = model.logProbabilities(loraBatch)
    lora.dropout.beginTrainingPass(5)
    let dropped = model.logProbabilities(loraBatch)
    #expect(dropped != plain)
    #expect(model.logProbabilities(loraBatch) == dropped)  // the same pass, the same mask
    lora.dropout.beginTrainingPass(6)
    #expect(model.logProbabilities(loraBatch) != dropped)
    lora.dropout.beginTrainingPass(5)
    let weights = (0..<loraBatch.targetRows.count).map { Float(cos(Double($0) * 0.9)) }
    func loss() -> Double {
        zip(model.logProbabilities(loraBatch), weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    for checkpointing in [false, true] {
        model.gradientCheckpointing = checkpointing
        lora.parameters.zeroGradients()
        model.forward(loraBatch)
        model.backward(dLogp: weights)
        let (values, gradients) = (lora.parameters.values.pointer, lora.parameters.gradients.pointer)
        for slot in lora.parameters.slots where slot.name.contains("layers.0.") {
            let i = slot.offset + slot.count / 2
            let original = values[i]
            values[i] = original + 5e-3
            let up = loss()
            values[i] = original - 5e-3
            let down = loss()
            values[i] = original
            let numeric = (up - down) / 1e-2
            #expect(
                abs(numeric - Double(gradients[i])) <= 1e-2 * max(0.1, abs(numeric)),
                "\(slot.name), checkpointing \(checkpointing): analytic \(gradients[i]), numeric \(numeric)")
        }
    }
    lora.dropout.endTrainingPass()
    #expect(model.logProbabilities(loraBatch) == plain)
}

/// An adapter file that adapts some layers only (PEFT's `layers_to_transform` writes these) loads
/// with exactly its modules adapted, and gives the log-probabilities of the model it came from.
@Test func anAdapterOfSomeLayersAdaptsThoseOnly() throws {
    let (model, lora) = try adaptedModel()
    // Layer 1's adapters out of the model: B zero is the base.
    for slot in lora.parameters.slots
    where slot.name.contains("layers.1.") && slot.name.hasSuffix("lora_B.weight") {
        for i in 0..<slot.count { lora.parameters.values.pointer[slot.offset + i] = 0 }
    }
    let expected = model.logProbabilities(loraBatch)
    let folder = NSTemporaryDirectory() + "grpo-lora-some-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try lora.save(to: folder, baseModel: nil)
    let kept = lora.parameters.slots.filter { $0.name.contains("layers.0.") }
    try SafeTensorsWriter.write(
        kept.map {
            TensorToWrite(
                name: $0.name, shape: $0.shape,
                values: UnsafeBufferPointer(
                    start: lora.parameters.values.pointer + $0.offset, count: $0.count))
        }, dtype: .f32, to: folder + "/" + LoRA.weightsFile)
    let fresh = ModelLoader.randomModel(config: loraConfig, seed: 7)
    let reloaded = try LoRA(model: fresh, adapterFolder: folder)
    #expect(reloaded.modules == lora.modules.filter { $0.contains("layers.0.") })
    #expect(reloaded.parameters.slots.count == kept.count)
    let logp = fresh.logProbabilities(loraBatch)
    #expect(zip(logp, expected).allSatisfy { abs($0 - $1) < 1e-5 })
}
