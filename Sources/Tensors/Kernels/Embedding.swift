// Legend: N tokens, V vocabulary, C hidden size.

/// Token embedding lookup.
///
/// tokens: (N) ids in 0..<V, table: (V, C) -> x: (N, C).
public func embeddingForward(x: Tensor, tokens: [Int32], table: Tensor) {
    let C = table.shape[1]
    let V = table.shape[0]
    precondition(x.count == tokens.count * C, "embedding: x \(x.shape) for \(tokens.count) tokens")
    let (xp, tp) = (x.pointer, table.pointer)
    for (n, token) in tokens.enumerated() {
        precondition(token >= 0 && Int(token) < V, "token id \(token) outside the vocabulary 0..<\(V)")
        (xp + n * C).update(from: tp + Int(token) * C, count: C)
    }
}

/// Backward of `embeddingForward`: dTable[token[n]] += dX[n] (scatter-add; repeated ids add up).
public func embeddingBackward(dTable: Tensor, dX: Tensor, tokens: [Int32]) {
    let C = dTable.shape[1]
    let (dtp, dxp) = (dTable.pointer, dX.pointer)
    for (n, token) in tokens.enumerated() { axpy(C, 1, dxp + n * C, dtp + Int(token) * C) }
}
