import ArgumentParser
import Foundation
import Models

struct ModelOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "A Hugging Face model folder (config.json and *.safetensors), or a Hub id (Qwen/Qwen2.5-0.5B-Instruct) found in the local Hugging Face cache; nothing is downloaded."
    )
    var model: String
    @Option(
        name: .customLong("model_revision"), help: "The cached revision of a Hub id: a branch, tag or commit."
    )
    var modelRevision: String = "main"
    @Option(help: "A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) to apply.")
    var adapter: String?

    /// The model's folder: `model` itself, or the cached snapshot of a Hub id.
    func folder() throws -> String { try HubCache.resolve(model, revision: modelRevision) }

    /// The model, with the adapter on when one is given.
    func load() throws -> Transformer {
        let transformer = try ModelLoader.load(folder: try folder())
        if let adapter { _ = try LoRA(model: transformer, adapterFolder: adapter) }
        return transformer
    }
}

/// `--precision float32 | bf16 | auto` for the commands that run a model.
struct PrecisionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Matmul precision: float32, bf16 (bf16 operands, float32 accumulation; float32 with a note where the CPU lacks avx512_bf16), or auto (bf16 where the CPU has it).",
            valueName: "float32|bf16|auto"))
    var precision: PrecisionSetting = .float32

    /// Sets `model`'s precision, saying on stderr when bf16 cannot run here.
    func apply(to model: Transformer) {
        let (resolved, note) = precision.resolved()
        if let note { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        model.precision = resolved
        // These commands never train: in bf16 the float32 weights are not needed.
        if resolved == .bf16 {
            model.frozenBase = true
            model.holdFrozenWeightsInBF16(backward: false)
        }
    }
}

extension PrecisionSetting: ExpressibleByArgument {}
