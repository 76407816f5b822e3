import Foundation
import Generation
import Models
import Tensors
import Tokenizers
import Training

// Benchmarks print figures; they assert nothing (the machine is shared and noisy). Ratios are
// taken within one run. Run: swift run -c release grpo-bench [--quick]

/// SmolLM2-135M's shapes (tied embeddings), with random weights in every benchmark.
func smolLM2Shape(layers: Int) -> ModelConfig {
    ModelConfig(
        architecture: .llama, vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536,
        numHiddenLayers: layers,
        numAttentionHeads: 9, numKeyValueHeads: 3, ropeTheta: 100_000, tieWordEmbeddings: true,
        maxPositionEmbeddings: 8192)
}

let quick = CommandLine.arguments.contains("--quick")

/// The two benchmark shapes shared by the rollout and training comparisons.
let benchmarkShapes: [(String, ModelConfig)] = [
    (
        "qwen2-27m",
        ModelConfig(
            architecture: .qwen2, vocabSize: 8192, hiddenSize: 512, intermediateSize: 1408,
            numHiddenLayers: 8,
            numAttentionHeads: 8, numKeyValueHeads: 2, ropeTheta: 1_000_000, tieWordEmbeddings: true,
            maxPositionEmbeddings: 4096)
    ),
    ("smollm2-135m", smolLM2Shape(layers: 30)),
]

/// Qwen2.5-0.5B's shapes (tied embeddings), for the LoRA benchmark.
let qwen25HalfBShape = ModelConfig(
    architecture: .qwen2, vocabSize: 151_936, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24,
    numAttentionHeads: 14, numKeyValueHeads: 2, ropeTheta: 1_000_000, tieWordEmbeddings: true,
    maxPositionEmbeddings: 32768)

// `grpo-bench machine`: the line the benchmark scripts print first, naming the machine class and
// core their figures come from.
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "machine" {
    print("machine: \(CPUFeatures.summary), \(Date())")
    exit(0)
}

// `grpo-bench train-setup FOLDER [PROMPT_TOKENS [NAME...]]`: writes the benchmark models (the two
// shared shapes, or those named, qwen2.5-0.5b included) with a byte-level tokenizer and a 64-prompt
// dataset (32-byte prompts by default, so 32 tokens) for scripts/bench_train.sh and
// scripts/bench_lora.sh, which run `grpo train` and TRL's GRPOTrainer on them.
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "train-setup" {
    let root = CommandLine.arguments[2]
    let promptTokens = CommandLine.arguments.count >= 4 ? Int(CommandLine.arguments[3]) ?? 32 : 32
    let named = Array(CommandLine.arguments.dropFirst(4))
    let shapes = (benchmarkShapes + [("qwen2.5-0.5b", qwen25HalfBShape)]).filter {
        named.isEmpty ? $0.0 != "qwen2.5-0.5b" : named.contains($0.0)
    }
    for (name, config) in shapes {
        try ToyModel.write(to: root + "/" + name, config: config, seed: 11)
    }
    let lines = (0..<64).map { i in
        let a = 100 + (i * 37) % 900
        let b = 100 + (i * 91) % 900
        let text = "Question \(i % 10): add \(a) and \(b). A:"
        return
            "{\"prompt\": \"\(text.padding(toLength: promptTokens, withPad: " ", startingAt: 0))\", \"answer\": \"\(a + b)\"}"
    }
    try (lines.joined(separator: "\n") + "\n").write(
        toFile: root + "/prompts.jsonl", atomically: true, encoding: .utf8)
    print("wrote \(shapes.map(\.0).joined(separator: ", ")) and prompts.jsonl under \(root)")
    exit(0)
}

// `grpo-bench rollout FOLDER [NAME|all [PRECISION]]`: writes the two benchmark models (random
// weights, HF format) under FOLDER and the prompts, then times 4 prompts x 8 completions x 128 new
// tokens on each, or on the one named, in float32 or the precision given (scripts/bench_generate.sh
// runs transformers' generate on the same folders).
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "rollout" {
    let root = CommandLine.arguments[2]
    let only =
        CommandLine.arguments.count >= 4 && CommandLine.arguments[3] != "all" ? CommandLine.arguments[3] : nil
    let precisions =
        CommandLine.arguments.count >= 5
        ? CommandLine.arguments[4].split(separator: ",").map { LinearPrecision(rawValue: String($0))! }
        : [LinearPrecision.float32]
    var rng = SplitMix64(seed: 5)
    for (name, config) in benchmarkShapes {
        let folder = root + "/" + name
        if let only, only != name { continue }
        let model = ModelLoader.randomModel(config: config, seed: 11)
        try ModelLoader.save(model, to: folder)
        let prompts = (0..<4).map { _ in (0..<32).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } }
        let promptsJSON =
            "["
            + prompts.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",")
            + "]"
        try promptsJSON.write(toFile: folder + "/prompts.json", atomically: true, encoding: .utf8)
        for precision in precisions {
            model.precision = precision
            var parameters = SamplingParameters()
            parameters.numGenerations = 8
            parameters.maxNewTokens = 128
            parameters.seed = 1
            let generator = Generator(model: model)
            var warm = parameters
            warm.maxNewTokens = 4
            _ = try generator.generate(prompts: prompts, parameters: warm)
            var produced = 0
            // Best of two timed runs (the machine is shared); the transformers side does the same.
            let t = (0..<2).map { _ in
                seconds {
                    let groups = try! generator.generate(prompts: prompts, parameters: parameters)
                    produced = groups.joined().reduce(0) { $0 + $1.tokens.count }
                }
            }.min()!
            print(
                String(
                    format: "swift  %@ %@  %5d tokens in %6.2f s  %7.0f tokens/s  KV cache %@  peak RSS %@",
                    name, field(precision.rawValue, 7),
                    produced, t,
                    Double(produced) / t, formatBytes(generator.peakCacheBytes),
                    formatBytes(peakResidentBytes()))
            )
        }
    }
    exit(0)
}

// `grpo-bench decode-matmul [bf16|packed]`: the linear layers of one decode step at 32 rows, each on
// fresh weights as in decoding (a model's weights do not stay in cache between steps), in GFLOP/s,
// in float32 or with bf16 weights, row-major or prepacked.
if CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "decode-matmul" {
    let variant = CommandLine.arguments.count >= 3 ? CommandLine.arguments[2] : "float32"
    let bf16 = variant != "float32"
    let shapes: [(String, Int, Int)] = [
        ("27M qkv", 512, 768), ("27M o", 512, 512), ("27M gate+up", 512, 2816), ("27M down", 1408, 512),
        ("27M lm_head", 512, 8192), ("135M qkv", 576, 960), ("135M o", 576, 576),
        ("135M gate+up", 576, 3072), ("135M down", 1536, 576), ("135M lm_head", 576, 49152),
    ]
    let elementBytes = bf16 ? 2 : 4
    for (name, k, n) in shapes {
        let m = 32
        // Enough copies of the weights to exceed the last-level cache, used round robin.
        let copies = max(2, 64 * 1024 * 1024 / (n * k * elementBytes))
        let weights = (0..<copies).map { _ in Tensor(zeros: [n, k]) }
        for w in weights { for i in stride(from: 0, to: w.count, by: 97) { w[i] = 0.01 } }
        let low =
            bf16
            ? weights.map { BFloat16Weight(rounding: $0, layouts: variant == "packed" ? .packed : .rowMajor) }
            : []
        let (x, y) = (Tensor(zeros: [m, k]), Tensor(zeros: [m, n]))
        for i in 0..<x.count { x[i] = Float(i % 7) * 0.1 }
        var next = 0
        let t = best(5) {
            for _ in 0..<copies {
                if bf16 {
                    linearForwardBF16(y: y, x: x, weight: low[next % copies])
                } else {
                    linearForward(y: y, x: x, weight: weights[next % copies])
                }
                next += 1
            }
        }
        let flops = 2.0 * Double(m * n * k * copies)
        let bytes = Double(n * k * elementBytes * copies)
        print(
            String(
                format: "%@ 32 x %5d -> %5d: %6.1f GFLOP/s, weights streamed at %5.1f GB/s", field(name, 14),
                k, n,
                flops / t / 1e9, bytes / t / 1e9))
    }
    exit(0)
}

// `grpo-bench train-matmul [ROWS]`: each SmolLM2-135M projection's three training products at
// one micro-batch's rows (default 1044: a 20-token prompt and 8 completions of 128), float32 and
// bf16 (the forward through the packed weight, dX through the row-major one, dW from the rounded
// activations), best of 5, with the time the rounding of activations takes.
if CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "train-matmul" {
    let n = CommandLine.arguments.count >= 3 ? Int(CommandLine.arguments[2]) ?? 1044 : 1044
    let shapes: [(String, Int, Int)] = [
        ("qkv", 576, 960), ("o", 576, 576), ("gate+up", 576, 3072), ("down", 1536, 576),
        ("lm_head chunk", 576, 49152),
    ]
    print("\(n) rows; GFLOP/s of forward, dX, dW")
    for (name, i, o) in shapes {
        let rows = name == "lm_head chunk" ? min(n, 512) : n
        let weight = Tensor(zeros: [o, i])
        for j in stride(from: 0, to: weight.count, by: 97) { weight[j] = 0.01 }
        let low = BFloat16Weight(rounding: weight, layouts: [.rowMajor, .packed])
        let (x, y, dY, dX, dW) = (
            Tensor(zeros: [rows, i]), Tensor(zeros: [rows, o]), Tensor(zeros: [rows, o]),
            Tensor(zeros: [rows, i]), Tensor(zeros: [o, i])
        )
        for j in 0..<x.count { x[j] = Float(j % 7) * 0.1 }
        for j in 0..<dY.count { dY[j] = Float(j % 5) * 0.01 }
        let flops = 2.0 * Double(rows * i * o)
        let float32 = [
            best(5) { linearForward(y: y, x: x, weight: weight) },
            best(5) { linearBackward(dX: dX, dWeight: nil, dY: dY, x: x, weight: weight) },
            best(5) { linearBackward(dX: nil, dWeight: dW, dY: dY, x: x, weight: weight) },
        ]
        let bf16 = [
            best(5) { linearForwardBF16(y: y, x: x, weight: low) },
            best(5) { linearBackwardBF16(dX: dX, dWeight: nil, dY: dY, x: x, weight: low) },
            best(5) { linearBackwardBF16(dX: nil, dWeight: dW, dY: dY, x: x, weight: low) },
        ]
        let (xb, dYb) = (BFloat16Buffer(count: x.count), BFloat16Buffer(count: dY.count))
        let rounding = best(5) {
            BFloat16.convert(x.pointer, into: xb.pointer, count: x.count)
            BFloat16.convert(dY.pointer, into: dYb.pointer, count: dY.count)
        }
        let rates = { (times: [Double]) in
            times.map { String(format: "%6.1f", flops / $0 / 1e9) }.joined(separator: " ")
        }
        print(
            "\(field(name, 14)) \(rows) x \(i) -> \(o): float32 \(rates(float32)), bf16 \(rates(bf16)); "
                + String(
                    format: "rounding x and dY %.2f ms of bf16's %.2f ms", rounding * 1e3,
                    bf16.reduce(0, +) * 1e3))
    }
    exit(0)
}

// `grpo-bench decode-attention`: one decode step's attention (32 sequences, the 27M and 135M
// models' heads, 96 and 160 cached tokens, float32 and bf16 caches), the kernel alone, best of 20
// runs of 8 layers' worth.
if CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "decode-attention" {
    for elements in [CacheElements.float32, .bf16] {
        for (H, K, D) in [(8, 2, 64), (9, 3, 64)] {
            for L in [96, 160] {
                let (B, layers) = (32, 8)
                let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
                let q = Tensor(zeros: [B, H * D])
                for i in 0..<q.count { q[i] = Float(i % 7) * 0.01 }
                let rows = Tensor(zeros: [L, K * D])
                for i in 0..<rows.count { rows[i] = Float(i % 5) * 0.01 }
                let blocks = (0..<(B * layers)).map { _ in
                    DecodeCacheBlock(keys: rows, values: rows, elements: elements)
                }
                let out = Tensor(zeros: [B, H * D])
                let t = best(20) {
                    for l in 0..<layers {
                        let layer = blocks[(l * B)..<((l + 1) * B)]
                        attentionDecode(
                            out: out, q: q, keys: layer.map { UnsafeRawPointer($0.keys) },
                            values: layer.map { UnsafeRawPointer($0.values) }, elements: elements,
                            lengths: [Int](repeating: L, count: B), heads: heads, scale: 0.125)
                    }
                }
                let bytes = Double(layers * B * L * 2 * K * D * elements.bytes)
                print(
                    String(
                        format:
                            "%@ heads %d/%d, %3d cached tokens: %6.3f ms per step (8 layers), %5.1f GB/s of K/V",
                        field("\(elements)", 7), H, K, L, t * 1e3, bytes / t / 1e9))
            }
        }
    }
    exit(0)
}

// `grpo-bench train-attention [PROMPT COMPLETION G]`: the training attention kernels alone on one
// GRPO micro-batch of the 135M shape (by default a 20-token prompt packed once, continued by 8
// completions of 128 tokens; heads 9/3, dim 64), best of 5 runs of 8 layers' forward and backward,
// with the causal FLOPs they do.
if CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "train-attention" {
    let sizes = CommandLine.arguments.dropFirst(2).compactMap { Int($0) }
    let (prompt, own, G) = sizes.count == 3 ? (sizes[0], sizes[1], sizes[2]) : (20, 128, 8)
    let (H, K, D, layers) = (9, 3, 64, 8)
    let heads = AttentionHeads(queryHeads: H, keyValueHeads: K, headDim: D)
    // A prompt of 0 tokens: G sequences of their own.
    let sequences =
        prompt == 0
        ? PackedSequences(lengths: [Int](repeating: own, count: G))
        : PackedSequences(
            lengths: [prompt] + [Int](repeating: own, count: G),
            parents: [nil] + [Int?](repeating: 0, count: G))
    let N = sequences.tokenCount
    let qkv = Tensor(zeros: [N, heads.qkvWidth])
    for i in 0..<qkv.count { qkv[i] = Float(i % 13) * 0.02 - 0.1 }
    let (out, lse, dOut, dQKV) = (
        Tensor(zeros: [N, H * D]), Tensor(zeros: [N, H]), Tensor(zeros: [N, H * D]),
        Tensor(zeros: [N, heads.qkvWidth])
    )
    for i in 0..<dOut.count { dOut[i] = Float(i % 11) * 0.01 - 0.05 }
    // Visible (query, key) pairs: the prompt's causal triangle, then each completion's prompt keys
    // and its own triangle; 2 FLOPs per multiply-add, two products forward, four backward.
    let pairs = Double(prompt * (prompt + 1) / 2 + G * (own * prompt + own * (own + 1) / 2))
    let forwardFlops = Double(layers) * 2 * 2 * pairs * Double(H * D)
    for bf16 in [false, true] {
        let forward = best(5) {
            for _ in 0..<layers {
                attentionForward(
                    out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads, scale: 0.125, bf16: bf16
                )
            }
        }
        let backward = best(5) {
            for _ in 0..<layers {
                attentionBackward(
                    dQKV: dQKV, dOut: dOut, out: out, lse: lse, qkv: qkv, sequences: sequences, heads: heads,
                    scale: 0.125, bf16: bf16)
            }
        }
        print(
            String(
                format:
                    "%@ %d tokens, 8 layers: forward %6.2f ms (%5.1f GFLOP/s), backward %6.2f ms (%5.1f GFLOP/s)",
                bf16 ? "bf16   " : "float32", N, forward * 1e3, forwardFlops / forward / 1e9, backward * 1e3,
                2 * forwardFlops / backward / 1e9))
    }
    exit(0)
}

// `grpo-bench tokenizer TOKENIZER.json CORPUS.json`: encoding throughput on a JSON list of documents
// (scripts/bench_tokenizer.sh runs it beside Hugging Face tokenizers on the same files).
if CommandLine.arguments.count >= 4 && CommandLine.arguments[1] == "tokenizer" {
    let tokenizer = try Tokenizer(path: CommandLine.arguments[2])
    let documents = try JSONDecoder().decode(
        [String].self, from: Data(contentsOf: URL(fileURLWithPath: CommandLine.arguments[3])))
    let bytes = documents.reduce(0) { $0 + $1.utf8.count }
    var tokens = 0
    let single = seconds {
        for d in documents { tokens += tokenizer.encode(d, addSpecialTokens: false).count }
    }
    print(
        String(
            format: "swift  1 thread   %7.2f MB/s  %9.0f tokens/s  (%d tokens)", Double(bytes) / single / 1e6,
            Double(tokens) / single, tokens))
    // A second tokenizer, so the batch run does not start with the first one's word cache.
    let fresh = try Tokenizer(path: CommandLine.arguments[2])
    let batch = seconds { _ = fresh.encodeBatch(documents, addSpecialTokens: false) }
    print(
        String(
            format: "swift  batch      %7.2f MB/s  %9.0f tokens/s", Double(bytes) / batch / 1e6,
            Double(tokens) / batch))
    exit(0)
}

// `grpo-bench lora [LAYERS]`: the LoRA comparison alone, on SmolLM2-135M's shapes (30 layers, or
// LAYERS), 4 x 512 tokens.
if CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "lora" {
    let layers = CommandLine.arguments.count >= 3 ? Int(CommandLine.arguments[2]) ?? 30 : 30
    let b = BenchmarkBatch(layers: layers)
    loraComparison(config: b.config, batch: b.batch, dLogp: b.dLogp, repeats: 3)
    exit(0)
}

// `grpo-bench train-only PRECISION [LAYERS [REPEATS]]`: forward+backward alone, for a profiler.
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "train-only" {
    let precision = LinearPrecision(rawValue: CommandLine.arguments[2]) ?? .float32
    let layers = CommandLine.arguments.count >= 4 ? Int(CommandLine.arguments[3]) ?? 30 : 30
    let repeats = CommandLine.arguments.count >= 5 ? Int(CommandLine.arguments[4]) ?? 3 : 3
    var b = BenchmarkBatch(layers: layers)
    if CommandLine.arguments.contains("grpo") { b = BenchmarkBatch(layers: layers, grpoPrompts: 3) }
    let model = ModelLoader.randomModel(config: b.config, seed: 1)
    model.precision = precision
    let t = trainingSeconds(model, b.batch, b.dLogp, repeats: repeats)
    print("\(precision.rawValue) forward+backward \(String(format: "%.2f", t)) s")
    exit(0)
}

// `grpo-bench bf16 [LAYERS]`: the precision comparison alone, on SmolLM2-135M's shapes.
if CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "bf16" {
    let layers = CommandLine.arguments.count >= 3 ? Int(CommandLine.arguments[2]) ?? 30 : 30
    let b = BenchmarkBatch(layers: layers)
    precisionComparison(
        config: b.config, batch: b.batch, dLogp: b.dLogp,
        forwardFlops: modelForwardFlops(b.config, b.batch, b.lengths), repeats: 3)
    exit(0)
}

// MARK: - sgemm peak

print("grpo-bench on \(CPUFeatures.summary), \(ProcessInfo.processInfo.hostName), \(Date())")
print("\n== sgemm (oneDNN), row-major C = A·Bᵀ ==")
var peak = 0.0
let shapes: [(String, Int, Int, Int)] = [
    ("square 2048", 2048, 2048, 2048),
    ("qkv 2048x576 -> 960", 2048, 960, 576),
    ("gate+up 2048x576 -> 3072", 2048, 3072, 576),
    ("down 2048x1536 -> 576", 2048, 576, 1536),
    ("lm_head 128x576 -> 49152", 128, 49152, 576),
    ("lm_head 341x576 -> 49152", 341, 49152, 576),
    ("decode 32x576 -> 3072", 32, 3072, 576),
]
for (name, m, n, k) in shapes {
    let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [n, k]), c = Tensor(zeros: [m, n])
    for i in 0..<a.count { a[i] = Float(i % 7) * 0.1 }
    for i in 0..<b.count { b[i] = Float(i % 5) * 0.1 }
    let t = best(quick ? 2 : 5) { linearForward(y: c, x: a, weight: b) }
    let gflops = 2.0 * Double(m * n * k) / t / 1e9
    peak = max(peak, gflops)
    print("\(field(name, 28)) \(String(format: "%7.1f", gflops)) GFLOP/s")
}
print("measured sgemm peak: \(String(format: "%.1f", peak)) GFLOP/s")

// MARK: - Elementwise kernels (memory-bound: compare with the machine's ~36 GB/s)

print("\n== elementwise kernels (N=2048) ==")
do {
    let (N, F, C) = (2048, 1536, 576)
    let gu = Tensor(zeros: [N, 2 * F]), h = Tensor(zeros: [N, F]), dgu = Tensor(zeros: [N, 2 * F])
    for i in 0..<gu.count { gu[i] = Float(i % 13) * 0.1 - 0.6 }
    let tf = best(5) { swigluForward(h: h, gateUp: gu) }
    print("swiglu forward   \(String(format: "%6.1f", Double(N * 3 * F * 4) / tf / 1e9)) GB/s")
    let tb = best(5) { swigluBackward(dGateUp: dgu, dH: h, gateUp: gu) }
    print("swiglu backward  \(String(format: "%6.1f", Double(N * 5 * F * 4) / tb / 1e9)) GB/s")
    let x = Tensor(zeros: [N, C]), y = Tensor(zeros: [N, C]), rstd = Tensor(zeros: [N]),
        w = Tensor(zeros: [C])
    for i in 0..<x.count { x[i] = Float(i % 11) * 0.1 }
    let tn = best(5) { rmsNormForward(y: y, rstd: rstd, x: x, weight: w, eps: 1e-6) }
    print("rmsnorm forward  \(String(format: "%6.1f", Double(N * 2 * C * 4) / tn / 1e9)) GB/s")
}

// MARK: - Transformer on SmolLM2-135M's shapes

print("\n== transformer, SmolLM2-135M shapes (random weights), 2048 tokens per batch ==")
let benchmarkBatch = BenchmarkBatch(layers: quick ? 6 : 30)
let (config, batch, lengths, dLogp) = (
    benchmarkBatch.config, benchmarkBatch.batch, benchmarkBatch.lengths, benchmarkBatch.dLogp
)
let model = ModelLoader.randomModel(config: config, seed: 1)
let N = batch.tokenCount
let forwardFlops = modelForwardFlops(config, batch, lengths)
print(
    "parameters \(config.parameterCount), forward \(String(format: "%.1f", forwardFlops / 1e9)) GFLOP per batch"
)

let repeats = quick ? 1 : 3
for checkpointing in [false, true] {
    model.gradientCheckpointing = checkpointing
    let tTrain = trainingSeconds(model, batch, dLogp, repeats: repeats)
    let label = checkpointing ? "forward+backward (checkpointing)" : "forward+backward"
    let gflops = 3 * forwardFlops / tTrain / 1e9
    print(
        "\(field(label, 34)) \(String(format: "%7.0f", Double(N) / tTrain)) tokens/s  \(String(format: "%6.1f", gflops)) GFLOP/s  \(String(format: "%4.0f", 100 * gflops / peak))% of sgemm peak  (\(String(format: "%.2f", tTrain)) s/step)"
    )
}
model.gradientCheckpointing = false
let tForward = best(repeats) { model.forward(batch) }
let gflopsForward = forwardFlops / tForward / 1e9
print(
    "\(field("forward only", 34)) \(String(format: "%7.0f", Double(N) / tForward)) tokens/s  \(String(format: "%6.1f", gflopsForward)) GFLOP/s  \(String(format: "%4.0f", 100 * gflopsForward / peak))% of sgemm peak"
)
print("peak resident memory \(formatBytes(peakResidentBytes()))")

// MARK: - LoRA on the same model

loraComparison(config: config, batch: batch, dLogp: dLogp, repeats: repeats)
