import ArgumentParser
import Models
import SafeTensors

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a LoRA adapter into its base model and write a plain Hugging Face folder.",
        discussion: "As PEFT's merge_and_unload(): W += (alpha / r) B A for every adapted module.")

    @Option(help: "The base model folder the adapter was trained on (or its Hub id in the local cache).")
    var model: String
    @Option(help: "The PEFT adapter folder.") var adapter: String
    @Option(help: "The folder to write.") var output: String
    @Option(help: "Weight dtype to write: f32, f16 or bf16.") var dtype: String = "f32"

    func run() throws {
        let type = try weightDType(dtype)
        let transformer = try ModelLoader.load(folder: try HubCache.resolve(model))
        let lora = try LoRA(model: transformer, adapterFolder: adapter)
        lora.mergeIntoBase(transformer)
        try ModelLoader.save(transformer, to: output, dtype: type)
        print(
            "wrote \(output): \(model) with \(lora.modules.count) adapted modules merged (\(type.rawValue))")
    }
}
