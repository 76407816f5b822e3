import Foundation
import Tensors
import TestSupport
import Testing

// Each kernel: fast path vs Naive, then backward vs central finite differences of Σ w ⊙ y.

@Test func simdExpMatchesLibm() {
    let xs = stride(from: Float(-87), through: 88, by: 0.37).map { $0 }
    for x in xs {
        let exact = Foundation.exp(Double(x))
        let got = Double(fastExp(x))
        #expect(abs(got - exact) <= 4e-7 * exact, "exp(\(x)) = \(got), libm \(exact)")
    }
    #expect(fastExp(-.infinity) == 0)
    #expect(fastExp(-200) == 0)
}

@Test(arguments: [(3, 5, 7, true), (40, 33, 17, false), (1, 64, 128, true)])
func linearMatchesNaiveAndGradients(N: Int, I: Int, O: Int, useBias: Bool) {
    let (x, w, b) = (randomFloats(N * I, seed: 1), randomFloats(O * I, seed: 2), randomFloats(O, seed: 3))
    let y = Tensor(zeros: [N, O])
    let run = { (x: [Float], w: [Float], b: [Float]) -> [Float] in
        linearForward(
            y: y, x: Tensor(x, shape: [N, I]), weight: Tensor(w, shape: [O, I]),
            bias: useBias ? Tensor(b, shape: [O]) : nil)
        return y.toArray()
    }
    let expected = Naive.linear(x, w, useBias ? b : nil, n: N, i: I, o: O)
    #expect(maxAbsDiff(run(x, w, b), expected).diff < 1e-4)

    guard N * I < 400 else { return }
    let dY = randomFloats(N * O, seed: 4)
    let (dX, dW, dB) = (Tensor(zeros: [N, I]), Tensor(zeros: [O, I]), Tensor(zeros: [O]))
    linearBackward(
        dX: dX, dWeight: dW, dBias: useBias ? dB : nil, dY: Tensor(dY, shape: [N, O]),
        x: Tensor(x, shape: [N, I]), weight: Tensor(w, shape: [O, I]))
    #expect(relativeError(dX.toArray(), numericGradient(x) { weightedSum(run($0, w, b), dY) }) < 1e-2)
    #expect(relativeError(dW.toArray(), numericGradient(w) { weightedSum(run(x, $0, b), dY) }) < 1e-2)
    if useBias {
        #expect(relativeError(dB.toArray(), numericGradient(b) { weightedSum(run(x, w, $0), dY) }) < 1e-2)
    }
}

@Test func embeddingGathersAndScatterAdds() {
    let table = Tensor(randomFloats(5 * 3, seed: 5), shape: [5, 3])
    let tokens: [Int32] = [4, 0, 4]
    let x = Tensor(zeros: [3, 3])
    embeddingForward(x: x, tokens: tokens, table: table)
    #expect(Array(x.toArray()[0..<3]) == Array(table.toArray()[12..<15]))
    let dTable = Tensor(zeros: [5, 3])
    embeddingBackward(
        dTable: dTable, dX: Tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [3, 3]), tokens: tokens)
    #expect(dTable.toArray() == [4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 10, 12])
}

@Test(arguments: [(4, 8), (37, 40)])
func rmsNormMatchesNaiveAndGradients(R: Int, C: Int) {
    let (x, w) = (randomFloats(R * C, seed: 6, scale: 2), randomFloats(C, seed: 7))
    let (y, rstd) = (Tensor(zeros: [R, C]), Tensor(zeros: [R]))
    let run = { (x: [Float], w: [Float]) -> [Float] in
        rmsNormForward(
            y: y, rstd: rstd, x: Tensor(x, shape: [R, C]), weight: Tensor(w, shape: [C]), eps: 1e-6)
        return y.toArray()
    }
    #expect(maxAbsDiff(run(x, w), Naive.rmsNorm(x, w, eps: 1e-6)).diff < 1e-5)
    _ = run(x, w)
    let dY = randomFloats(R * C, seed: 8)
    let (dX, dW) = (Tensor(zeros: [R, C]), Tensor(zeros: [C]))
    rmsNormBackward(
        dX: dX, dWeight: dW, dY: Tensor(dY, shape: [R, C]), x: Tensor(x, shape: [R, C]),
        weight: Tensor(w, shape: [C]), rstd: rstd)
    #expect(relativeError(dX.toArray(), numericGradient(x, h: 1e-3) { weightedSum(run($0, w), dY) }) < 1e-2)
    #expect(relativeError(dW.toArray(), numericGradient(w, h: 1e-3) { weightedSum(run(x, $0), dY) }) < 1e-2)
}

@Test func headRMSNormEqualsRowRMSNormOnEachHead() {
    // Rows of 3 heads of width 4 at column 2 of a 16-wide row.
    let (N, ld, heads, D) = (5, 16, 3, 4)
    let x = randomFloats(N * ld, seed: 9, scale: 3)
    let w = randomFloats(D, seed: 10)
    let y = Tensor(x, shape: [N, ld])
    let rstd = Tensor(zeros: [N, heads])
    headRMSNormForward(
        y: y, rstd: rstd, x: Tensor(x, shape: [N, ld]), weight: Tensor(w, shape: [D]), eps: 1e-6,
        rows: N, rowStride: ld, column: 2, heads: heads)
    let got = y.toArray()
    for n in 0..<N {
        let slice = Array(x[(n * ld + 2)..<(n * ld + 2 + heads * D)])
        let expected = Naive.rmsNorm(slice, w, eps: 1e-6)
        #expect(maxAbsDiff(Array(got[(n * ld + 2)..<(n * ld + 2 + heads * D)]), expected).diff < 1e-5)
        #expect(
            got[n * ld] == x[n * ld] && got[n * ld + 15] == x[n * ld + 15],
            "columns outside the heads changed")
    }
    // Backward vs finite differences on the packed layout.
    let dY = randomFloats(N * ld, seed: 11)
    let run = { (xv: [Float]) -> [Float] in
        let out = Tensor(xv, shape: [N, ld])
        headRMSNormForward(
            y: out, rstd: rstd, x: Tensor(xv, shape: [N, ld]), weight: Tensor(w, shape: [D]),
            eps: 1e-6, rows: N, rowStride: ld, column: 2, heads: heads)
        return out.toArray()
    }
    _ = run(x)
    let dX = Tensor(dY, shape: [N, ld])
    let dW = Tensor(zeros: [D])
    headRMSNormBackward(
        dX: dX, dWeight: dW, dY: Tensor(dY, shape: [N, ld]), x: Tensor(x, shape: [N, ld]),
        weight: Tensor(w, shape: [D]), rstd: rstd, rows: N, rowStride: ld, column: 2, heads: heads)
    #expect(relativeError(dX.toArray(), numericGradient(x, h: 1e-3) { weightedSum(run($0), dY) }) < 1e-2)
}

@Test(arguments: [
    RoPEScaling.none, .linear(factor: 2),
    .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16),
])
func ropeMatchesNaiveAndInverts(scaling: RoPEScaling) {
    let (N, heads, D) = (6, 3, 8)
    let rope = RotaryEmbedding(headDim: D, theta: 10_000, scaling: scaling)
    let (cosT, sinT) = rope.tables(positions: 64)
    let positions: [Int32] = [0, 1, 2, 0, 1, 40]
    let x = randomFloats(N * heads * D, seed: 12)
    let t = Tensor(x, shape: [N, heads * D])
    ropeForward(
        x: t, rowStride: heads * D, heads: heads, headDim: D, positions: positions, cos: cosT, sin: sinT)
    let expected = Naive.rope(x, positions: positions, heads: heads, headDim: D, invFreq: rope.invFreq)
    #expect(maxAbsDiff(t.toArray(), expected).diff < 1e-5)
    // The rotation is orthogonal, so its backward (the transpose) is its inverse.
    ropeBackward(
        dX: t, rowStride: heads * D, heads: heads, headDim: D, positions: positions, cos: cosT, sin: sinT)
    #expect(maxAbsDiff(t.toArray(), x).diff < 1e-5)
}

@Test func llama3ScalingKeepsHighFrequenciesAndDividesLowOnes() {
    let plain = RotaryEmbedding(headDim: 64, theta: 500_000)
    let scaled = RotaryEmbedding(
        headDim: 64, theta: 500_000,
        scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
    #expect(scaled.invFreq[0] == plain.invFreq[0])
    #expect(abs(scaled.invFreq[31] - plain.invFreq[31] / 8) < 1e-12)
}

@Test func swigluMatchesNaiveAndGradients() {
    let (N, F) = (3, 21)
    let gu = randomFloats(N * 2 * F, seed: 13, scale: 4)
    let h = Tensor(zeros: [N, F])
    let run = { (gu: [Float]) -> [Float] in
        swigluForward(h: h, gateUp: Tensor(gu, shape: [N, 2 * F]))
        return h.toArray()
    }
    #expect(maxAbsDiff(run(gu), Naive.swiglu(gu, f: F)).diff < 1e-5)
    let dH = randomFloats(N * F, seed: 14)
    let dGU = Tensor(zeros: [N, 2 * F])
    swigluBackward(dGateUp: dGU, dH: Tensor(dH, shape: [N, F]), gateUp: Tensor(gu, shape: [N, 2 * F]))
    #expect(relativeError(dGU.toArray(), numericGradient(gu, h: 1e-3) { weightedSum(run($0), dH) }) < 1e-2)
}

/// One query head over one sequence (fewer units than cores) runs the threaded path.
@Test(arguments: [
    ([5, 1, 3], 4, 2, 4), ([20], 2, 2, 8), ([7, 18], 6, 2, 4), ([300, 129], 2, 1, 4), ([150], 1, 1, 8),
])
func attentionMatchesNaiveAndGradients(lengths: [Int], H: Int, K: Int, D: Int) {
    let sequences = PackedSequences(lengths: lengths)
    let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
    let N = sequences.tokenCount
    let scale = 1 / Float(D).squareRoot()
    let qkv = randomFloats(N * heads.qkvWidth, seed: 15, scale: 2)
    let (out, lse) = (Tensor(zeros: [N, H * D]), Tensor(zeros: [N, H]))
    let run = { (qkv: [Float]) -> [Float] in
        attentionForward(
            out: out, lse: lse, qkv: Tensor(qkv, shape: [N, heads.qkvWidth]), sequences: sequences,
            heads: heads, scale: scale)
        return out.toArray()
    }
    let expected = Naive.attention(qkv, lengths: lengths, heads: H, kvHeads: K, headDim: D, scale: scale)
    #expect(maxAbsDiff(run(qkv), expected).diff < 1e-5)
    _ = run(qkv)
    let dOut = randomFloats(N * H * D, seed: 16)
    let dQKV = Tensor(zeros: [N, heads.qkvWidth])
    attentionBackward(
        dQKV: dQKV, dOut: Tensor(dOut, shape: [N, H * D]), out: out, lse: lse,
        qkv: Tensor(qkv, shape: [N, heads.qkvWidth]), sequences: sequences, heads: heads, scale: scale)
    // Large cases (several causal blocks) check a deterministic sample of entries.
    let indices = sampledIndices(qkv.count, stride: max(1, qkv.count / 400), phase: 7)
    let numeric = numericGradient(qkv, h: 1e-3, indices: indices) { weightedSum(run($0), dOut) }
    #expect(relativeError(pick(dQKV.toArray(), at: indices), pick(numeric, at: indices)) < 1e-2)
}

/// bf16 training attention (its products batched on bf16 operands, accumulated in float32) gives
/// float32's outputs, log-sum-exps and gradients within what bf16 operands allow: parents, causal
/// blocks (lengths past 128), padded blocks and groups of one to three query heads per key/value head.
@Test(arguments: [
    ([5, 1, 3], [nil, nil, nil], 4, 2, 8), ([20, 130, 140, 7], [nil, 0, 0, nil], 6, 2, 16),
    ([300], [nil], 3, 1, 64),
])
func bf16AttentionMatchesFloat32(lengths: [Int], parents: [Int?], H: Int, K: Int, D: Int) {
    guard BFloat16Matmul.isAvailable else { return }
    let sequences = PackedSequences(lengths: lengths, parents: parents)
    let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
    let (N, ld) = (sequences.tokenCount, heads.qkvWidth)
    let qkv = Tensor(randomFloats(N * ld, seed: 41, scale: 2), shape: [N, ld])
    let dOut = Tensor(randomFloats(N * H * D, seed: 42), shape: [N, H * D])
    let scale = 1 / Float(D).squareRoot()
    func run(bf16: Bool) -> (out: [Float], lse: [Float], dQKV: [Float]) {
        let (out, lse, dQKV) = (Tensor(zeros: [N, H * D]), Tensor(zeros: [N, H]), Tensor(zeros: [N, ld]))
        attentionForward(
            out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads, scale: scale, bf16: bf16)
        attentionBackward(
            dQKV: dQKV, dOut: dOut, out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads,
            scale: scale, bf16: bf16)
        return (out.toArray(), lse.toArray(), dQKV.toArray())
    }
    let (exact, low) = (run(bf16: false), run(bf16: true))
    #expect(relativeError(low.out, exact.out) < 2e-2)
    #expect(maxAbsDiff(low.lse, exact.lse).diff < 5e-2)
    #expect(relativeError(low.dQKV, exact.dQKV) < 3e-2)
    let dot = zip(low.dQKV, exact.dQKV).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    let norms = [low.dQKV, exact.dQKV].map { $0.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
    #expect(dot / (norms[0] * norms[1]) > 0.999)
}

/// Sequences with parents attend as if each carried its own copy of the parent's rows.
///
/// The parent's gradient is the sum over its copies. Lengths cross the 128-row blocks, and parents'
/// keys are shared by groups of one and two query heads.
@Test(arguments: [
    ([4, 3, 5, 6, 2], [nil, 0, 0, nil, 3], 4, 2, 8), ([130, 140, 7], [nil, 0, 0], 2, 1, 4),
    ([9, 1, 12], [nil, 0, 0], 1, 1, 8),
])
func attentionWithSharedParentsEqualsCopiedParents(lengths: [Int], parents: [Int?], H: Int, K: Int, D: Int) {
    let shared = PackedSequences(lengths: lengths, parents: parents)
    let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
    let (ld, N) = (heads.qkvWidth, shared.tokenCount)
    let qkv = randomFloats(N * ld, seed: 31, scale: 2)
    let dOut = randomFloats(N * H * D, seed: 32)
    // The copied layout: each sequence with a parent becomes parent rows + own rows; a parent with
    // continuations appears only through them. copies[row of the copied layout] = row of `shared`.
    var copies: [Int] = []
    var copiedLengths: [Int] = []
    for s in lengths.indices where !parents.contains(s) {
        let parentRows = parents[s].map { Array(shared.offsets[$0]..<shared.offsets[$0 + 1]) } ?? []
        copies += parentRows + Array(shared.offsets[s]..<shared.offsets[s + 1])
        copiedLengths.append(parentRows.count + lengths[s])
    }
    let copied = PackedSequences(lengths: copiedLengths)
    let gather = { (x: [Float], width: Int) in copies.flatMap { x[($0 * width)..<(($0 + 1) * width)] } }
    func run(_ sequences: PackedSequences, _ qkv: [Float], _ dOut: [Float]) -> (out: [Float], dQKV: [Float]) {
        let M = sequences.tokenCount
        let (out, lse, dQKV) = (Tensor(zeros: [M, H * D]), Tensor(zeros: [M, H]), Tensor(zeros: [M, ld]))
        let x = Tensor(qkv, shape: [M, ld])
        attentionForward(out: out, lse: lse, qkv: x, sequences: sequences, heads: heads, scale: 0.4)
        attentionBackward(
            dQKV: dQKV, dOut: Tensor(dOut, shape: [M, H * D]), out: out, lse: lse, qkv: x,
            sequences: sequences, heads: heads, scale: 0.4)
        return (out.toArray(), dQKV.toArray())
    }
    // Only rows that are not a parent's receive an upstream gradient in the copied layout (a
    // parent's own outputs appear once per copy there), so zero the parents' rows of dOut.
    var dOutShared = dOut
    for s in lengths.indices where parents.contains(s) {
        for i in (shared.offsets[s] * H * D)..<(shared.offsets[s + 1] * H * D) { dOutShared[i] = 0 }
    }
    var dOutCopied = gather(dOut, H * D)
    var row = 0
    for s in lengths.indices where !parents.contains(s) {
        let parentLength = parents[s].map { lengths[$0] } ?? 0
        for i in (row * H * D)..<((row + parentLength) * H * D) { dOutCopied[i] = 0 }
        row += parentLength + lengths[s]
    }
    let (sharedOut, sharedGrad) = run(shared, qkv, dOutShared)
    let (copiedOut, copiedGrad) = run(copied, gather(qkv, ld), dOutCopied)
    #expect(maxAbsDiff(gather(sharedOut, H * D), copiedOut).diff < 1e-5)
    var summed = [Float](repeating: 0, count: N * ld)
    for (r, source) in copies.enumerated() {
        for c in 0..<ld { summed[source * ld + c] += copiedGrad[r * ld + c] }
    }
    #expect(maxAbsDiff(sharedGrad, summed).diff < 1e-4)
    #expect(
        Array(shared.positions[shared.offsets[1]..<shared.offsets[2]])
            == (0..<lengths[1]).map {
                Int32(lengths[0] + $0)
            })
}

/// Head dims, groups and cache lengths cover the vectorised paths (16-key tiles, part-filled last
/// tiles, groups of one to five heads, 16 value columns at a time) and the column tails.
@Test(
    arguments: [
        ([6, 3], 4, 2, 8), ([19, 8, 1, 40], 6, 2, 32), ([17, 70], 8, 2, 64), ([9], 2, 2, 24),
        ([33, 16, 5], 10, 2, 16), ([48], 3, 3, 64),
    ])
func decodeAttentionEqualsLastRowOfCausalAttention(lengths: [Int], H: Int, K: Int, D: Int) {
    let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
    let sequences = PackedSequences(lengths: lengths)
    let (N, ld, KD, HD) = (sequences.tokenCount, heads.qkvWidth, K * D, H * D)
    let qkv = randomFloats(N * ld, seed: 17)
    let (out, lse) = (Tensor(zeros: [N, HD]), Tensor(zeros: [N, H]))
    attentionForward(
        out: out, lse: lse, qkv: Tensor(qkv, shape: [N, ld]), sequences: sequences, heads: heads,
        scale: 0.3)
    var q = [Float]()
    var keys = [Tensor]()
    var values = [Tensor]()
    var expected = [Float]()
    let all = out.toArray()
    for (s, T) in lengths.enumerated() {
        let start = sequences.offsets[s]
        let last = (start + T - 1) * ld
        q += qkv[last..<(last + HD)]
        var k = [Float]()
        var v = [Float]()
        for t in 0..<T {
            let row = (start + t) * ld
            k += qkv[(row + HD)..<(row + HD + KD)]
            v += qkv[(row + HD + KD)..<(row + HD + 2 * KD)]
        }
        keys.append(Tensor(k, shape: [T, KD]))
        values.append(Tensor(v, shape: [T, KD]))
        expected += all[((start + T - 1) * HD)..<((start + T) * HD)]
    }
    let decoded = Tensor(zeros: [lengths.count, HD])
    attentionDecode(
        out: decoded, q: Tensor(q, shape: [lengths.count, HD]), keys: keys, values: values, lengths: lengths,
        heads: heads, scale: 0.3)
    #expect(maxAbsDiff(decoded.toArray(), expected).diff < 1e-5)
}

/// bf16 caches (the widening loads of interleaved pairs) give float32's attention over the same
/// numbers rounded to bf16.
@Test(arguments: [([19, 40, 1], 6, 2, 64), ([33, 16], 3, 3, 32), ([5], 10, 2, 96)])
func decodeAttentionReadsBF16Caches(lengths: [Int], H: Int, K: Int, D: Int) {
    let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
    let q = Tensor(randomFloats(lengths.count * H * D, seed: 31), shape: [lengths.count, H * D])
    let keys = lengths.enumerated().map {
        Tensor(randomFloats($1 * K * D, seed: 40 + UInt64($0)), shape: [$1, K * D])
    }
    let values = lengths.enumerated().map {
        Tensor(randomFloats($1 * K * D, seed: 50 + UInt64($0)), shape: [$1, K * D])
    }
    let rounded = { (t: Tensor) in Tensor(t.toArray().map(BFloat16.rounded), shape: t.shape) }
    let (expected, got) = (Tensor(zeros: [lengths.count, H * D]), Tensor(zeros: [lengths.count, H * D]))
    attentionDecode(
        out: expected, q: q, keys: keys.map(rounded), values: values.map(rounded), lengths: lengths,
        heads: heads, scale: 0.2)
    attentionDecode(
        out: got, q: q, keys: keys, values: values, lengths: lengths, heads: heads, scale: 0.2,
        elements: .bf16)
    #expect(maxAbsDiff(got.toArray(), expected.toArray()).diff < 1e-5)
    #expect(CacheElements.forHeads(dim: 64, bf16: true) == .bf16)
    #expect(CacheElements.forHeads(dim: 48, bf16: true) == .float32)
    #expect(CacheElements.forHeads(dim: 64, bf16: false) == .float32)
}

@Test(arguments: [Float(1), 0.7])
func logSoftmaxGatherMatchesNaiveAndGradients(temperature: Float) {
    let (M, C, V) = (7, 6, 37)
    let hidden = randomFloats(M * C, seed: 18, scale: 2)
    let w = randomFloats(V * C, seed: 19)
    let targets: [Int32] = [0, 36, 5, 5, 12, 1, 30]
    let (logp, lse) = (Tensor(zeros: [M]), Tensor(zeros: [M]))
    let run = { (h: [Float], w: [Float]) -> [Float] in
        logSoftmaxGatherForward(
            logp: logp, lse: lse, hidden: Tensor(h, shape: [M, C]), weight: Tensor(w, shape: [V, C]),
            targets: targets, temperature: temperature, chunkRows: 3)
        return logp.toArray()
    }
    let expected = Naive.logSoftmaxGather(hidden, w, targets: targets, c: C, v: V, temperature: temperature)
    #expect(maxAbsDiff(run(hidden, w), expected).diff < 1e-5)
    _ = run(hidden, w)
    let dLogp = randomFloats(M, seed: 20)
    let (dH, dW) = (Tensor(zeros: [M, C]), Tensor(zeros: [V, C]))
    logSoftmaxGatherBackward(
        dHidden: dH, dWeight: dW, dLogp: dLogp, hidden: Tensor(hidden, shape: [M, C]),
        weight: Tensor(w, shape: [V, C]), targets: targets, lse: lse, temperature: temperature,
        chunkRows: 3)
    #expect(
        relativeError(dH.toArray(), numericGradient(hidden, h: 1e-3) { weightedSum(run($0, w), dLogp) })
            < 1e-2)
    #expect(
        relativeError(dW.toArray(), numericGradient(w, h: 1e-3) { weightedSum(run(hidden, $0), dLogp) })
            < 1e-2)
}

@Test(arguments: [(1, 576, 960), (32, 576, 3072), (200, 64, 9), (77, 64, 40), (255, 96, 33)])
func skinnyMatmulPrimitiveAgreesWithSgemm(N: Int, I: Int, O: Int) {
    let x = Tensor(randomFloats(N * I, seed: 30), shape: [N, I])
    let w = Tensor(randomFloats(O * I, seed: 31), shape: [O, I])
    let (viaPrimitive, viaSgemm) = (Tensor(zeros: [N, O]), Tensor(zeros: [N, O]))
    linearForward(y: viaPrimitive, x: x, weight: w)
    BLAS.sgemm(
        transA: false, transB: true, m: N, n: O, k: I, a: x.toArray(), lda: I, b: w.toArray(), ldb: I,
        c: viaSgemm, ldc: O)
    #expect(maxAbsDiff(viaPrimitive.toArray(), viaSgemm.toArray()).diff < 1e-4)
}

/// Row counts are cut into pieces of a fixed set of lengths, so a shape run at every row count from
/// 1 to 300 keeps at most ~80 primitives (one per count would be 300), and each is measured.
@Test func matmulPrimitivesStayFewAcrossRowCounts() {
    #if !canImport(Accelerate)
        let (I, O) = (24, 13)
        let w = Tensor(randomFloats(O * I, seed: 41), shape: [O, I])
        let before = matmulPrimitiveBytes()
        for n in 1...256 {
            let x = Tensor(randomFloats(n * I, seed: UInt64(n)), shape: [n, I])
            linearForward(y: Tensor(zeros: [n, O]), x: x, weight: w)
        }
        let made = matmulPrimitiveCount(n: O, k: I)
        #expect(made > 0 && made <= 80)
        #expect(matmulPrimitiveBytes() > before)
    #endif
}

/// A dW-shaped bf16 product (A stored transposed) whose inner length is cut into pieces, each
/// after the first adding to C, equals the product of the bf16-rounded operands.
@Test func bf16ProductCutAlongItsInnerLengthMatches() {
    guard BFloat16Matmul.isAvailable else { return }
    let (m, n, k) = (5, 7, 1000)  // k: 768 + 224 + 8
    let a = randomFloats(k * m, seed: 50).map(BFloat16.bits)
    let b = randomFloats(k * n, seed: 51).map(BFloat16.bits)
    var c = [Float](repeating: 1, count: m * n)
    c.withUnsafeMutableBufferPointer {
        BFloat16Matmul.gemm(
            transA: true, transB: false, m: m, n: n, k: k, a: a, b: b, accumulate: true, c: $0.baseAddress!)
    }
    var worst: Float = 0
    for i in 0..<m {
        for j in 0..<n {
            var sum: Double = 1
            for p in 0..<k {
                sum += Double(BFloat16.float(a[p * m + i])) * Double(BFloat16.float(b[p * n + j]))
            }
            worst = max(worst, abs(c[i * n + j] - Float(sum)))
        }
    }
    #expect(worst < 1e-3)
}

@Test func threadCountFollowsOMPAndTheAffinity() {
    let status = "Name:\tgrpo\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1,4\n"
    #expect(threadCount(environment: ["OMP_NUM_THREADS": "3"], allowedCPUs: status) == 3)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    #expect(threadCount(environment: [:], allowedCPUs: status) == min(3, cores))
    #expect(threadCount(environment: [:], allowedCPUs: "Cpus_allowed_list:\t1\n") == 1)
    #expect(threadCount(environment: ["OMP_NUM_THREADS": "x"], allowedCPUs: nil) == cores)
}

@Test func microarchitectureNamesTheCore() {
    // The two AVX-512 machine classes both say "AMD EPYC"; the family tells Zen 4 from Zen 5.
    #expect(
        CPUFeatures.microarchitecture(vendor: "AuthenticAMD", family: 25, model: 17, hasAVX512: true)
            == "AMD Zen 4 (family 25, model 17)")
    #expect(
        CPUFeatures.microarchitecture(vendor: "AuthenticAMD", family: 25, model: 1, hasAVX512: false)
            == "AMD Zen 3 (family 25, model 1)")
    #expect(
        CPUFeatures.microarchitecture(vendor: "AuthenticAMD", family: 26, model: 2, hasAVX512: true)
            == "AMD Zen 5 (family 26, model 2)")
    #expect(
        CPUFeatures.microarchitecture(vendor: "AuthenticAMD", family: 23, model: 49, hasAVX512: false)
            == "AMD Zen 2 (family 23, model 49)")
    #expect(
        CPUFeatures.microarchitecture(vendor: "GenuineIntel", family: 6, model: 143, hasAVX512: true)
            == "GenuineIntel (family 6, model 143)")
}
