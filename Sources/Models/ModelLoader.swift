import Foundation
import SafeTensors
import Tensors

/// Errors loading a model folder's weights; each names the file and tensor.
public enum WeightsError: Error, CustomStringConvertible, Equatable {
    case missingTensor(folder: String, name: String)
    case shapeMismatch(folder: String, name: String, expected: [Int], found: [Int])
    case nonFinite(folder: String, name: String, count: Int)
    case tooLarge(folder: String, bytes: Double, memory: Double)

    public var description: String {
        switch self {
        case .nonFinite(let folder, let name, let count):
            "\(folder): tensor '\(name)' holds \(count) NaN or infinite values; the weights are broken"
        case .tooLarge(let folder, let bytes, let memory):
            String(
                format: "%@: the model needs %.1f GiB for its float32 weights; this machine has %.1f GiB",
                folder, bytes / 1_073_741_824, memory / 1_073_741_824)
        case .missingTensor(let folder, let name): "\(folder): the weights have no tensor '\(name)'"
        case .shapeMismatch(let folder, let name, let expected, let found):
            "\(folder): tensor '\(name)' has shape \(found), config.json implies \(expected)"
        }
    }
}

/// Hugging Face model folders in and out, name for name.
public enum ModelLoader {
    /// Files copied from the source folder when a model is saved, so the result is complete.
    static let companionFiles = [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
        "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model",
    ]

    /// Loads config.json and the safetensors weights (single file or sharded; F32/F16/BF16).
    ///
    /// With a score `head` the folder's lm_head, if any, is not read; tensors named in `skipping`
    /// are left zero for the caller to fill.
    public static func load(
        folder: String, head: OutputHead = .languageModel, skipping: Set<String> = []
    ) throws -> Transformer {
        let config = try ModelConfig.load(path: folder + "/config.json")
        let weights = try SafeTensorsCollection(folder: folder)
        // Every tensor is checked against config.json before anything is allocated, so a config that
        // claims a huge model is an error naming the tensor, not an allocation that fails.
        let layout = config.parameterLayout(head: head)
        for (name, shape) in layout where !skipping.contains(name) {
            guard let info = weights.info(name) else {
                throw WeightsError.missingTensor(folder: folder, name: name)
            }
            guard info.shape == shape else {
                throw WeightsError.shapeMismatch(
                    folder: folder, name: name, expected: shape, found: info.shape)
            }
        }
        let bytes = Double(layout.reduce(0) { $0 + $1.shape.reduce(1, *) }) * 4
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard bytes < memory else {
            throw WeightsError.tooLarge(folder: folder, bytes: bytes, memory: memory)
        }
        let store = ParameterStore(layout: layout)
        for slot in store.slots where !skipping.contains(slot.name) {
            let values = UnsafeMutableBufferPointer(
                start: store.values.pointer + slot.offset, count: slot.count)
            try weights.read(slot.name, into: values)
            let broken = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            if broken > 0 { throw WeightsError.nonFinite(folder: folder, name: slot.name, count: broken) }
        }
        let model = Transformer(config: config, parameters: store, head: head)
        model.sourceFolder = folder
        return model
    }

    /// A model with transformers' default initialisation: N(0, 0.02) matrices, unit norms, zero biases.
    public static func randomModel(
        config: ModelConfig, seed: UInt64, head: OutputHead = .languageModel
    ) -> Transformer {
        let store = ParameterStore(layout: config.parameterLayout(head: head))
        var rng = SplitMix64(seed: seed)
        for slot in store.slots {
            let values = store.value(slot.name)
            if slot.name.hasSuffix("norm.weight") {
                for i in 0..<slot.count { values[i] = 1 }
            } else if !slot.name.hasSuffix(".bias") {
                for i in 0..<slot.count { values[i] = 0.02 * rng.nextNormal() }
            }
        }
        return Transformer(config: config, parameters: store, head: head)
    }

    /// What a training run saves: the adapter and the tokenizer files when the model has LoRA
    /// adapters (as TRL's `save_model` with PEFT), else the whole model folder.
    public static func saveTrained(_ model: Transformer, to folder: String) throws {
        guard let lora = model.lora else { return try save(model, to: folder, dtype: .f32) }
        try lora.save(to: folder, baseModel: model.sourceFolder)
        try copyCompanionFiles(of: model, to: folder)
    }

    /// The source folder's tokenizer and generation files, copied beside a saved model or adapter.
    static func copyCompanionFiles(of model: Transformer, to folder: String) throws {
        guard let source = model.sourceFolder, source != folder else { return }
        for name in companionFiles {
            if let data = FileManager.default.contents(atPath: source + "/" + name) {
                try atomicWrite(data, to: folder + "/" + name)
            }
        }
    }

    /// Writes config.json, model.safetensors (in `dtype`) and the source folder's tokenizer files.
    ///
    /// Each file is written to a temporary name and renamed, so an interrupted save leaves the
    /// previous files whole.
    public static func save(_ model: Transformer, to folder: String, dtype: DType = .f32) throws {
        precondition(!model.float32WeightsReleased, "saving a model whose float32 weights were released")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let dtypeName = ["F32": "float32", "F16": "float16", "BF16": "bfloat16"][dtype.rawValue] ?? "float32"
        var config = model.config.configDictionary(dtype: dtypeName)
        if let source = model.sourceFolder,
            let data = FileManager.default.contents(atPath: source + "/config.json"),
            let original = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            config = original  // keep every key transformers wrote, changing only the dtype
            config[original["dtype"] != nil ? "dtype" : "torch_dtype"] = dtypeName
        }
        if case .score(let labels) = model.outputHead {
            // transformers reads num_labels from id2label.
            config["architectures"] = [model.config.architecture.classifierClassName]
            config["id2label"] = Dictionary(
                uniqueKeysWithValues: (0..<labels).map { ("\($0)", "LABEL_\($0)") })
            config["label2id"] = Dictionary(uniqueKeysWithValues: (0..<labels).map { ("LABEL_\($0)", $0) })
        }
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        let store = model.parameters
        let tensors = store.slots.map {
            TensorToWrite(
                name: $0.name, shape: $0.shape,
                values: UnsafeBufferPointer(start: store.values.pointer + $0.offset, count: $0.count))
        }
        try SafeTensorsWriter.write(tensors, dtype: dtype, to: folder + "/model.safetensors")
        if FileManager.default.fileExists(atPath: folder + "/model.safetensors.index.json") {
            try FileManager.default.removeItem(atPath: folder + "/model.safetensors.index.json")
        }
        try atomicWrite(json, to: folder + "/config.json")
        try copyCompanionFiles(of: model, to: folder)
    }
}
