import ArgumentParser
import Distributed
import Foundation
import Training

struct SFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Supervised fine-tuning on JSONL (prompt/completion, messages or text).",
        discussion: """
            Keys are TRL's SFTConfig, TrainingArguments, ScriptArguments and ModelConfig names, in a \
            YAML file (--config) or as flags (--key value; flags win). TRL keys that do not apply here \
            are accepted with a note; unknown keys are refused.

            """ + "\n" + ConfigTable.help(ConfigTable.sftSections) + """


                Dataset lines: {"prompt": "...", "completion": "..."} (EOS appended), {"messages": [...]} \
                (assistant turns learned), {"prompt": [...], "completion": [...]} (message lists), or \
                {"text": "..."}. `grpo sample` writes lines this command reads.

                Example: grpo sft --config sft.yaml --num_train_epochs 2
                """)

    @OptionGroup var options: RunOptions

    func run() throws {
        let world = try Communicator.world()
        try world.running {
            let settings = try SFTConfig(try options.values())
            if world.isMain { printNotes(settings.notes) }
            let checkpoint = try options.checkpoint(
                outputDir: settings.outputDir, configured: settings.resumeFromCheckpoint)
            let progress = ProgressLine()
            let trainer = try SFTTrainer(config: settings, resumeFrom: checkpoint, communicator: world) {
                progress.show($0)
            }
            trainer.shouldStop = stopOnInterrupt()
            try trainer.train()
            if world.isMain { progress.finish() }
            try exitIfInterrupted(step: trainer.state.step)
            if world.isMain {
                print(
                    "fine-tuned model: \(settings.outputDir) (metrics in \(settings.outputDir)/metrics.jsonl)"
                )
            }
        }
    }
}
