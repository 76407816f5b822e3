import ArgumentParser
import Models

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face model folder (config.json and *.safetensors).")
    var model: String

    func load() throws -> Transformer { try ModelLoader.load(folder: model) }
}
