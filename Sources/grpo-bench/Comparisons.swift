import Foundation
import Generation
import Models
import Tensors
import Training

// The timing helpers and the comparisons `grpo-bench` prints (full fine-tuning against LoRA,
// float32 against bf16), shared by its subcommands and its main run.

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Best of `repeats` timings after one warm-up.
func best(_ repeats: Int, _ body: () -> Void) -> Double {
    body()
    return (0..<repeats).map { _ in seconds(body) }.min()!
}

func field(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// A batch of 4 x 512 random tokens on SmolLM2-135M's shapes (`layers` layers), with the uniform
/// dLogp the benchmarks backpropagate.
struct BenchmarkBatch {
    let config: ModelConfig
    var lengths = [512, 512, 512, 512]
    let batch: TokenBatch
    let dLogp: [Float]

    init(layers: Int) {
        let config = smolLM2Shape(layers: layers)
        var rng = SplitMix64(seed: 2)
        batch = TokenBatch(
            sequences: lengths.map { n in (0..<n).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } })
        dLogp = [Float](repeating: -1.0 / Float(batch.targetRows.count), count: batch.targetRows.count)
        self.config = config
    }

    /// A GRPO micro-batch instead: `grpoPrompts` 20-token prompts, each packed once and continued
    /// by 8 completions of 128 tokens (log-probs of the completions only).
    init(layers: Int, grpoPrompts: Int) {
        let config = smolLM2Shape(layers: layers)
        var rng = SplitMix64(seed: 2)
        func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } }
        let prompts = (0..<grpoPrompts).map { _ in tokens(20) }
        batch = TokenBatch(
            prompts: prompts, continuations: prompts.map { _ in (0..<8).map { _ in tokens(128) } })
        dLogp = [Float](repeating: -1.0 / Float(batch.targetRows.count), count: batch.targetRows.count)
        self.config = config
    }
}

/// Best time of a full fine-tune's forward + backward of `batch`, gradients zeroed first.
func trainingSeconds(_ model: Transformer, _ batch: TokenBatch, _ dLogp: [Float], repeats: Int) -> Double {
    best(repeats) {
        model.parameters.zeroGradients()
        model.forward(batch)
        model.backward(dLogp: dLogp)
    }
}

/// Seconds (best of `repeats`) for `model` to sample 4 random 32-token prompts x 8 completions x 64
/// new tokens.
func decodeSeconds(_ model: Transformer, repeats: Int) -> Double {
    var parameters = SamplingParameters()
    parameters.numGenerations = 8
    parameters.maxNewTokens = 64
    parameters.seed = 1
    var rng = SplitMix64(seed: 9)
    let vocabulary = UInt64(model.config.vocabSize)
    let prompts = (0..<4).map { _ in (0..<32).map { _ in Int32(rng.next() % vocabulary) } }
    let generator = Generator(model: model)
    return best(repeats) { _ = try! generator.generate(prompts: prompts, parameters: parameters) }
}

/// Forward+backward of one batch with full fine-tuning, a frozen base, and LoRA (r 16, all-linear)
/// with and without lora_dropout, on one model; then decoding with and without the adapters.
func loraComparison(config: ModelConfig, batch: TokenBatch, dLogp: [Float], repeats: Int) {
    print("\n== LoRA (r 16, all-linear) on the same model and batch ==")
    let model = ModelLoader.randomModel(config: config, seed: 1)
    let fullTime = trainingSeconds(model, batch, dLogp, repeats: repeats)
    model.frozenBase = true
    let frozenTime = best(repeats) {
        model.forward(batch)
        model.backward(dLogp: dLogp)
    }
    var settings = LoRASettings()
    settings.targetModules = ["all-linear"]
    settings.dropout = 0.05
    let lora = try! LoRA(model: model, settings: settings, seed: 3)
    // Non-zero B, as after training, so the adapters' products are not all zeros.
    for i in 0..<lora.parameters.values.count { lora.parameters.values.pointer[i] *= 0.5 }
    var times: [(String, Double)] = []
    for (label, dropout) in [("LoRA, lora_dropout 0", false), ("LoRA, lora_dropout 0.05", true)] {
        let t = best(repeats) {
            lora.parameters.zeroGradients()
            if dropout { lora.dropout.beginTrainingPass(1) }
            model.forward(batch)
            model.backward(dLogp: dLogp)
            lora.dropout.endTrainingPass()
        }
        times.append((label, t))
    }
    lora.enabled = false
    let referenceTime = best(repeats) { model.forward(batch) }
    lora.enabled = true
    let adaptedForward = best(repeats) { model.forward(batch) }
    for (label, t) in [("full fine-tune", fullTime), ("frozen base, no adapters", frozenTime)] + times {
        print(
            "\(field(label, 34)) \(String(format: "%7.0f", Double(batch.tokenCount) / t)) tokens/s  \(String(format: "%.2f", t / fullTime))x of full fine-tuning's time"
        )
    }
    print(
        "forward only: base \(String(format: "%.3f", referenceTime)) s, with adapters \(String(format: "%.3f", adaptedForward)) s (\(String(format: "%.2f", adaptedForward / referenceTime))x)"
    )
    let decode = [false, true].map { enabled in
        lora.enabled = enabled
        return decodeSeconds(model, repeats: repeats)
    }
    print(
        "decode 4 x 8 x 64 tokens: base \(String(format: "%.3f", decode[0])) s, with adapters \(String(format: "%.3f", decode[1])) s (\(String(format: "%.2f", decode[1] / decode[0]))x)"
    )
}

/// Model FLOPs of one forward: matmuls at 2 per multiply-add; causal attention counted as half of T².
func modelForwardFlops(_ config: ModelConfig, _ batch: TokenBatch, _ lengths: [Int]) -> Double {
    let (N, C, F, V, L) = (
        batch.tokenCount, config.hiddenSize, config.intermediateSize, config.vocabSize, config.numHiddenLayers
    )
    let (H, K, D) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim)
    let layerFlops = 2.0 * Double(N * C * (H + 2 * K) * D + N * H * D * C + N * C * 2 * F + N * F * C)
    // QKᵀ and PV, the causal half of each.
    let attentionFlops = lengths.reduce(0.0) { $0 + 2.0 * Double($1 * $1 * D * H) }
    let headFlops = 2.0 * Double(batch.targetRows.count * C * V)
    return Double(L) * (layerFlops + attentionFlops) + headFlops
}

/// Matmul peaks in float32 and bf16 (bf16 operands, float32 result; the weight row-major or
/// prepacked, whichever is faster) on the 2048-token layer shapes of SmolLM2-135M, in GFLOP/s.
func matmulPeaks(repeats: Int) -> (float32: Double, bf16: Double) {
    var peaks = (float32: 0.0, bf16: 0.0)
    for (m, n, k) in [(2048, 2048, 2048), (2048, 3072, 576), (2048, 576, 1536)] {
        let x = Tensor(zeros: [m, k]), w = Tensor(zeros: [n, k]), y = Tensor(zeros: [m, n])
        for i in 0..<x.count { x[i] = Float(i % 7) * 0.1 }
        for i in 0..<w.count { w[i] = Float(i % 5) * 0.1 }
        let flops = 2.0 * Double(m * n * k)
        peaks.float32 = max(
            peaks.float32, flops / best(repeats) { linearForward(y: y, x: x, weight: w) } / 1e9)
        guard BFloat16Matmul.isAvailable else { continue }
        // The best of the row-major and the prepacked weight: the peak the kernels reach.
        let xb = BFloat16Buffer(rounding: x)
        for layouts: BFloat16Weight.Layouts in [.rowMajor, .packed] {
            let wb = BFloat16Weight(rounding: w, layouts: layouts)
            let t = best(repeats) { BFloat16Matmul.forward(m: m, x: xb.pointer, weight: wb, y: y.pointer) }
            peaks.bf16 = max(peaks.bf16, flops / t / 1e9)
        }
    }
    return peaks
}

/// Forward+backward and decoding of one model in float32 and in bf16, same run.
func precisionComparison(
    config: ModelConfig, batch: TokenBatch, dLogp: [Float], forwardFlops: Double, repeats: Int
) {
    let peaks = matmulPeaks(repeats: repeats)
    print(
        "\n== precision: float32 vs bf16 (\(CPUFeatures.vectorClass)); matmul peak float32 \(String(format: "%.0f", peaks.float32)) GFLOP/s, bf16 \(String(format: "%.0f", peaks.bf16)) GFLOP/s =="
    )
    guard BFloat16Matmul.isAvailable else {
        print("bf16 matmuls are not available on this CPU: bf16 runs float32")
        return
    }
    let model = ModelLoader.randomModel(config: config, seed: 1)
    var times: [LinearPrecision: (train: Double, decode: Double)] = [:]
    for precision in [LinearPrecision.float32, .bf16] {
        model.precision = precision
        let train = trainingSeconds(model, batch, dLogp, repeats: repeats)
        let decode = decodeSeconds(model, repeats: repeats)
        times[precision] = (train, decode)
        let gflops = 3 * forwardFlops / train / 1e9
        print(
            "\(field(precision.rawValue, 8)) forward+backward \(String(format: "%6.2f", train)) s (\(String(format: "%6.0f", gflops)) GFLOP/s, \(String(format: "%3.0f", 100 * gflops / (precision == .bf16 ? peaks.bf16 : peaks.float32)))% of its matmul peak)  decode 4 x 8 x 64 tokens \(String(format: "%6.2f", decode)) s"
        )
    }
    let (f, b) = (times[.float32]!, times[.bf16]!)
    print(
        "bf16 vs float32: forward+backward \(String(format: "%.2f", f.train / b.train))x faster, decode \(String(format: "%.2f", f.decode / b.decode))x faster"
    )
    // The lm_head's backward from the kept softmax numerators against recomputing its logits,
    // alternated so both see the same machine.
    var (kept, recomputed) = (Double.infinity, Double.infinity)
    let limit = model.keptSoftmaxLimitBytes
    for _ in 0..<2 {
        model.keptSoftmaxLimitBytes = limit
        kept = min(kept, trainingSeconds(model, batch, dLogp, repeats: repeats))
        model.keptSoftmaxLimitBytes = 0
        recomputed = min(recomputed, trainingSeconds(model, batch, dLogp, repeats: repeats))
    }
    model.keptSoftmaxLimitBytes = limit
    print(
        "bf16 forward+backward with the softmax numerators kept \(String(format: "%.2f", kept)) s, with the logits recomputed \(String(format: "%.2f", recomputed)) s (\(String(format: "%.2f", recomputed / kept))x)"
    )
}
