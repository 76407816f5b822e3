import ArgumentParser

@main
struct GRPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo",
        abstract: "Post-train language models with GRPO, natively in Swift.",
        subcommands: [
            InfoCommand.self, ScoreCommand.self, ConvertCommand.self, TokenizeCommand.self,
            ChatTemplateCommand.self, GenerateCommand.self, TrainCommand.self, SFTCommand.self,
            EvalCommand.self, SampleCommand.self, DemoCommand.self,
        ])
}
