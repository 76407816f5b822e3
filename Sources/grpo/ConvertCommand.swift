import ArgumentParser
import Models
import SafeTensors

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Load a model folder and save it again (for example in another dtype).")

    @OptionGroup var model: ModelOptions
    @Option(help: "The folder to write.") var output: String
    @Option(help: "Weight dtype to write: f32, f16 or bf16.") var dtype: String = "f32"

    func run() throws {
        let type = try weightDType(dtype)
        let transformer = try model.load()
        transformer.lora?.mergeIntoBase(transformer)  // with --adapter: the merged model
        try ModelLoader.save(transformer, to: output, dtype: type)
        print("wrote \(output) (\(transformer.config.parameterCount) parameters, \(type.rawValue))")
    }
}

/// The `--dtype` option of the commands that write weights.
func weightDType(_ name: String) throws -> DType {
    guard let type = ["f32": DType.f32, "f16": .f16, "bf16": .bf16][name.lowercased()] else {
        throw ValidationError("--dtype must be f32, f16 or bf16, got '\(name)'")
    }
    return type
}
