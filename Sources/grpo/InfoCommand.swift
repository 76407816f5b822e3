import ArgumentParser
import Foundation
import Models

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Architecture, parameter count and memory by category.")

    @OptionGroup var model: ModelOptions

    func run() throws {
        let transformer = try model.load()
        print(ModelInfo(config: transformer.config).report())
    }
}
