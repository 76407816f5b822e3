import ArgumentParser
import Foundation
import SafeTensors

@main
struct GRPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo",
        abstract: "Post-train language models with GRPO, natively in Swift.",
        subcommands: [
            InfoCommand.self, ScoreCommand.self, ConvertCommand.self, TokenizeCommand.self,
            ChatTemplateCommand.self, GenerateCommand.self, TrainCommand.self, SFTCommand.self,
            EvalCommand.self, SampleCommand.self, RewardCommand.self, MergeCommand.self, PlotCommand.self,
            DemoCommand.self,
            CompareCommand.self,
        ])

    /// Runs the command; a filesystem error that reached this far is said in a sentence (what
    /// failed, on which path) instead of Foundation's NSError dump.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let domain = (error as NSError).domain
            if domain == NSCocoaErrorDomain || domain == NSPOSIXErrorDomain {
                FileHandle.standardError.write(Data("Error: \(describeFileError(error))\n".utf8))
                Foundation.exit(1)
            }
            exit(withError: error)
        }
    }
}
