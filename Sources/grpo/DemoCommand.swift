import ArgumentParser
import Foundation
import Training

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Teach a small model multi-step arithmetic: cold-start SFT, then GRPO (no download).",
        discussion: """
            Builds a small Qwen2-shaped model with a byte-level tokenizer, generates arithmetic \
            problems (chains like 7+5-3+8=) with worked R1-format solutions, fine-tunes on a few \
            hundred of them, then runs GRPO with accuracy and format rewards on fresh problems. \
            Held-out accuracy (greedy) is measured before and after each stage. Writes the models, \
            the datasets, metrics.jsonl files and demo.svg to --output-dir. Reproducible under --seed.
            """)

    @Option(help: "Folder for everything the demo writes.") var outputDir = "grpo-demo"
    @Flag(help: "Only write the untrained model and the datasets (for running the stages yourself).")
    var dataOnly = false
    @Option(help: "Random seed (model, data, sampling).") var seed: UInt64 = 1
    @Option(help: "Worked examples for the cold-start SFT.") var sftExamples: Int?
    @Option(help: "SFT epochs.") var sftEpochs: Double?
    @Option(help: "SFT learning rate.") var sftLearningRate: Double?
    @Option(help: "GRPO steps.") var grpoSteps: Int?
    @Option(help: "GRPO learning rate.") var grpoLearningRate: Double?
    @Option(help: "Completions per prompt in GRPO.") var numGenerations: Int?
    @Option(help: "Prompts per GRPO step.") var perStepPrompts: Int?
    @Option(help: "Held-out problems.") var heldOut: Int?
    @Option(help: "Measure held-out accuracy every N GRPO steps.") var evalSteps: Int?
    @Option(help: "Min-p filter for GRPO sampling.") var minP: Float?
    @Option(help: "Fraction of SFT examples that show their working.") var workedFraction: Double?
    @Option(help: "Sampling temperature in GRPO.") var temperature: Float?
    @Option(help: "Largest running total a problem reaches.") var maxTotal: Int?
    @Option(help: "Fewest numbers a problem chains.") var minOperands: Int?
    @Option(help: "Most numbers a problem chains.") var maxOperands: Int?
    @Option(help: "Largest number in a problem.") var maxNumber: Int?
    @Flag(help: "Start each problem with a product.") var product = false
    @Option(help: "Transformer layers.") var layers: Int?
    @Option(help: "Hidden size.") var hiddenSize: Int?

    func run() throws {
        var settings = DemoSettings()
        settings.outputDir = outputDir
        settings.seed = seed
        if let sftExamples { settings.sftExamples = sftExamples }
        if let sftEpochs { settings.sftEpochs = sftEpochs }
        if let sftLearningRate { settings.sftLearningRate = sftLearningRate }
        if let grpoSteps { settings.grpoSteps = grpoSteps }
        if let grpoLearningRate { settings.grpoLearningRate = grpoLearningRate }
        if let numGenerations { settings.numGenerations = numGenerations }
        if let perStepPrompts { settings.perStepPrompts = perStepPrompts }
        if let heldOut { settings.heldOutExamples = heldOut }
        if let evalSteps { settings.evalSteps = evalSteps }
        if let layers { settings.layers = layers }
        if let minP { settings.minP = minP }
        let fewest = minOperands ?? settings.task.operands.lowerBound
        let most = maxOperands ?? settings.task.operands.upperBound
        guard fewest >= 2, most >= fewest else {
            throw ValidationError("--min-operands must be at least 2 and at most --max-operands")
        }
        settings.task.operands = fewest...most
        if let temperature { settings.temperature = temperature }
        if product { settings.task.leadingProduct = 2...9 }
        if let maxNumber { settings.task.numbers = 1...maxNumber }
        if let maxTotal { settings.task.totals = 0...maxTotal }
        if let workedFraction { settings.workedFraction = workedFraction }
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
        let report = try runDemo(settings) { event in
            switch event {
            case .stage(let text):
                progress.finish()
                print("== \(text)")
            case .sft(let inner), .grpo(let inner):
                if case .saved = inner { return }
                progress.show(inner)
            case .evaluated(let stage, let step, let accuracy, let format):
                progress.finish()
                let name = stage == "grpo" ? "GRPO step \(step)" : stage == "sft" ? "after SFT" : "base model"
                print(
                    String(
                        format: "   held-out accuracy %5.1f%%  format %5.1f%%  (%@)", accuracy * 100,
                        format * 100, name))
            }
        }
        progress.finish()
        print("")
        print("| stage | held-out accuracy | R1 format | mean length |")
        print("| --- | --- | --- | --- |")
        for stage in ["base", "sft", "grpo"] {
            guard let e = report.evaluation(stage) else { continue }
            let name = ["base": "random model", "sft": "after cold-start SFT", "grpo": "after GRPO"][stage]!
            print(
                String(
                    format: "| %@ | %.1f%% | %.1f%% | %.0f tokens |", name, e.accuracy * 100, e.format * 100,
                    e.meanLength))
        }
        if let before = report.evaluation("sft"), let after = report.evaluation("grpo") {
            print(
                String(
                    format: "\nGRPO changed held-out accuracy by %+.1f points",
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
