import Foundation
import Models
import SafeTensors
import TestSupport
import Testing

/// Adapters made by scripts/make_lora_fixtures.py with PEFT on every fixture model: r 4 on all
/// seven projections, B random.
private func adapted(_ name: String) throws -> (Fixture, LoRA, SafeTensorsFile) {
    let fixture = try Fixture(name)
    let lora = try LoRA(model: fixture.model, adapterFolder: fixtureFolder(name) + "/lora")
    return (fixture, lora, try SafeTensorsFile(path: fixtureFolder(name) + "/lora/expected.safetensors"))
}

@Test(arguments: fixtureNames)
func adaptedLogProbabilitiesMatchPEFT(name: String) throws {
    let (fixture, lora, expected) = try adapted(name)
    #expect(lora.modules.count == 2 * 7)
    #expect(lora.settings.rank == 4 && lora.settings.scaling == 2)
    let logp = fixture.model.forward(fixture.batch, temperature: 1)
    let (diff, index) = maxAbsDiff(logp, try expected.floats("logp_t1"))
    #expect(diff <= 1e-4, "\(name): max |diff| = \(diff) at target \(index)")
}

@Test(arguments: fixtureNames)
func adapterGradientsMatchPEFT(name: String) throws {
    let (fixture, lora, expected) = try adapted(name)
    let model = fixture.model
    lora.parameters.zeroGradients()
    model.forward(fixture.batch, temperature: fixture.inputs.gradientTemperature)
    model.backward(dLogp: fixture.inputs.gradientWeights)
    var worst: (name: String, error: Float) = ("", 0)
    for slot in lora.parameters.slots {
        let error = relativeError(
            lora.parameters.gradient(slot.name).toArray(), try expected.floats("grad." + slot.name))
        if error > worst.error { worst = (slot.name, error) }
    }
    #expect(
        worst.error <= 1e-3, "\(name): worst adapter gradient \(worst.name), relative error \(worst.error)")
}

@Test(arguments: fixtureNames)
func mergingMatchesMergeAndUnload(name: String) throws {
    let (fixture, lora, expected) = try adapted(name)
    let model = fixture.model
    let before = model.logProbabilities(fixture.batch)
    lora.mergeIntoBase(model)
    #expect(model.lora == nil && !model.frozenBase)
    var worst: Float = 0
    var compared = 0
    for name in expected.tensors.keys where name.hasPrefix("merged.") {
        let (diff, _) = maxAbsDiff(
            model.parameters.value(String(name.dropFirst("merged.".count))).toArray(),
            try expected.floats(name))
        worst = max(worst, diff)
        compared += 1
    }
    #expect(compared == 14)
    #expect(worst <= 1e-5, "\(name): merged weights differ by \(worst)")
    let (diff, _) = maxAbsDiff(model.logProbabilities(fixture.batch), before)
    #expect(diff <= 1e-4, "\(name): the merged model's log-probs moved by \(diff)")
}

/// Saved in PEFT's layout and read back: the same adapter (and PEFT reads it: see the fixture
/// script's --check-trained).
@Test func adaptersRoundTripThroughPEFTsFormat() throws {
    let (fixture, lora, _) = try adapted("qwen3-qknorm")
    let folder = NSTemporaryDirectory() + "grpo-lora-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try lora.save(to: folder, baseModel: "qwen3-qknorm")
    let config =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: folder + "/adapter_config.json")))
        as! [String: Any]
    #expect(config["peft_type"] as? String == "LORA" && config["r"] as? Int == 4)
    #expect((config["target_modules"] as? [String])?.count == 7)
    let logp = fixture.model.logProbabilities(fixture.batch)
    let again = try Fixture("qwen3-qknorm")
    let reloaded = try LoRA(model: again.model, adapterFolder: folder)
    #expect(reloaded.modules == lora.modules)
    #expect(again.model.logProbabilities(again.batch) == logp)
}

/// Adapters that do not fit the model, or that PEFT features this engine lacks make, are errors
/// naming the file and the tensor or key.
@Test func adaptersThatDoNotFitAreErrors() throws {
    let source = fixtureFolder("qwen2-bias") + "/lora"
    func folder(config edit: (inout [String: Any]) -> Void = { _ in }, tensorsFrom model: String? = nil)
        throws -> String
    {
        let path = NSTemporaryDirectory() + "grpo-lora-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var config =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: source + "/adapter_config.json")))
            as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(
            to: URL(fileURLWithPath: path + "/adapter_config.json"))
        try FileManager.default.copyItem(
            atPath: (model.map { fixtureFolder($0) + "/lora" } ?? source) + "/adapter_model.safetensors",
            toPath: path + "/adapter_model.safetensors")
        return path
    }
    let cases: [(String, String)] = [
        (try folder { $0["use_dora"] = true }, "DoRA adapters are not supported"),
        (try folder { $0["peft_type"] = "IA3" }, "peft_type is IA3"),
        (try folder { $0["r"] = 8 }, "but r = 8"),
        (try folder { $0["rank_pattern"] = ["q_proj": 2] }, "rank_pattern"),
        (
            try folder(tensorsFrom: "qwen3-qknorm"),
            "tensor 'base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight': shape"
        ),
    ]
    for (path, message) in cases {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try Fixture("qwen2-bias").model
        do {
            _ = try LoRA(model: model, adapterFolder: path)
            Issue.record("\(message): loaded")
        } catch let error as LoRAError {
            #expect("\(error)".contains(path), "\(error)")
            #expect("\(error)".contains(message), "\(error)")
        }
    }
}
