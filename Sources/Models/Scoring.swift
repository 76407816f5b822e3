/// Log-probabilities of every token after the first of each sequence, batching sequences together
/// up to about `tokenBudget` tokens per forward pass.
///
/// Result i has sequences[i].count - 1 values: value j = log p(token j+1 | tokens 0...j).
public func scoreSequences(
    _ sequences: [[Int32]], model: Transformer, temperature: Float = 1, tokenBudget: Int = 4096
) throws -> [[Float]] {
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
        let batch = TokenBatch(sequences: chunk)
        try model.validate(batch)
        let logp = model.forward(batch, temperature: temperature)
        var offset = 0
        for sequence in chunk {
            results.append(Array(logp[offset..<(offset + sequence.count - 1)]))
            offset += sequence.count - 1
        }
        start = end
    }
    model.releaseSavedActivations()
    return results
}
