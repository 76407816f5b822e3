import Foundation
import SafeTensors
import Tensors

/// Errors loading a model folder's weights; each names the file and tensor.
public enum WeightsError: Error, CustomStringConvertible, Equatable {
    case missingTensor(folder: String, name: String)
    case shapeMismatch(folder: String, name: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
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
    public static func load(folder: String) throws -> Transformer {
        let config = try ModelConfig.load(path: folder + "/config.json")
        let weights = try SafeTensorsCollection(folder: folder)
        let store = ParameterStore(layout: config.parameterLayout)
        for slot in store.slots {
            guard let info = weights.info(slot.name) else {
                throw WeightsError.missingTensor(folder: folder, name: slot.name)
            }
            guard info.shape == slot.shape else {
                throw WeightsError.shapeMismatch(
                    folder: folder, name: slot.name, expected: slot.shape, found: info.shape)
            }
            try weights.read(
                slot.name,
                into: UnsafeMutableBufferPointer(start: store.values.pointer + slot.offset, count: slot.count)
            )
        }
        let model = Transformer(config: config, parameters: store)
        model.sourceFolder = folder
        return model
    }

    /// A model with transformers' default initialisation: N(0, 0.02) matrices, unit norms, zero biases.
    public static func randomModel(config: ModelConfig, seed: UInt64) -> Transformer {
        let store = ParameterStore(layout: config.parameterLayout)
        var rng = SplitMix64(seed: seed)
        for slot in store.slots {
            let values = store.value(slot.name)
            if slot.name.hasSuffix("norm.weight") {
                for i in 0..<slot.count { values[i] = 1 }
            } else if !slot.name.hasSuffix(".bias") {
                for i in 0..<slot.count { values[i] = 0.02 * rng.nextNormal() }
            }
        }
        return Transformer(config: config, parameters: store)
    }

    /// Writes config.json, model.safetensors (in `dtype`) and the source folder's tokenizer files.
    ///
    /// Each file is written to a temporary name and renamed, so an interrupted save leaves the
    /// previous files whole.
    public static func save(_ model: Transformer, to folder: String, dtype: DType = .f32) throws {
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
        if let source = model.sourceFolder, source != folder {
            for name in companionFiles {
                if let data = FileManager.default.contents(atPath: source + "/" + name) {
                    try atomicWrite(data, to: folder + "/" + name)
                }
            }
        }
    }
}
