import Foundation
import Tensors

/// Hugging Face's repetition penalty (from CTRL, Keskar and others 2019) on one row of logits, in place.
public func applyRepetitionPenalty(_ logits: inout [Float], previous tokens: [Int32], penalty: Float) {
    guard penalty != 1 else { return }
    for token in Set(tokens) {
        let i = Int(token)
        logits[i] = logits[i] > 0 ? logits[i] / penalty : logits[i] * penalty
    }
}

/// The distribution a token is drawn from, as kept (token, probability) pairs in token order.
///
/// softmax(logits / T), then top-k, top-p and min-p in the order transformers applies its
/// warpers, renormalised after each.
///
/// - top-k keeps the k highest logits (ties at the k-th value kept, as transformers' threshold does);
/// - top-p keeps the smallest set of most likely tokens whose probability reaches p;
/// - min-p keeps tokens with probability at least min-p times the most likely one's.
public func samplingDistribution(
    logits: [Float], temperature: Float, topK: Int = 0, topP: Float = 1, minP: Float = 0
) -> [(token: Int32, probability: Float)] {
    precondition(temperature > 0, "sampling needs a positive temperature")
    let maxLogit = logits.max() ?? 0
    var probabilities = logits.map { Foundation.exp(Double(($0 - maxLogit) / temperature)) }
    var keep = [Bool](repeating: true, count: logits.count)
    if topK > 0 && topK < logits.count {
        let threshold = logits.sorted(by: >)[topK - 1]
        for i in logits.indices where logits[i] < threshold { keep[i] = false }
    }
    func normalise() {
        let total = probabilities.indices.reduce(0.0) { keep[$1] ? $0 + probabilities[$1] : $0 }
        for i in probabilities.indices { probabilities[i] = keep[i] ? probabilities[i] / total : 0 }
    }
    normalise()
    if topP < 1 {
        let order = probabilities.indices.filter { keep[$0] }.sorted { probabilities[$0] > probabilities[$1] }
        var cumulative = 0.0
        var inside = true
        for i in order {
            if !inside { keep[i] = false }
            cumulative += probabilities[i]
            if cumulative >= Double(topP) { inside = false }
        }
        normalise()
    }
    if minP > 0 {
        let top = probabilities.max() ?? 0
        for i in probabilities.indices where probabilities[i] < Double(minP) * top { keep[i] = false }
        normalise()
    }
    return probabilities.indices.compactMap { keep[$0] ? (Int32($0), Float(probabilities[$0])) : nil }
}

/// Draws from a distribution with one uniform number (inverse CDF, in token order).
public func draw(_ distribution: [(token: Int32, probability: Float)], uniform u: Float) -> Int32 {
    var cumulative: Float = 0
    for (token, probability) in distribution {
        cumulative += probability
        if u < cumulative { return token }
    }
    return distribution.last { $0.probability > 0 }!.token
}

/// Draws from dense probabilities (summing to 1) with one uniform number, in token order.
public func draw(probabilities: [Float], uniform u: Float) -> Int32 {
    var cumulative: Float = 0
    for (token, probability) in probabilities.enumerated() {
        cumulative += probability
        if u < cumulative { return Int32(token) }
    }
    return Int32(probabilities.lastIndex { $0 > 0 } ?? 0)
}

/// The index of the largest value (the first one on ties, as torch.argmax).
public func argmax(_ row: ArraySlice<Float>) -> Int32 {
    var best = row.startIndex
    for i in row.indices where row[i] > row[best] { best = i }
    return Int32(best - row.startIndex)
}

/// log softmax(logits / T)[token]: the log-prob TRL computes for a sampled token.
public func tokenLogProbability(_ row: ArraySlice<Float>, token: Int32, temperature: Float) -> Float {
    let t = Double(temperature)
    let maxLogit = Double(row.max() ?? 0)
    let total = row.reduce(0.0) { $0 + Foundation.exp((Double($1) - maxLogit) / t) }
    return Float((Double(row[row.startIndex + Int(token)]) - maxLogit) / t - Foundation.log(total))
}

/// The random stream of one completion: a function of (seed, prompt, sample) only, so a completion
/// does not depend on what else is in the batch.
public func completionStream(seed: UInt64, prompt: Int, sample: Int) -> SplitMix64 {
    var mixer = SplitMix64(seed: seed ^ (UInt64(prompt) &* 0x9E37_79B9_7F4A_7C15))
    let a = mixer.next()
    var second = SplitMix64(seed: a ^ (UInt64(sample) &* 0xBF58_476D_1CE4_E5B9))
    return SplitMix64(seed: second.next())
}
