import ArgumentParser

@main
struct GRPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "grpo", abstract: "GRPO post-training in Swift.")
}
