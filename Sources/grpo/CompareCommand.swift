import ArgumentParser
import Foundation
import SafeTensors
import Tensors
import Training

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Train one model on one task under GRPO, RLOO, REINFORCE++ and PPO, and compare them.",
        discussion: """
            Every variant trains the same model on the same prompts, batch and settings for --steps \
            steps under each seed, each run in its own `grpo train` process (so each peak memory is \
            its own), measuring the held-out set (eval_dataset) at the start and every --eval-every \
            steps. Prints, and writes to RUNS_DIR/compare.md: seconds per step, peak resident memory \
            and the trainer's account of it by category, the reward over the last quarter of the \
            steps, and held-out accuracy after the last step and after the training time the \
            fastest variant took, as mean ± standard deviation over seeds.

            Variants: grpo (beta 0), grpo_kl (beta 0.04), rloo (beta 0.05, TRL's), reinforce_pp, \
            ppo (TRL's PPOConfig defaults), each also with +lora (r 16, all-linear).

            --demo compares on `grpo demo`'s task: the demo's cold-start SFT runs once (in \
            RUNS_DIR/demo), and every variant starts from that model with the demo's settings. \
            Otherwise the runs take the keys of --config and the KEY flags, as `grpo train` does \
            (give eval_dataset for the accuracy columns).

            Example: grpo compare --demo --steps 40 --seeds 1-3
            """)

    @Option(help: "Comma-separated variants.") var variants = "grpo,grpo_kl,rloo,reinforce_pp,ppo"
    @Option(help: "Seeds, as 1-3 or 1,4.") var seeds = "1"
    @Option(help: "Steps each run takes.") var steps = 40
    @Option(help: "Steps between held-out measurements.") var evalEvery = 10
    @Option(help: "Folder for every run and the tables.") var runsDir = "grpo-compare"
    @Flag(help: "Compare on the demo's task, from its cold-start SFT model.") var demo = false
    @Option(help: "A YAML file of TRL-named keys every run shares.") var config: String?
    @Argument(
        parsing: .allUnrecognized,
        help: "Any key every run shares, as a flag: --learning_rate 1e-5 (output_dir and seed are the runs')."
    )
    var overrides: [String] = []

    func run() throws {
        let chosen: [CompareVariant]
        switch CompareVariant.parse(variants) {
        case .success(let list): chosen = list
        case .failure(let error): throw ValidationError(error.description)
        }
        guard let seedList = parseSeedList(seeds) else {
            throw ValidationError("--seeds: expected seeds and ranges such as 1-3 or 1,4, got '\(seeds)'")
        }
        guard steps >= 1, evalEvery >= 1 else {
            throw ValidationError("--steps and --eval-every must be at least 1")
        }
        try FileManager.default.createDirectory(atPath: runsDir, withIntermediateDirectories: true)
        var shared: [String] = []
        if demo {
            if config != nil { throw ValidationError("--demo brings its own settings; drop --config") }
            shared = ["--config", try prepareDemoBase()]
        } else if let config {
            shared = ["--config", config]
        }
        shared += overrides
        var runs: [ComparedRun] = []
        for seed in seedList {
            for variant in chosen {
                let folder = "\(runsDir)/\(variant.name)/seed-\(seed)"
                say("== \(variant.name), seed \(seed): \(steps) steps -> \(folder)")
                try train(variant: variant, seed: seed, folder: folder, shared: shared)
                let run = try ComparedRun(
                    variant: variant.name, seed: seed, metricsFile: folder + "/metrics.jsonl")
                say(
                    String(
                        format: "   %.2f s/step, peak %.2f GiB, held-out accuracy %@", run.secondsPerStep,
                        (run.memory["memory/peak_rss"] ?? 0) / Double(1 << 30),
                        run.finalAccuracy.map { String(format: "%.1f%%", $0 * 100) } ?? "not measured"))
                runs.append(run)
            }
        }
        let tables =
            compareTables(runs, order: chosen.map(\.name))
            + "\n\nMeasured \(ISO8601DateFormatter().string(from: Date())) on \(CPUFeatures.summary).\n"
        try atomicWrite(Data(tables.utf8), to: runsDir + "/compare.md")
        print(tables)
    }

    /// Runs `grpo train` for one variant and seed in its own process, its output in folder/train.log.
    private func train(variant: CompareVariant, seed: UInt64, folder: String, shared: [String]) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var arguments = ["train"] + shared
        for (key, value) in variant.keys.sorted(by: { $0.key < $1.key }) { arguments += ["--" + key, value] }
        arguments += [
            "--output_dir", folder, "--overwrite_output_dir", "true", "--seed", String(seed), "--max_steps",
            String(steps), "--logging_steps", "1", "--save_strategy", "no", "--log_completions_steps", "0",
        ]
        if demo
            || overrides.contains(where: { $0.hasPrefix("--eval_dataset") || $0.hasPrefix("--eval-dataset") })
            || (try? String(contentsOfFile: config ?? "", encoding: .utf8))?.contains("eval_dataset") == true
        {
            arguments += [
                "--eval_strategy", "steps", "--eval_steps", String(evalEvery), "--eval_on_start", "true",
            ]
        }
        let log = folder + "/train.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let tail =
                (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").suffix(3)
                .joined(separator: "\n") ?? ""
            throw CompareError.runFailed(
                variant: variant.name, seed: seed, status: process.terminationStatus, log: log, tail: tail)
        }
    }

    /// The demo's files and cold-start SFT (once, in RUNS_DIR/demo), and a config of the demo's RL
    /// settings from that model with its held-out problems as eval_dataset.
    private func prepareDemoBase() throws -> String {
        var settings = DemoSettings()
        settings.outputDir = runsDir + "/demo"
        let preparation = try prepareDemo(settings) { event in
            if case .stage(let text) = event { say("== " + text) }
        }
        let base: [String: Any] = [
            "model": preparation.sftFolder, "dataset": preparation.files.rl,
            "eval_dataset": preparation.files.heldOut, "num_generations_eval": settings.evalSamples,
            "eval_max_prompts": settings.heldOutExamples,
            "num_generations": settings.numGenerations, "per_step_prompts": settings.perStepPrompts,
            "max_completion_length": settings.maxCompletionLength,
            "temperature": Double(settings.temperature),
            "learning_rate": settings.grpoLearningRate, "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": settings.warmupSteps, "rewards": ["accuracy", "format"],
            "reward_weights": [1.0, 0.5],
        ]
        let path = runsDir + "/demo-base.yaml"  // JSON is YAML
        try atomicWrite(
            try JSONSerialization.data(withJSONObject: base, options: [.prettyPrinted, .sortedKeys]), to: path
        )
        return path
    }

    private func say(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
}
