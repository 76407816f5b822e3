import Tensors

/// Sequences packed back to back, and which of their tokens are scored.
///
/// Target t is token `targetTokens[t]` predicted from the hidden state of packed row `targetRows[t]`
/// (the row just before it), so `logp[t] = log p(tokens[row + 1] | tokens[...row])`.
public struct TokenBatch: Sendable {
    public let tokens: [Int32]
    public let sequences: PackedSequences
    public let targetRows: [Int]
    public let targetTokens: [Int32]

    /// - Parameters:
    ///   - sequences: token ids of each sequence (at least one token each).
    ///   - scored: per sequence, a flag per token: true scores that token (index 0 is never
    ///     scored: nothing precedes it). Nil scores every token after the first.
    public init(sequences: [[Int32]], scored: [[Bool]]? = nil) {
        precondition(scored == nil || scored!.count == sequences.count, "one scored mask per sequence")
        self.sequences = PackedSequences(lengths: sequences.map(\.count))
        tokens = sequences.flatMap { $0 }
        var rows: [Int] = []
        var targets: [Int32] = []
        for (s, sequence) in sequences.enumerated() {
            let start = self.sequences.offsets[s]
            for i in sequence.indices.dropFirst() where scored?[s][i] ?? true {
                rows.append(start + i - 1)
                targets.append(sequence[i])
            }
        }
        targetRows = rows
        targetTokens = targets
    }

    public var tokenCount: Int { tokens.count }
}
