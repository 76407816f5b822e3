import Foundation
import Models
import Tensors
import Testing

@testable import Training

private let bucketConfig = ModelConfig(
    architecture: .qwen2, vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 3,
    numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: false, maxPositionEmbeddings: 64)
private let bucketBatch = TokenBatch(sequences: [[1, 5, 9, 2, 7], [3, 3, 8]])

/// The spans a step sends cover every gradient exactly once.
private func coverEveryGradientOnce(_ spans: [Range<Int>], count: Int) -> Bool {
    spans.sorted { $0.lowerBound < $1.lowerBound }.reduce(0) { end, span in
        end == span.lowerBound ? span.upperBound : -1
    } == count
}

struct GradientBucketTests {
    @Test func layerIndicesAreReadFromParameterNames() {
        #expect(GradientBuckets.layerIndex("model.layers.12.mlp.up_proj.weight") == 12)
        #expect(
            GradientBuckets.layerIndex("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight") == 3)
        #expect(GradientBuckets.layerIndex("model.embed_tokens.weight") == nil)
        #expect(GradientBuckets.layerIndex("model.layers.x.weight") == nil)
        #expect(GradientBuckets.layerIndex("model.layers.7") == nil)
    }

    /// The head's parameters go first, then the layers from the top in buckets of at least the cap,
    /// then the rest with the embedding; a cap above the store sends one bucket after the backward.
    @Test func bucketsFollowTheBackwardFromTheTop() throws {
        let model = ModelLoader.randomModel(config: bucketConfig, seed: 3)
        let store = model.parameters
        let spans = try #require(GradientBuckets(store: store, layers: 3, capBytes: 4).layerSpans)
        let layerSize = spans[0].count
        let perLayer = GradientBuckets(store: store, layers: 3, capBytes: 4).plannedBuckets()
        // Tail (final norm, lm_head), each layer from the top, then the embedding.
        #expect(
            perLayer == [
                spans[2].upperBound..<store.count, spans[2], spans[1], spans[0], 0..<spans[0].lowerBound,
            ])
        #expect(coverEveryGradientOnce(perLayer, count: store.count))
        // Two layers' worth per bucket: the top two together.
        let paired = GradientBuckets(store: store, layers: 3, capBytes: 2 * layerSize * 4).plannedBuckets()
        #expect(paired.count == 3 && paired[1].count == 2 * layerSize)
        #expect(coverEveryGradientOnce(paired, count: store.count))
        let whole = GradientBuckets(store: store, layers: 3, capBytes: 1 << 30).plannedBuckets()
        #expect(whole.count == 2 && coverEveryGradientOnce(whole, count: store.count))
        // Layers out of order: one bucket of everything at the end.
        let shuffled = ParameterStore(layout: [
            ("model.layers.1.a", [4]), ("model.layers.0.a", [4]), ("model.layers.1.b", [4]),
        ])
        #expect(GradientBuckets(store: shuffled, layers: 2, capBytes: 4).layerSpans == nil)
        #expect(GradientBuckets(store: shuffled, layers: 2, capBytes: 4).plannedBuckets() == [0..<12])
    }

    /// What the backward reports as done is done: each layer's gradients (and the head's, at the
    /// first report) hold their final values when the hook runs, for the full model and for LoRA.
    @Test(arguments: [false, true])
    func reportedGradientsAreFinal(lora: Bool) throws {
        let model = ModelLoader.randomModel(config: bucketConfig, seed: 5)
        if lora {
            var settings = LoRASettings()
            settings.rank = 2
            settings.targetModules = ["all-linear"]
            let adapters = try LoRA(model: model, settings: settings, seed: 5)
            for slot in adapters.parameters.slots where slot.name.hasSuffix("lora_B.weight") {
                for i in 0..<slot.count { adapters.parameters.values.pointer[slot.offset + i] = 0.05 }
            }
            model.frozenBase = true
        }
        let store = model.trainableParameters
        let buckets = GradientBuckets(store: store, layers: 3, capBytes: 4)
        let spans = try #require(buckets.layerSpans)
        store.zeroGradients()
        var snapshots: [(Range<Int>, [Float])] = []
        var order: [Int] = []
        func copy(_ span: Range<Int>) -> [Float] {
            Array(UnsafeBufferPointer(start: store.gradients.pointer + span.lowerBound, count: span.count))
        }
        model.afterLayerBackward = { layer in
            if order.isEmpty {
                snapshots.append(
                    (spans.last!.upperBound..<store.count, copy(spans.last!.upperBound..<store.count)))
            }
            order.append(layer)
            snapshots.append((spans[layer], copy(spans[layer])))
        }
        let logp = model.forward(bucketBatch)
        model.backward(dLogp: logp.map { _ in -0.1 })
        model.afterLayerBackward = nil
        #expect(order == [2, 1, 0])
        for (span, values) in snapshots {
            #expect(copy(span) == values, "span \(span) changed after it was reported done")
        }
        // The reported spans carry gradient (the test would pass vacuously on zeros).
        #expect(snapshots.dropFirst().allSatisfy { $0.1.contains { $0 != 0 } })
    }
}
