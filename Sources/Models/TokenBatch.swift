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

    /// Groups of sequences that share a prompt, with the prompt packed once.
    ///
    /// Every continuation token is scored, each continuation's first one from the prompt's last row;
    /// prompt tokens are not. The targets come group by group, continuation by continuation, in the
    /// order `TokenBatch(sequences: prompt + continuation)` for each pair would give them, with the
    /// same log-probabilities up to rounding, for 1/G of the prompt's work. Empty continuations
    /// contribute nothing.
    public init(prompts: [[Int32]], continuations: [[[Int32]]]) {
        precondition(prompts.count == continuations.count, "one list of continuations per prompt")
        var (lengths, parents, packed) = ([Int](), [Int?](), [Int32]())
        var (rows, targets) = ([Int](), [Int32]())
        for (prompt, group) in zip(prompts, continuations) {
            precondition(!prompt.isEmpty, "a shared prompt needs at least one token")
            let parent = lengths.count
            lengths.append(prompt.count)
            parents.append(nil)
            packed += prompt
            let promptLast = packed.count - 1
            for continuation in group where !continuation.isEmpty {
                let start = packed.count
                lengths.append(continuation.count)
                parents.append(parent)
                packed += continuation
                for i in continuation.indices {
                    rows.append(i == 0 ? promptLast : start + i - 1)
                    targets.append(continuation[i])
                }
            }
        }
        sequences = PackedSequences(lengths: lengths, parents: parents)
        tokens = packed
        targetRows = rows
        targetTokens = targets
    }

    public var tokenCount: Int { tokens.count }
}
