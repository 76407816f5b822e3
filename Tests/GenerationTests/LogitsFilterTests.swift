import Foundation
import Generation
import Tensors
import Testing

private func probabilities(_ d: [(token: Int32, probability: Float)]) -> [Int32: Float] {
    Dictionary(uniqueKeysWithValues: d.map { ($0.token, $0.probability) })
}

@Test func temperatureTopKTopPMinPByHand() {
    // logits ln(4), ln(3), ln(2), ln(1): softmax = 0.4, 0.3, 0.2, 0.1.
    let logits: [Float] = [4, 3, 2, 1].map { Float(log(Double($0))) }
    var p = probabilities(samplingDistribution(logits: logits, temperature: 1))
    #expect(abs(p[0]! - 0.4) < 1e-6 && abs(p[3]! - 0.1) < 1e-6)
    p = probabilities(samplingDistribution(logits: logits, temperature: 1, topK: 2))
    #expect(p.count == 2 && abs(p[0]! - 4 / 7) < 1e-6)
    // 0.4 + 0.3 reaches 0.7.
    p = probabilities(samplingDistribution(logits: logits, temperature: 1, topP: 0.7))
    #expect(p.count == 2 && abs(p[1]! - 3 / 7) < 1e-6)
    p = probabilities(samplingDistribution(logits: logits, temperature: 1, topP: 0.71))
    #expect(p.count == 3)
    p = probabilities(samplingDistribution(logits: logits, temperature: 1, minP: 0.45))  // keeps p >= 0.18
    #expect(p.count == 3 && abs(p[2]! - 2 / 9) < 1e-6)
    // Temperature 0.5 squares the odds: 16:9:4:1.
    p = probabilities(samplingDistribution(logits: logits, temperature: 0.5))
    #expect(abs(p[0]! - 16 / 30) < 1e-5)
}

@Test func repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
    var logits: [Float] = [2, -2, 1]
    applyRepetitionPenalty(&logits, previous: [0, 1, 1], penalty: 2)
    #expect(logits == [1, -4, 1])
}

/// Many draws follow the filtered distribution: every kept token's frequency within 5 standard
/// errors, filtered tokens never drawn.
@Test func drawsFollowTheFilteredDistribution() {
    let logits: [Float] = [1.5, 0.2, -0.3, 2.0, 0.9, -4, 0.0, 1.1]
    let distribution = samplingDistribution(logits: logits, temperature: 0.8, topK: 6, topP: 0.9, minP: 0.05)
    let expected = probabilities(distribution)
    var rng = completionStream(seed: 7, prompt: 0, sample: 0)
    let n = 200_000
    var counts = [Int32: Int]()
    for _ in 0..<n { counts[draw(distribution, uniform: rng.nextUniform()), default: 0] += 1 }
    for token in 0..<Int32(logits.count) {
        let p = Double(expected[token] ?? 0)
        let observed = Double(counts[token] ?? 0) / Double(n)
        if p == 0 {
            #expect(counts[token] == nil, "token \(token) was filtered out but drawn")
        } else {
            let standardError = (p * (1 - p) / Double(n)).squareRoot()
            #expect(abs(observed - p) < 5 * standardError, "token \(token): \(observed) vs \(p)")
        }
    }
}

@Test func streamsDependOnlyOnSeedPromptAndSample() {
    var a = completionStream(seed: 1, prompt: 2, sample: 3)
    var b = completionStream(seed: 1, prompt: 2, sample: 3)
    var c = completionStream(seed: 1, prompt: 2, sample: 4)
    let (x, y, z) = (a.next(), b.next(), c.next())
    #expect(x == y && x != z)
}

@Test func denseFastPathDrawsWhatTheGeneralPathDraws() {
    // 301 logits: 18 chunks of 16 and a scalar tail; one logit far below the rest rounds to 0.
    var logits = (0..<301).map { Float(sin(Double($0) * 1.7)) * 3 }
    logits[299] = -200
    var probabilities = logits
    let softmaxLogSumExp = softmaxInPlace(&probabilities, temperature: 0.8)
    let distribution = samplingDistribution(logits: logits, temperature: 0.8)
    var rng = completionStream(seed: 3, prompt: 1, sample: 2)
    var (differ, fusedDiffer) = (0, 0)
    for _ in 0..<5000 {
        let u = rng.nextUniform()
        let general = draw(distribution, uniform: u)
        if draw(probabilities: probabilities, uniform: u) != general { differ += 1 }
        let (token, logSumExp) = logits.withUnsafeBufferPointer {
            drawFromSoftmax($0.baseAddress!, count: $0.count, temperature: 0.8, uniform: u)
        }
        if token != general { fusedDiffer += 1 }
        #expect(logSumExp == softmaxLogSumExp)
    }
    // Float vs Double rounding may move a boundary by an ulp; a real difference would show often.
    #expect(differ <= 2)
    #expect(fusedDiffer <= 2)
    // u just below 1 lands on the last token with any probability, not on the one that rounds to 0.
    let (last, _) = logits.withUnsafeBufferPointer {
        drawFromSoftmax($0.baseAddress!, count: $0.count, temperature: 0.8, uniform: 0.999_999_9)
    }
    #expect(last == 300)
}
