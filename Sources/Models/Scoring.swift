/// Log-probabilities of every token after the first of each sequence, batching sequences together
/// up to about `tokenBudget` tokens per forward pass.
///
/// Result i has sequences[i].count - firstScored[i] values: value j = log p(token k | tokens 0..<k)
/// for k = firstScored[i] + j. `firstScored` defaults to 1 for every sequence (all but the first token).
public func scoreSequences(
    _ sequences: [[Int32]], firstScored: [Int]? = nil, model: Transformer, temperature: Float = 1,
    tokenBudget: Int = 4096
) throws -> [[Float]] {
    let firstScored = firstScored ?? Array(repeating: 1, count: sequences.count)
    precondition(firstScored.count == sequences.count && firstScored.allSatisfy { $0 >= 1 })
    var results: [[Float]] = []
    results.reserveCapacity(sequences.count)
    for range in tokenBudgetChunks(sequences.map(\.count), budget: tokenBudget) {
        let start = range.lowerBound
        let chunk = Array(sequences[range])
        let masks = range.map { i in sequences[i].indices.map { $0 >= firstScored[i] } }
        let batch = TokenBatch(sequences: chunk, scored: masks)
        try model.validate(batch)
        let logp = model.forward(batch, temperature: temperature)
        var offset = 0
        for (k, sequence) in chunk.enumerated() {
            let count = max(0, sequence.count - firstScored[start + k])
            results.append(Array(logp[offset..<(offset + count)]))
            offset += count
        }
    }
    model.releaseSavedActivations()
    return results
}

/// Consecutive runs of items whose lengths sum to at most `budget` (an item longer than the budget
/// makes a run of its own), covering `lengths` in order: the batches of a forward pass.
public func tokenBudgetChunks(_ lengths: [Int], budget: Int) -> [Range<Int>] {
    var chunks: [Range<Int>] = []
    var start = 0
    while start < lengths.count {
        var end = start
        var tokens = 0
        while end < lengths.count && (end == start || tokens + lengths[end] <= budget) {
            tokens += lengths[end]
            end += 1
        }
        chunks.append(start..<end)
        start = end
    }
    return chunks
}
