import ArgumentParser
import Foundation
import Models
import Tensors
import Training

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Teach a small model multi-step arithmetic: cold-start SFT, then GRPO (no download).",
        discussion: """
            Builds a small Qwen2-shaped model with a byte-level tokenizer, generates arithmetic \
            problems (chains like 7+5-3+8-9+2=), fine-tunes on a cold start that answers 40% of them \
            step by step in the R1 format and 60% directly (an empty think block), then runs GRPO \
            with accuracy and format rewards on fresh problems: the model learns from the rewards \
            alone that working the problem out pays. Held-out accuracy (greedy and sampled) and the \
            share of worked answers are measured before, during and after. Writes the models, the \
            datasets, metrics.jsonl files and demo.svg to --output-dir. Reproducible under --seed; \
            --seeds 1-5 runs it once per seed and prints the gains side by side.
            """)

    @Option(help: "Folder for everything the demo writes.") var outputDir = "grpo-demo"
    @Flag(help: "Only write the untrained model and the datasets (for running the stages yourself).")
    var dataOnly = false
    @Option(parsing: .unconditional, help: "Random seed (model, data, sampling). (default: 1)") var seed:
        UInt64?
    @Option(
        help: ArgumentHelp(
            "Run the demo once per seed and compare the gains: seeds and ranges such as 1-5 or 1,3,8.",
            discussion: "Each run writes OUTPUT_DIR/seed-N."))
    var seeds: String?
    @Option(parsing: .unconditional, help: "Examples for the cold-start SFT.") var sftExamples: Int?
    @Option(
        parsing: .unconditional, help: "Fraction of cold-start examples answered directly, without working.")
    var directFraction: Double?
    @Option(parsing: .unconditional, help: "SFT epochs.") var sftEpochs: Double?
    @Option(parsing: .unconditional, help: "SFT learning rate.") var sftLearningRate: Double?
    @Option(parsing: .unconditional, help: "SFT examples per optimizer step.") var sftBatchSize: Int?
    @Option(parsing: .unconditional, help: "GRPO steps.") var grpoSteps: Int?
    @Option(parsing: .unconditional, help: "GRPO learning rate.") var grpoLearningRate: Double?
    @Option(parsing: .unconditional, help: "Completions per prompt in GRPO.") var numGenerations: Int?
    @Option(parsing: .unconditional, help: "Prompts per GRPO step.") var perStepPrompts: Int?
    @Option(parsing: .unconditional, help: "Held-out problems.") var heldOut: Int?
    @Option(parsing: .unconditional, help: "Measure held-out accuracy every N GRPO steps.") var evalSteps:
        Int?
    @Option(
        parsing: .unconditional, help: "Completions sampled per held-out problem for the sampled accuracy.")
    var evalSamples: Int?
    @Option(parsing: .unconditional, help: "Sampling temperature in GRPO.") var temperature: Float?
    @Option(help: "Matmul precision of every stage: float32, bf16 or auto. (default: float32)")
    var precision: PrecisionSetting?
    @Option(parsing: .unconditional, help: "Largest running total a problem reaches.") var maxTotal: Int?
    @Option(parsing: .unconditional, help: "Fewest numbers a problem chains.") var minOperands: Int?
    @Option(parsing: .unconditional, help: "Most numbers a problem chains.") var maxOperands: Int?
    @Option(parsing: .unconditional, help: "Largest number in a problem.") var maxNumber: Int?
    @Option(parsing: .unconditional, help: "KL penalty towards the SFT model in GRPO.") var beta: Double?
    @Option(parsing: .unconditional, help: "GRPO warmup steps.") var warmupSteps: Int?
    @Option(parsing: .unconditional, help: "Transformer layers.") var layers: Int?
    @Option(parsing: .unconditional, help: "Hidden size.") var hiddenSize: Int?
    @Option(
        name: .customLong("rl"),
        help: ArgumentHelp(
            "A key of the RL stage's config as KEY=VALUE, repeatable (algorithm=ppo, kl_coef=0, num_ppo_epochs=2).",
            valueName: "KEY=VALUE"))
    var rlKeys: [String] = []

    func run() throws {
        var settings = DemoSettings()
        settings.outputDir = outputDir
        settings.seed = seed ?? 1
        if let sftExamples { settings.sftExamples = sftExamples }
        if let directFraction {
            guard (0...1).contains(directFraction) else {
                throw ValidationError("--direct-fraction must be between 0 and 1")
            }
            settings.directFraction = directFraction
        }
        if let sftEpochs { settings.sftEpochs = sftEpochs }
        if let sftLearningRate { settings.sftLearningRate = sftLearningRate }
        if let sftBatchSize { settings.sftBatchSize = sftBatchSize }
        if let grpoSteps { settings.grpoSteps = grpoSteps }
        if let grpoLearningRate { settings.grpoLearningRate = grpoLearningRate }
        if let numGenerations { settings.numGenerations = numGenerations }
        if let perStepPrompts { settings.perStepPrompts = perStepPrompts }
        if let heldOut { settings.heldOutExamples = heldOut }
        if let evalSteps { settings.evalSteps = evalSteps }
        if let evalSamples { settings.evalSamples = evalSamples }
        if let layers { settings.layers = layers }
        if let beta { settings.beta = beta }
        if let warmupSteps { settings.warmupSteps = warmupSteps }
        for entry in rlKeys {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--rl: expected KEY=VALUE (such as algorithm=ppo), got '\(entry)'")
            }
            settings.rlKeys[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        let fewest = minOperands ?? settings.task.operands.lowerBound
        let most = maxOperands ?? settings.task.operands.upperBound
        guard fewest >= 2, most >= fewest else {
            throw ValidationError("--min-operands must be at least 2 and at most --max-operands")
        }
        settings.task.operands = fewest...most
        if let temperature { settings.temperature = temperature }
        if let precision { settings.precision = precision }
        if let maxNumber {
            guard maxNumber >= 1 else { throw ValidationError("--max-number must be at least 1") }
            settings.task.numbers = 1...maxNumber
        }
        if let maxTotal {
            guard maxTotal >= settings.task.numbers.upperBound else {
                throw ValidationError("--max-total must be at least the largest number")
            }
            settings.task.totals = 0...maxTotal
        }
        guard settings.temperature > 0, settings.numGenerations >= 2, settings.perStepPrompts >= 1 else {
            throw ValidationError("--temperature must be positive, --num-generations at least 2")
        }
        if let hiddenSize { settings.hiddenSize = hiddenSize }
        guard (1...64).contains(settings.layers) else {
            throw ValidationError("--layers must be between 1 and 64, got \(settings.layers)")
        }
        // 4 attention heads of an even width: the hidden size is a multiple of 8.
        guard (8...4096).contains(settings.hiddenSize), settings.hiddenSize % (2 * settings.heads) == 0 else {
            throw ValidationError(
                "--hidden-size must be a multiple of \(2 * settings.heads) between 8 and 4096, got \(settings.hiddenSize)"
            )
        }
        guard settings.sftExamples >= 1, settings.heldOutExamples >= 1, settings.grpoSteps >= 1,
            settings.evalSteps >= 1, settings.evalSamples >= 1, settings.sftBatchSize >= 1
        else {
            throw ValidationError(
                "--sft-examples, --held-out, --grpo-steps, --eval-steps, --eval-samples and --sft-batch-size must be at least 1"
            )
        }
        guard settings.sftExamples <= 1_000_000, settings.heldOutExamples <= 100_000,
            settings.evalSamples <= 64, settings.grpoSteps <= 1_000_000
        else {
            throw ValidationError(
                "--sft-examples (at most 1,000,000), --held-out (100,000), --eval-samples (64) or --grpo-steps (1,000,000) is too large"
            )
        }
        // Checked here, before minutes of SFT, rather than by the stage configs later.
        for (option, value) in [
            ("--sft-epochs", settings.sftEpochs), ("--sft-learning-rate", settings.sftLearningRate),
            ("--grpo-learning-rate", settings.grpoLearningRate),
        ] where !(value.isFinite && value > 0) {
            throw ValidationError("\(option) must be a positive number, got \(value)")
        }
        guard settings.sftEpochs <= 10_000 else {
            throw ValidationError("--sft-epochs must be at most 10000")
        }
        guard settings.beta.isFinite, settings.beta >= 0 else {
            throw ValidationError("--beta must be 0 or positive, got \(settings.beta)")
        }
        guard settings.warmupSteps >= 0 else { throw ValidationError("--warmup-steps must not be negative") }
        guard settings.temperature.isFinite, settings.temperature >= 0.001 else {
            throw ValidationError("--temperature must be at least 0.001, got \(settings.temperature)")
        }
        guard settings.numGenerations <= 256, settings.perStepPrompts <= 1024 else {
            throw ValidationError(
                "--num-generations (at most 256) or --per-step-prompts (1,024) is too large")
        }
        guard settings.task.totals.upperBound <= 10_000, settings.task.numbers.upperBound <= 10_000 else {
            throw ValidationError("--max-total and --max-number must be at most 10000")
        }
        if dataOnly {
            if seeds != nil { throw ValidationError("--data-only writes one seed's files; drop --seeds") }
            let files = try writeDemoFiles(settings)
            print("model     \(files.baseModel)")
            print("sft data  \(files.sft)")
            print("rl data   \(files.rl)")
            print("held out  \(files.heldOut)")
            return
        }
        guard let seeds else {
            let report = try runWithProgress(settings, label: "")
            printTable(report, heldOut: settings.heldOutExamples, temperature: settings.temperature)
            print(
                String(
                    format: "time: SFT %.0f s, %@ %.0f s, total %.0f s (%@)", report.seconds.sft,
                    algorithmName(report.algorithm), report.seconds.grpo, report.seconds.total,
                    CPUFeatures.summary))
            print("trained model: \(report.modelFolder)   plot: \(report.plotPath)")
            if let gain = DemoGain(seed: settings.seed, report: report) {
                print(
                    String(
                        format: "%@ changed held-out accuracy by %+.1f points sampled, %+.1f points greedy",
                        algorithmName(report.algorithm), gain.sampled, gain.greedy))
            }
            return
        }
        guard seed == nil else { throw ValidationError("give --seed or --seeds, not both") }
        guard let list = parseSeedList(seeds) else {
            throw ValidationError(
                "--seeds: expected seeds and ranges separated by commas, such as 1-5 or 1,3,8 (at most 1,000), got '\(seeds)'"
            )
        }
        var gains: [DemoGain] = []
        for seed in list {
            var run = settings
            run.seed = seed
            run.outputDir = outputDir + "/seed-\(seed)"
            let report = try runWithProgress(run, label: "[seed \(seed)] ")
            if let gain = DemoGain(seed: seed, report: report) { gains.append(gain) }
        }
        printSeedTable(gains, heldOut: settings.heldOutExamples, algorithm: algorithmName(settings.algorithm))
    }

    /// Runs the demo, showing stage lines, a progress line and held-out figures on stderr.
    private func runWithProgress(_ settings: DemoSettings, label: String) throws -> DemoReport {
        let progress = ProgressLine()
        // Progress goes to stderr; stage lines go there too so they interleave in order.
        func say(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
        let report = try runDemo(settings) { event in
            switch event {
            case .stage(let text):
                progress.finish()
                say("== \(label)\(text)")
            case .sft(let inner), .grpo(let inner):
                if case .saved = inner { return }
                progress.show(inner)
            case .evaluated(let e):
                progress.finish()
                let name =
                    e.stage == "rl"
                    ? "\(algorithmName(settings.algorithm)) step \(e.step)"
                    : e.stage == "sft" ? "after SFT" : "untrained model"
                say(
                    String(
                        format: "   %@held-out: sampled %5.1f%%  greedy %5.1f%%  worked %5.1f%%  (%@)", label,
                        e.sampledAccuracy * 100, e.accuracy * 100, e.worked * 100, name))
            }
        }
        progress.finish()
        return report
    }

    private func printTable(_ report: DemoReport, heldOut: Int, temperature: Float) {
        print("")
        print(
            "| held-out problems (\(heldOut)) | accuracy, sampled (T = \(temperature)) | accuracy, greedy | worked answers | R1 format | mean length |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for stage in ["base", "sft", "rl"] {
            guard let e = report.evaluation(stage) else { continue }
            let name = [
                "base": "untrained model", "sft": "after cold-start SFT",
                "rl": "after \(algorithmName(report.algorithm))",
            ][stage]!
            print(
                String(
                    format: "| %@ | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.0f tokens |", name,
                    e.sampledAccuracy * 100, e.accuracy * 100, e.worked * 100, e.format * 100, e.meanLength))
        }
        print("")
    }

    /// One row per seed, then the smallest, mean and largest gain.
    private func printSeedTable(_ gains: [DemoGain], heldOut: Int, algorithm: String) {
        func percent(_ x: Double) -> String { String(format: "%.1f%%", x * 100) }
        func points(_ x: Double) -> String { String(format: "%+.1f", x) }
        print("")
        print(
            "| seed | sampled, after SFT -> after \(algorithm) | gain | greedy, after SFT -> after \(algorithm) | gain | worked answers | seconds |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for g in gains {
            print(
                "| \(g.seed) | \(percent(g.sft.sampledAccuracy)) -> \(percent(g.grpo.sampledAccuracy)) | \(points(g.sampled)) | \(percent(g.sft.accuracy)) -> \(percent(g.grpo.accuracy)) | \(points(g.greedy)) | \(percent(g.sft.worked)) -> \(percent(g.grpo.worked)) | \(String(format: "%.0f", g.seconds)) |"
            )
        }
        guard !gains.isEmpty else { return }
        // Each column's smallest, mean and largest value, computed once for the rows and the summary.
        func spread(_ values: [Double]) -> [Double] {
            [values.min()!, values.reduce(0, +) / Double(values.count), values.max()!]
        }
        let (sampled, greedy, seconds) = (
            spread(gains.map(\.sampled)), spread(gains.map(\.greedy)),
            spread(gains.map(\.seconds))
        )
        for (i, name) in ["min", "mean", "max"].enumerated() {
            print(
                "| \(name) | | \(points(sampled[i])) | | \(points(greedy[i])) | | \(String(format: "%.0f", seconds[i])) |"
            )
        }
        print("\n\(gains.count) seeds, \(heldOut) held-out problems each, on \(CPUFeatures.summary)")
        print(
            String(
                format:
                    "%@ changed held-out accuracy by %+.1f to %+.1f points sampled (mean %+.1f), %+.1f to %+.1f points greedy (mean %+.1f)",
                algorithm, sampled[0], sampled[2], sampled[1], greedy[0], greedy[2], greedy[1]))
    }
}

/// How the demo names an algorithm in its lines and tables: GRPO, PPO, RLOO, REINFORCE_PP.
func algorithmName(_ algorithm: String) -> String { algorithm.uppercased() }
