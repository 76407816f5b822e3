import Foundation
import SafeTensors
import Tensors

/// PEFT's adapter folder: `adapter_config.json` (a `LoraConfig`) and `adapter_model.safetensors`
/// (`base_model.model.<module>.lora_A.weight` (r, in) and `lora_B.weight` (out, r)), which
/// `PeftModel.from_pretrained(base, folder)` loads.
extension LoRA {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    /// Writes the adapter into `folder` (created if needed), each file atomically.
    public func save(to folder: String, baseModel: String?) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let targets = Array(Set(modules.map { String($0.split(separator: ".").last!) })).sorted()
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": settings.rank, "lora_alpha": settings.alpha,
            "lora_dropout": settings.dropout, "target_modules": targets, "use_rslora": settings.useRSLoRA,
            "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "use_dora": false,
            "init_lora_weights": true, "modules_to_save": NSNull(), "layers_to_transform": NSNull(),
            "layers_pattern": NSNull(), "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](),
            "base_model_name_or_path": baseModel ?? NSNull(), "revision": NSNull(),
        ]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try atomicWrite(json, to: folder + "/" + Self.configFile)
        let values = parameters.values.pointer
        try SafeTensorsWriter.write(
            parameters.slots.map {
                TensorToWrite(
                    name: $0.name, shape: $0.shape,
                    values: UnsafeBufferPointer(start: values + $0.offset, count: $0.count))
            }, dtype: .f32, to: folder + "/" + Self.weightsFile)
    }

    /// The adapter in `folder`, attached to `model` (whose base it must fit: every tensor names a
    /// module of the model, with the shapes its rank and the module give).
    public convenience init(model: Transformer, adapterFolder folder: String) throws {
        let configPath = folder + "/" + Self.configFile
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw LoRAError.unsupportedAdapter(
                path: configPath, reason: "no such file (an adapter folder holds adapter_config.json)")
        }
        guard let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LoRAError.unsupportedAdapter(path: configPath, reason: "not a JSON object")
        }
        func refuse(_ reason: String) -> LoRAError { .unsupportedAdapter(path: configPath, reason: reason) }
        let type = config["peft_type"] as? String ?? "missing"
        guard type == "LORA" else {
            throw refuse("peft_type is \(type); only LORA adapters are supported")
        }
        if config["use_dora"] as? Bool == true {
            throw refuse("use_dora is true; DoRA adapters are not supported")
        }
        if config["fan_in_fan_out"] as? Bool == true { throw refuse("fan_in_fan_out is true (Conv1D bases)") }
        if let bias = config["bias"] as? String, bias != "none" {
            throw refuse("bias is '\(bias)'; only adapters without bias training ('none') are supported")
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let pattern = config[key] as? [String: Any], !pattern.isEmpty {
                throw refuse("\(key) gives some modules their own rank or alpha, which is not supported")
            }
        }
        for key in ["lora_bias", "use_qalora", "use_bdlora"] where config[key] as? Bool == true {
            throw refuse("\(key) is true, which is not supported")
        }
        for key in ["target_parameters", "trainable_token_indices", "layer_replication"] {
            if let value = config[key], !(value is NSNull), !((value as? [Any])?.isEmpty ?? false) {
                throw refuse("\(key) is set, which is not supported")
            }
        }
        if let saved = config["modules_to_save"] as? [Any], !saved.isEmpty {
            throw refuse("modules_to_save lists fully trained modules, which is not supported")
        }
        guard let rank = (config["r"] as? NSNumber)?.intValue, rank >= 1 else {
            throw refuse("r must be a positive integer")
        }
        var settings = LoRASettings()
        settings.rank = rank
        settings.alpha = (config["lora_alpha"] as? NSNumber)?.doubleValue ?? Double(rank)
        settings.useRSLoRA = config["use_rslora"] as? Bool ?? false
        settings.dropout = (config["lora_dropout"] as? NSNumber)?.doubleValue ?? 0
        guard settings.dropout >= 0, settings.dropout < 1 else {
            throw refuse("lora_dropout must be in [0, 1)")
        }
        let weightsPath = folder + "/" + Self.weightsFile
        let file = try SafeTensorsFile(path: weightsPath)
        // The modules come from the tensors present: each must be a projection of the model.
        var linearOf: [String: (Linear, Linear.Module)] = [:]
        for layer in model.layers {
            for linear in layer.linears {
                for module in linear.modules { linearOf[module.name] = (linear, module) }
            }
        }
        var modules: [String] = []
        for name in file.tensors.keys.sorted() {
            guard name.hasPrefix("base_model.model."),
                name.hasSuffix(".lora_A.weight") || name.hasSuffix(".lora_B.weight")
            else {
                throw LoRAError.mismatch(
                    path: weightsPath, tensor: name,
                    reason:
                        "not a LoRA matrix (expected base_model.model.<module>.lora_A.weight or lora_B.weight)"
                )
            }
            let module = String(name.dropFirst("base_model.model.".count).dropLast(".lora_A.weight".count))
            guard let (linear, slice) = linearOf[module] else {
                throw LoRAError.mismatch(
                    path: weightsPath, tensor: name, reason: "the model has no module '\(module)'")
            }
            let expected =
                name.hasSuffix("lora_A.weight") ? [rank, linear.inputs] : [slice.rows.count, rank]
            guard file.tensors[name]!.shape == expected else {
                throw LoRAError.mismatch(
                    path: weightsPath, tensor: name,
                    reason:
                        "shape \(file.tensors[name]!.shape), but r = \(rank) and the model's module give \(expected)"
                )
            }
            if !modules.contains(module) { modules.append(module) }
        }
        for module in modules {
            for matrix in ["lora_A", "lora_B"] where file.tensors[Self.tensorName(module, matrix)] == nil {
                throw LoRAError.mismatch(
                    path: weightsPath, tensor: Self.tensorName(module, matrix),
                    reason: "missing (its partner is present)")
            }
        }
        guard !modules.isEmpty else {
            throw LoRAError.unsupportedAdapter(path: weightsPath, reason: "holds no LoRA matrices")
        }
        settings.targetModules = Array(Set(modules.map { String($0.split(separator: ".").last!) })).sorted()
        try self.init(model: model, settings: settings, modules: Set(modules), seed: 0)
        for slot in parameters.slots {
            try file.read(
                slot.name,
                into: UnsafeMutableBufferPointer(
                    start: parameters.values.pointer + slot.offset, count: slot.count))
        }
    }
}
