import Foundation
import Models
import Tensors
import TestSupport
import Testing

/// Logits of every position of `sequence`, recomputed from scratch (no cache).
private func fullLogits(_ model: Transformer, _ sequence: [Int32]) -> [[Float]] {
    model.logits(TokenBatch(sequences: [sequence]), rows: Array(sequence.indices))
}

@Test(arguments: fixtureNames)
func cachedDecodingMatchesFullRecomputation(name: String) throws {
    let model = try ModelLoader.load(folder: fixtureFolder(name))
    let prompts: [[Int32]] = [[5, 17, 3], [40, 2, 2, 9, 11, 60, 1], [7]]
    let (logits, caches) = model.prefill(prompts, capacity: prompts.map { $0.count + 6 })
    var sequences = prompts
    var last = (0..<prompts.count).map { Array(logits.toArray()[($0 * 96)..<(($0 + 1) * 96)]) }
    let live = caches
    for step in 0..<6 {
        for (p, sequence) in sequences.enumerated() {
            let expected = fullLogits(model, sequence).last!
            let (diff, index) = maxAbsDiff(last[p], expected)
            #expect(diff < 1e-4, "\(name) prompt \(p) step \(step): logit \(index) differs by \(diff)")
        }
        // Greedy next tokens, then one batched step for all sequences.
        let next = last.map { row in Int32(row.indices.max { row[$0] < row[$1] }!) }
        for p in sequences.indices { sequences[p].append(next[p]) }
        let stepLogits = model.decodeStep(tokens: next, caches: live).toArray()
        last = (0..<prompts.count).map { Array(stepLogits[($0 * 96)..<(($0 + 1) * 96)]) }
    }
}

@Test func forkedCachesContinueIndependently() throws {
    let model = try ModelLoader.load(folder: fixtureFolder("qwen3-qknorm"))
    let prompt: [Int32] = [3, 14, 15, 92, 65]
    let (_, caches) = model.prefill([prompt], capacity: [prompt.count + 2])
    let forks = caches[0].fork(count: 2)
    let logits = model.decodeStep(tokens: [7, 8], caches: forks).toArray()
    for (b, token) in [Int32(7), 8].enumerated() {
        let expected = fullLogits(model, prompt + [token]).last!
        #expect(maxAbsDiff(Array(logits[(b * 96)..<((b + 1) * 96)]), expected).diff < 1e-4)
    }
    #expect(forks.allSatisfy { $0.length == prompt.count + 1 } && caches[0].length == prompt.count)
}

/// A bf16 model keeps bf16 caches (head dim 64: whole 32-column blocks), and decoding from them
/// stays within bf16's rounding of recomputing every position (whose keys and values are float32).
@Test(.enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"))
func bf16CachesDecodeLikeFullRecomputation() throws {
    let config = ModelConfig(
        architecture: .qwen2, vocabSize: 64, hiddenSize: 128, intermediateSize: 96, numHiddenLayers: 2,
        numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 64, tieWordEmbeddings: true,
        maxPositionEmbeddings: 64)
    let model = ModelLoader.randomModel(config: config, seed: 3)
    model.precision = .bf16
    #expect(model.cacheElements == .bf16)
    let prompts: [[Int32]] = [[5, 17, 3], [40, 2, 2, 9, 11, 60, 1, 8, 30, 12, 13, 14, 15, 16, 17, 18, 19]]
    let (logits, caches) = model.prefill(prompts, capacity: prompts.map { $0.count + 5 })
    #expect(caches.allSatisfy { $0.elements == .bf16 })
    let forks = caches[1].fork(count: 1) + [caches[0]]
    var sequences = [prompts[1], prompts[0]]
    var last = [1, 0].map { Array(logits.toArray()[($0 * 64)..<(($0 + 1) * 64)]) }
    for step in 0..<5 {
        for (p, sequence) in sequences.enumerated() {
            let expected = fullLogits(model, sequence).last!
            let scale = expected.map(abs).max()!
            let (diff, index) = maxAbsDiff(last[p], expected)
            #expect(diff < 2e-2 * scale, "sequence \(p) step \(step): logit \(index) differs by \(diff)")
        }
        let next = last.map { row in Int32(row.indices.max { row[$0] < row[$1] }!) }
        for p in sequences.indices { sequences[p].append(next[p]) }
        let stepLogits = model.decodeStep(tokens: next, caches: forks).toArray()
        last = (0..<2).map { Array(stepLogits[($0 * 64)..<(($0 + 1) * 64)]) }
    }
}
