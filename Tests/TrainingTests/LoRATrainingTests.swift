import Foundation
import Models
import SafeTensors
import Tensors
import TestSupport
import Testing

@testable import Training

/// GRPO with LoRA: only the adapters train, the reference is the base with the adapters off (no
/// second model), checkpoints are PEFT adapter folders, and a resumed run continues exactly.
@Test func loraTrainsOnlyTheAdaptersAndResumesExactly() throws {
    let w = try Workspace()
    let settings: [String: Any] = [
        "beta": 0.04, "lora_r": 4, "lora_alpha": 8, "lora_target_modules": "all-linear",
        "learning_rate": 1e-2,
        "num_iterations": 2, "rewards": ["accuracy", ["name": "format", "pattern": ".*[0-9].*"]],
        "reward_weights": [1, 0.5],
    ]
    let straight = try GRPOTrainer(config: try w.config(settings, output: "a"))
    #expect(straight.reference == nil)
    let lora = try #require(straight.policy.lora)
    #expect(lora.modules.count == 2 * 7)
    #expect(straight.optimizer.parameters === lora.parameters)
    let baseBefore = straight.policy.parameters.values.pointer
    let base = Array(UnsafeBufferPointer(start: baseBefore, count: straight.policy.parameters.count))
    try straight.train()
    let baseAfter = Array(UnsafeBufferPointer(start: baseBefore, count: straight.policy.parameters.count))
    #expect(base == baseAfter, "the frozen base moved")
    let bMoved = lora.parameters.slots.filter { $0.name.hasSuffix("lora_B.weight") }.allSatisfy { slot in
        (0..<slot.count).contains { lora.parameters.values.pointer[slot.offset + $0] != 0 }
    }
    let moved = lora.parameters.slots.filter { $0.name.hasSuffix("lora_B.weight") }.filter { slot in
        (0..<slot.count).contains { lora.parameters.values.pointer[slot.offset + $0] != 0 }
    }.count
    #expect(bMoved, "\(moved) of 14 B matrices moved from zero")
    let out = w.root + "/a"
    for file in ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json"] {
        #expect(FileManager.default.fileExists(atPath: out + "/" + file), "output_dir lacks \(file)")
        #expect(
            FileManager.default.fileExists(atPath: out + "/checkpoint-4/" + file), "checkpoint lacks \(file)")
    }
    #expect(!FileManager.default.fileExists(atPath: out + "/checkpoint-4/model.safetensors"))
    let moments = try SafeTensorsFile(path: out + "/checkpoint-4/optimizer.safetensors")
    #expect(moments.tensors["exp_avg"]?.shape == [lora.parameters.count])

    var stopped = try w.config(settings, output: "b")
    stopped.schedule.maxSteps = 4
    let first = try GRPOTrainer(config: stopped)
    first.shouldStop = stopAfter(2)
    try first.train()
    let resumed = try GRPOTrainer(config: stopped, resumeFrom: Checkpoint.latest(in: w.root + "/b"))
    #expect(resumed.state.step == 2)
    try resumed.train()
    let (a, b) = (lora.parameters.values.pointer, resumed.policy.lora!.parameters.values.pointer)
    #expect((0..<lora.parameters.count).allSatisfy { a[$0] == b[$0] }, "adapters after 2 + resume + 2 differ")

    // The saved adapter, loaded on a fresh base, is the trained one.
    let model = try ModelLoader.load(folder: w.model)
    let reloaded = try LoRA(model: model, adapterFolder: out)
    let r = reloaded.parameters.values.pointer
    #expect((0..<lora.parameters.count).allSatisfy { r[$0] == a[$0] })
}

/// SFT with LoRA learns through the adapters alone, and continues from an existing adapter.
@Test func sftWithLoRAAndAnExistingAdapter() throws {
    let w = try Workspace()
    let lines = (0..<8).map { #"{"prompt": "\#($0)+\#($0)=", "completion": "\#($0 + $0)"}"# }
    try lines.joined(separator: "\n").write(toFile: w.root + "/sft.jsonl", atomically: true, encoding: .utf8)
    func config(_ extra: [String: Any], output: String) throws -> SFTConfig {
        let values = ConfigValues()
        values.merge(
            [
                "model": w.model, "dataset": w.root + "/sft.jsonl", "output_dir": w.root + "/" + output,
                "max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "save_steps": 3,
            ].merging(extra) { _, new in new }, source: "test")
        return try SFTConfig(values)
    }
    let trainer = try SFTTrainer(config: try config(["use_peft": true, "lora_r": 2], output: "s1"))
    #expect(trainer.model.lora?.modules.count == 2 * 2)  // q_proj, v_proj by default
    try trainer.train()
    let continued = try SFTTrainer(config: try config(["adapter": w.root + "/s1"], output: "s2"))
    let (a, b) = (
        trainer.model.lora!.parameters.values.pointer, continued.model.lora!.parameters.values.pointer
    )
    #expect((0..<trainer.model.lora!.parameters.count).allSatisfy { a[$0] == b[$0] })
    #expect(throws: Training.ConfigError.self) { try config(["lora_dropout": 1.5], output: "s3") }
    #expect(throws: Training.ConfigError.self) { try config(["lora_target_modules": "qkv"], output: "s3") }
}

/// The ModelsTests fixture folder `name` (made by scripts/make_fixtures.py).
private func modelFixture(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/\(name)").path
}

/// An adapter this project trains and saves loads in PEFT with the log-probabilities computed here.
///
/// The adapter (three AdamW steps on the qwen2-bias fixture) is rebuilt the same way every
/// run and checked against the committed copy, whose PEFT log-probs `make_lora_fixtures.py
/// --check-trained` recorded (set GRPO_WRITE_LORA_FIXTURE=1 to rewrite the copy).
@Test func anAdapterTrainedHereLoadsInPEFT() throws {
    let folder = modelFixture("qwen2-bias")
    let model = try ModelLoader.load(folder: folder)
    var settings = LoRASettings()
    settings.rank = 4
    settings.alpha = 16
    settings.targetModules = ["all-linear"]
    let lora = try LoRA(model: model, settings: settings, seed: 9)
    var adamW = AdamWSettings()
    adamW.learningRate = 1e-2
    let optimizer = AdamW(parameters: lora.parameters, settings: adamW)
    let inputs =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: folder + "/inputs.json"))) as! [String: Any]
    let sequences = (inputs["sequences"] as! [[Int]]).map { $0.map(Int32.init) }
    let weights = (inputs["gradient_weights"] as! [Double]).map(Float.init)
    let batch = TokenBatch(sequences: sequences)
    for _ in 0..<3 {
        lora.parameters.zeroGradients()
        model.forward(batch, temperature: 0.7)
        model.backward(dLogp: weights.map { -$0 })
        optimizer.step(learningRate: 1e-2)
    }
    let committed = folder + "/lora-trained"
    if ProcessInfo.processInfo.environment["GRPO_WRITE_LORA_FIXTURE"] != nil {
        try lora.save(to: committed, baseModel: "qwen2-bias")
        return
    }
    let saved = try SafeTensorsFile(path: committed + "/adapter_model.safetensors")
    for slot in lora.parameters.slots {
        let values = try saved.floats(slot.name)
        let (diff, _) = maxAbsDiff(lora.parameters.value(slot.name).toArray(), values)
        // 1e-5: the committed adapter was trained on another CPU class, whose matmuls round differently.
        #expect(diff <= 1e-5, "\(slot.name) differs from the committed adapter by \(diff)")
    }
    let peft =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: committed + "/peft_logp.json"))) as! [Double]
    let (diff, index) = maxAbsDiff(model.logProbabilities(batch), peft.map(Float.init))
    #expect(diff <= 1e-4, "PEFT's log-probs differ by \(diff) at target \(index)")
}

/// In bf16 the frozen weights are held in bf16 only (the LoRA base, the reference model), and a
/// LoRA run still trains its adapters and resumes exactly.
@Test(.enabled(if: BFloat16Matmul.isAvailable, "no bf16 instructions here"))
func bf16RunsHoldFrozenWeightsInBF16Only() throws {
    let w = try Workspace()
    let full = try GRPOTrainer(
        config: try w.config(["beta": 0.04, "precision": "bf16", "max_steps": 2], output: "f"))
    #expect(full.reference?.float32WeightsReleased == true)
    #expect(!full.policy.float32WeightsReleased)  // the policy trains its float32 masters
    try full.train()

    let settings: [String: Any] = [
        "beta": 0.04, "lora_r": 4, "lora_target_modules": "all-linear", "learning_rate": 1e-2,
        "precision": "bf16", "max_steps": 4, "save_steps": 2,
        "rewards": [["name": "format", "pattern": ".*[0-9].*"]],
    ]
    let straight = try GRPOTrainer(config: try w.config(settings, output: "a"))
    #expect(straight.policy.float32WeightsReleased && straight.reference == nil)
    try straight.train()
    let lora = try #require(straight.policy.lora)
    let bMoved = lora.parameters.slots.filter { $0.name.hasSuffix("lora_B.weight") }.allSatisfy { slot in
        (0..<slot.count).contains { lora.parameters.values.pointer[slot.offset + $0] != 0 }
    }
    #expect(bMoved)
    let first = try GRPOTrainer(config: try w.config(settings, output: "b"))
    first.shouldStop = stopAfter(2)
    try first.train()
    let resumed = try GRPOTrainer(
        config: try w.config(settings, output: "b"), resumeFrom: Checkpoint.latest(in: w.root + "/b"))
    try resumed.train()
    let (a, b) = (lora.parameters.values.pointer, resumed.policy.lora!.parameters.values.pointer)
    #expect(
        (0..<lora.parameters.count).allSatisfy { a[$0] == b[$0] }, "bf16 adapters after 2 + resume + 2 differ"
    )
}
