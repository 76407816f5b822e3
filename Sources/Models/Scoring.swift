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
    var start = 0
    while start < sequences.count {
        var end = start
        var tokens = 0
        while end < sequences.count && (end == start || tokens + sequences[end].count <= tokenBudget) {
            tokens += sequences[end].count
            end += 1
        }
        let chunk = Array(sequences[start..<end])
        let masks = (start..<end).map { i in sequences[i].indices.map { $0 >= firstScored[i] } }
        let batch = TokenBatch(sequences: chunk, scored: masks)
        try model.validate(batch)
        let logp = model.forward(batch, temperature: temperature)
        var offset = 0
        for (k, sequence) in chunk.enumerated() {
            let count = max(0, sequence.count - firstScored[start + k])
            results.append(Array(logp[offset..<(offset + count)]))
            offset += count
        }
        start = end
    }
    model.releaseSavedActivations()
    return results
}
