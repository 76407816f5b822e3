import Foundation
import Models
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
