import ArgumentParser
import Models

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face model folder (config.json and *.safetensors).")
    var model: String
    @Option(help: "A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) to apply.")
    var adapter: String?

    /// The model, with the adapter on when one is given.
    func load() throws -> Transformer {
        let transformer = try ModelLoader.load(folder: model)
        if let adapter { _ = try LoRA(model: transformer, adapterFolder: adapter) }
        return transformer
    }
}
