import ArgumentParser
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
        try runTrainer(options: options, done: "fine-tuned model") { values, world in
            let settings = try SFTConfig(values)
            let make: (String?, @escaping (TrainerEvent) -> Void) throws -> any CommandTrainer = {
                try SFTTrainer(config: settings, resumeFrom: $0, communicator: world, onEvent: $1)
            }
            return (settings.notes, settings.outputDir, settings.resumeFromCheckpoint, make)
        }
    }
}
