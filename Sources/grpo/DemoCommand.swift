import ArgumentParser
import Foundation
import Training

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Teach a small model multi-step arithmetic: cold-start SFT, then GRPO (no download).",
        discussion: """
            Builds a small Qwen2-shaped model with a byte-level tokenizer, generates arithmetic \
            problems (chains like 7+5-3+8=), fine-tunes on a cold start that answers half of them \
            step by step in the R1 format and half directly (an empty think block), then runs GRPO \
            with accuracy and format rewards on fresh problems: the model learns from the rewards \
            alone that working the problem out pays. Held-out accuracy (greedy and sampled) and the \
            share of worked answers are measured before, during and after. Writes the models, the \
            datasets, metrics.jsonl files and demo.svg to --output-dir. Reproducible under --seed.
            """)

    @Option(help: "Folder for everything the demo writes.") var outputDir = "grpo-demo"
    @Flag(help: "Only write the untrained model and the datasets (for running the stages yourself).")
    var dataOnly = false
    @Option(help: "Random seed (model, data, sampling).") var seed: UInt64 = 1
    @Option(help: "Examples for the cold-start SFT.") var sftExamples: Int?
    @Option(help: "Fraction of cold-start examples answered directly, without working.")
    var directFraction: Double?
    @Option(help: "SFT epochs.") var sftEpochs: Double?
    @Option(help: "SFT learning rate.") var sftLearningRate: Double?
    @Option(help: "GRPO steps.") var grpoSteps: Int?
    @Option(help: "GRPO learning rate.") var grpoLearningRate: Double?
    @Option(help: "Completions per prompt in GRPO.") var numGenerations: Int?
    @Option(help: "Prompts per GRPO step.") var perStepPrompts: Int?
    @Option(help: "Held-out problems.") var heldOut: Int?
    @Option(help: "Measure held-out accuracy every N GRPO steps.") var evalSteps: Int?
    @Option(help: "Sampling temperature in GRPO.") var temperature: Float?
    @Option(help: "Largest running total a problem reaches.") var maxTotal: Int?
    @Option(help: "Fewest numbers a problem chains.") var minOperands: Int?
    @Option(help: "Most numbers a problem chains.") var maxOperands: Int?
    @Option(help: "Largest number in a problem.") var maxNumber: Int?
    @Option(help: "KL penalty towards the SFT model in GRPO.") var beta: Double?
    @Option(help: "GRPO warmup steps.") var warmupSteps: Int?
    @Option(help: "Transformer layers.") var layers: Int?
    @Option(help: "Hidden size.") var hiddenSize: Int?

    func run() throws {
        var settings = DemoSettings()
        settings.outputDir = outputDir
        settings.seed = seed
        if let sftExamples { settings.sftExamples = sftExamples }
        if let directFraction {
            guard (0...1).contains(directFraction) else {
                throw ValidationError("--direct-fraction must be between 0 and 1")
            }
            settings.directFraction = directFraction
        }
        if let sftEpochs { settings.sftEpochs = sftEpochs }
        if let sftLearningRate { settings.sftLearningRate = sftLearningRate }
        if let grpoSteps { settings.grpoSteps = grpoSteps }
        if let grpoLearningRate { settings.grpoLearningRate = grpoLearningRate }
        if let numGenerations { settings.numGenerations = numGenerations }
        if let perStepPrompts { settings.perStepPrompts = perStepPrompts }
        if let heldOut { settings.heldOutExamples = heldOut }
        if let evalSteps { settings.evalSteps = evalSteps }
        if let layers { settings.layers = layers }
        if let beta { settings.beta = beta }
        if let warmupSteps { settings.warmupSteps = warmupSteps }
        let fewest = minOperands ?? settings.task.operands.lowerBound
        let most = maxOperands ?? settings.task.operands.upperBound
        guard fewest >= 2, most >= fewest else {
            throw ValidationError("--min-operands must be at least 2 and at most --max-operands")
        }
        settings.task.operands = fewest...most
        if let temperature { settings.temperature = temperature }
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
        guard settings.sftExamples >= 1, settings.heldOutExamples >= 1, settings.grpoSteps >= 1,
            settings.evalSteps >= 1
        else {
            throw ValidationError(
                "--sft-examples, --held-out, --grpo-steps and --eval-steps must be at least 1")
        }
        if dataOnly {
            let files = try writeDemoFiles(settings)
            print("model     \(files.baseModel)")
            print("sft data  \(files.sft)")
            print("rl data   \(files.rl)")
            print("held out  \(files.heldOut)")
            return
        }
        let progress = ProgressLine()
        // Progress goes to stderr; stage lines go there too so they interleave in order.
        func say(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
        let report = try runDemo(settings) { event in
            switch event {
            case .stage(let text):
                progress.finish()
                say("== \(text)")
            case .sft(let inner), .grpo(let inner):
                if case .saved = inner { return }
                progress.show(inner)
            case .evaluated(let e):
                progress.finish()
                let name =
                    e.stage == "grpo"
                    ? "GRPO step \(e.step)" : e.stage == "sft" ? "after SFT" : "untrained model"
                say(
                    String(
                        format: "   held-out: sampled %5.1f%%  greedy %5.1f%%  worked %5.1f%%  (%@)",
                        e.sampledAccuracy * 100, e.accuracy * 100, e.worked * 100, name))
            }
        }
        progress.finish()
        print("")
        print(
            "| held-out problems (\(settings.heldOutExamples)) | accuracy, sampled (T = \(settings.temperature)) | accuracy, greedy | worked answers | R1 format | mean length |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for stage in ["base", "sft", "grpo"] {
            guard let e = report.evaluation(stage) else { continue }
            let name = ["base": "untrained model", "sft": "after cold-start SFT", "grpo": "after GRPO"][
                stage]!
            print(
                String(
                    format: "| %@ | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.0f tokens |", name,
                    e.sampledAccuracy * 100, e.accuracy * 100, e.worked * 100, e.format * 100, e.meanLength))
        }
        if let before = report.evaluation("sft"), let after = report.evaluation("grpo") {
            print(
                String(
                    format: "\nGRPO changed held-out accuracy by %+.1f points sampled, %+.1f points greedy",
                    (after.sampledAccuracy - before.sampledAccuracy) * 100,
                    (after.accuracy - before.accuracy) * 100))
        }
        print(
            String(
                format: "time: SFT %.0f s, GRPO %.0f s, total %.0f s", report.seconds.sft,
                report.seconds.grpo,
                report.seconds.total))
        print("trained model: \(report.modelFolder)   plot: \(report.plotPath)")
    }
}
