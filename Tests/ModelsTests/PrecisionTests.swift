import Foundation
import Models
import SafeTensors
import Tensors
import TestSupport
import Testing

// bf16 against the float32 fixtures PyTorch + transformers made: bf16 operands cost accuracy, so
// the bounds are the ones a bf16 forward allows (mean |d logp| <= 2e-2, max <= 0.15; gradients
// pointing the same way, cosine >= 0.99), not float32's 1e-4. Where the CPU has no bf16
// instructions the same tests check that bf16 falls back to float32 exactly.

@Test func bf16RoundsToNearestEven() {
    #expect(BFloat16.bits(1) == 0x3F80)
    #expect(BFloat16.bits(-2) == 0xC000)
    #expect(BFloat16.bits(1 + 1.0 / 256) == 0x3F80)  // a tie: to the even 1.0
    #expect(BFloat16.bits(1 + 3.0 / 256) == 0x3F82)  // a tie: to the even 1 + 4/256
    #expect(BFloat16.bits(1 + 1.5 / 256) == 0x3F81)  // past the tie: up
    #expect(BFloat16.bits(.infinity) == 0x7F80)
    #expect(BFloat16.bits(Float.greatestFiniteMagnitude) == 0x7F80)  // overflows to infinity, as torch
    #expect(BFloat16.float(BFloat16.bits(.nan)).isNaN)
    #expect(BFloat16.rounded(3.140625) == 3.140625)
    // The vector path agrees with the scalar one, tail included.
    var rng = SplitMix64(seed: 4)
    let values = (0..<1000).map { i in
        i % 97 == 0 ? Float.nan : rng.nextNormal() * Float(1 << (i % 20))
    }
    let out = UnsafeMutablePointer<UInt16>.allocate(capacity: values.count)
    defer { out.deallocate() }
    values.withUnsafeBufferPointer { BFloat16.convert($0.baseAddress!, into: out, count: values.count) }
    for (i, v) in values.enumerated() {
        if v.isNaN { #expect(BFloat16.float(out[i]).isNaN) } else { #expect(out[i] == BFloat16.bits(v)) }
    }
}

@Test func precisionSettingsResolveAgainstTheMachine() {
    #expect(PrecisionSetting.float32.resolved(bf16Available: true) == (.float32, nil))
    #expect(PrecisionSetting.auto.resolved(bf16Available: true) == (.bf16, nil))
    #expect(PrecisionSetting.auto.resolved(bf16Available: false) == (.float32, nil))  // silently
    let fallback = PrecisionSetting.bf16.resolved(bf16Available: false)
    #expect(fallback.0 == .float32)
    #expect(fallback.note?.contains("running float32") == true)
    #expect(PrecisionSetting.bf16.resolved(bf16Available: true) == (.bf16, nil))
    // This machine's answer follows its flags.
    #expect(BFloat16Matmul.isAvailable == CPUFeatures.hasAVX512BF16)
}

@Test(.enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"))
func bf16MatmulsMatchFloat32OnRoundedOperands() throws {
    var rng = SplitMix64(seed: 3)
    let (m, n, k) = (37, 29, 70)
    let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [n, k])
    for i in 0..<a.count { a[i] = BFloat16.rounded(rng.nextNormal()) }
    for i in 0..<b.count { b[i] = BFloat16.rounded(rng.nextNormal()) }
    let (expected, got) = (Tensor(zeros: [m, n]), Tensor(zeros: [m, n]))
    linearForward(y: expected, x: a, weight: b)
    linearForwardBF16(y: got, x: a, weight: BFloat16Weight(rounding: b))
    #expect(maxAbsDiff(got.toArray(), expected.toArray()).0 <= 1e-4)
    // Backward: dX = dY W and dW += dYᵀ x, against float32 on the same rounded values.
    let dY = Tensor(zeros: [m, n])
    for i in 0..<dY.count { dY[i] = BFloat16.rounded(rng.nextNormal()) }
    let (dX32, dW32, dXb, dWb) = (
        Tensor(zeros: [m, k]), Tensor(zeros: [n, k]), Tensor(zeros: [m, k]), Tensor(zeros: [n, k])
    )
    for i in 0..<dW32.count { (dW32[i], dWb[i]) = (1, 1) }  // accumulates onto what is there
    linearBackward(dX: dX32, dWeight: dW32, dY: dY, x: a, weight: b)
    linearBackwardBF16(dX: dXb, dWeight: dWb, dY: dY, x: a, weight: BFloat16Weight(rounding: b))
    #expect(maxAbsDiff(dXb.toArray(), dX32.toArray()).0 <= 1e-4)
    #expect(maxAbsDiff(dWb.toArray(), dW32.toArray()).0 <= 1e-4)
}

/// Prepacked weights give the row-major product for every row count, a packed-only weight too
/// (the reference model's), and odd shapes that the kernels cannot block still compute.
@Test(
    .enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"),
    arguments: [(37, 29, 70), (1, 960, 576), (32, 3072, 576), (300, 576, 1536)])
func packedBF16WeightsGiveTheRowMajorProduct(m: Int, n: Int, k: Int) throws {
    var rng = SplitMix64(seed: UInt64(m * n + k))
    let x = Tensor(zeros: [m, k]), w = Tensor(zeros: [n, k])
    for i in 0..<x.count { x[i] = rng.nextNormal() }
    for i in 0..<w.count { w[i] = rng.nextNormal() }
    let expected = Tensor(zeros: [m, n])
    let rowMajor = BFloat16Weight(rounding: w)
    #expect(rowMajor.layouts == .rowMajor)
    linearForwardBF16(y: expected, x: x, weight: rowMajor)
    for layouts: BFloat16Weight.Layouts in [[.rowMajor, .packed], .packed] {
        let weight = BFloat16Weight(rounding: w, layouts: layouts)
        #expect(weight.layouts == layouts)
        #expect(weight.bytes >= 2 * n * k * (layouts.contains(.rowMajor) ? 2 : 1))
        let got = Tensor(zeros: [m, n])
        linearForwardBF16(y: got, x: x, weight: weight)
        #expect(maxAbsDiff(got.toArray(), expected.toArray()).0 <= 1e-5 * Float(k))
    }
}

/// The lm_head backward from the softmax numerators a bf16 forward kept equals the one that
/// recomputes the logits, to bf16 rounding (one rounds the probabilities, the other dz), and
/// keeping them changes no log-probability.
@Test(.enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"), arguments: [Float(1), 0.7])
func keptSoftmaxNumeratorsGiveTheRecomputedGradients(temperature: Float) throws {
    var rng = SplitMix64(seed: 41)
    let (M, C, V) = (37, 24, 300)
    let hidden = Tensor(zeros: [M, C]), weight = Tensor(zeros: [V, C])
    for i in 0..<hidden.count { hidden[i] = 2 * rng.nextNormal() }
    for i in 0..<weight.count { weight[i] = rng.nextNormal() }
    let bf16 = BFloat16Weight(rounding: weight)
    let targets = (0..<M).map { _ in Int32(rng.next() % UInt64(V)) }
    let dLogp = (0..<M).map { _ in rng.nextNormal() }
    var results: [(logp: [Float], dHidden: [Float], dWeight: [Float])] = []
    for numerators in [nil, SoftmaxNumerators()] {
        let (logp, lse) = (Tensor(zeros: [M]), Tensor(zeros: [M]))
        logSoftmaxGatherForward(
            logp: logp, lse: lse, hidden: hidden, weight: weight, weightBF16: bf16, targets: targets,
            temperature: temperature, chunkRows: 16, keeping: numerators)
        let (dHidden, dWeight) = (Tensor(zeros: [M, C]), Tensor(zeros: [V, C]))
        for i in 0..<dWeight.count { dWeight[i] = 0.5 }  // accumulates onto what is there
        logSoftmaxGatherBackward(
            dHidden: dHidden, dWeight: dWeight, dLogp: dLogp, hidden: hidden, weight: weight,
            weightBF16: bf16, targets: targets, lse: lse, temperature: temperature, chunkRows: 16,
            numerators: numerators)
        results.append((logp.toArray(), dHidden.toArray(), dWeight.toArray()))
    }
    #expect(results[0].logp == results[1].logp)
    #expect(relativeError(results[1].dHidden, results[0].dHidden) <= 1e-2)
    #expect(relativeError(results[1].dWeight, results[0].dWeight) <= 1e-2)
    #expect(results[1].dHidden != results[0].dHidden, "the kept path did not run")
}

@Test(arguments: fixtureNames)
func bf16LogProbabilitiesStayNearTransformers(name: String) throws {
    let fixture = try Fixture(name)
    let (precision, _) = PrecisionSetting.bf16.resolved()
    fixture.model.precision = precision
    for (temperature, key) in [(Float(1), "logp_t1"), (0.7, "logp_t07")] {
        let logp = fixture.model.forward(fixture.batch, temperature: temperature)
        let expected = try fixture.expected.floats(key)
        let differences = zip(logp, expected).map { abs($0 - $1) }
        let mean = differences.reduce(0, +) / Float(differences.count)
        if precision == .float32 {
            #expect(differences.max()! <= 1e-4, "\(name): the float32 fallback must be float32")
        } else {
            #expect(
                mean <= 2e-2 && differences.max()! <= 0.15,
                "\(name) \(key): mean \(mean), max \(differences.max()!)")
            #expect(differences.max()! > 0, "\(name): bf16 gave float32's log-probabilities exactly")
        }
    }
    // Decoding's logits go through the same bf16 weights.
    let logits = fixture.model.logits(fixture.batch, rows: fixture.inputs.logitRows).flatMap { $0 }
    let (diff, _) = maxAbsDiff(logits, try fixture.expected.floats("logits"))
    #expect(diff <= (precision == .bf16 ? 0.25 : 1e-4), "\(name) logits: max |diff| = \(diff)")
}

@Test(arguments: fixtureNames)
func bf16GradientsPointWhereTransformersDo(name: String) throws {
    let fixture = try Fixture(name)
    let model = fixture.model
    model.precision = PrecisionSetting.bf16.resolved().0
    model.parameters.zeroGradients()
    model.forward(fixture.batch, temperature: fixture.inputs.gradientTemperature)
    model.backward(dLogp: fixture.inputs.gradientWeights)
    var worst: (name: String, cosine: Double) = ("", 1)
    for slot in model.parameters.slots {
        let expected = try fixture.expected.floats("grad." + slot.name)
        let got = model.parameters.gradient(slot.name).toArray()
        let dot = zip(got, expected).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let norms = (
            got.reduce(0.0) { $0 + Double($1) * Double($1) },
            expected.reduce(0.0) { $0 + Double($1) * Double($1) }
        )
        let cosine = norms.0 == 0 && norms.1 == 0 ? 1 : dot / (norms.0 * norms.1).squareRoot()
        if cosine < worst.cosine { worst = (slot.name, cosine) }
    }
    #expect(
        worst.cosine >= 0.99, "\(name): gradient of \(worst.name) has cosine \(worst.cosine) to float32's")
}

/// The bf16 weights are made from the float32 masters once, and made again after the masters
/// change (an optimizer step marks the store changed), never left stale.
@Test(.enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"))
func bf16WeightsFollowTheirMasters() throws {
    let name = fixtureNames[0]
    let fixture = try Fixture(name)
    fixture.model.precision = .bf16
    let before = fixture.model.logProbabilities(fixture.batch)
    let values = fixture.model.parameters.values.pointer
    for i in 0..<fixture.model.parameters.count { values[i] *= 0.5 }
    fixture.model.parameters.valuesChanged()
    let after = fixture.model.logProbabilities(fixture.batch)
    let fresh = try Fixture(name)
    for i in 0..<fresh.model.parameters.count { fresh.model.parameters.values.pointer[i] *= 0.5 }
    fresh.model.precision = .bf16
    #expect(after != before)
    #expect(after == fresh.model.logProbabilities(fresh.batch))
}

/// Holding a frozen bf16 model's weights in bf16 only changes nothing it computes, packed for
/// forwards only (a reference model) or row-major when gradients flow through it (a LoRA base).
@Test(
    .enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"),
    arguments: ["llama-gqa", "qwen2-bias"], [false, true])
func holdingFrozenWeightsInBF16OnlyKeepsTheOutputs(name: String, backward: Bool) throws {
    let fixture = try Fixture(name)
    fixture.model.precision = .bf16
    let before = fixture.model.logProbabilities(fixture.batch)
    let logits = fixture.model.logits(fixture.batch, rows: fixture.inputs.logitRows)
    fixture.model.frozenBase = true
    fixture.model.holdFrozenWeightsInBF16(backward: backward)
    #expect(fixture.model.float32WeightsReleased)
    // Row-major and packed products agree to float32 rounding (the kernels' summation order).
    let held = fixture.model.logProbabilities(fixture.batch)
    #expect(maxAbsDiff(held, before).0 <= (backward ? 1e-4 : 0))
    let heldLogits = fixture.model.logits(fixture.batch, rows: fixture.inputs.logitRows)
    #expect(maxAbsDiff(Array(heldLogits.joined()), Array(logits.joined())).0 <= (backward ? 1e-4 : 0))
    fixture.model.parameters.valuesChanged()  // the kept copies are not remade from the released pages
    #expect(fixture.model.logProbabilities(fixture.batch) == held)
    if backward {
        // Gradients flow through the held weights (into adapters, in a LoRA run).
        fixture.model.forward(fixture.batch)
        fixture.model.backward(dLogp: [Float](repeating: 1, count: held.count))
    }
}
