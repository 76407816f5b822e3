import Foundation
import Models
import SafeTensors
import Tensors
import TestSupport
import Testing

private func scratchFolder() -> String {
    let path = NSTemporaryDirectory() + "models-tests-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func writeConfig(_ json: String, in folder: String) throws {
    try json.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
}

@Test(arguments: fixtureNames)
func saveThenReloadGivesIdenticalWeights(name: String) throws {
    let model = try ModelLoader.load(folder: fixtureFolder(name))
    let out = scratchFolder()
    try ModelLoader.save(model, to: out)
    let reloaded = try ModelLoader.load(folder: out)
    #expect(reloaded.config == model.config)
    let a = Tensor(storage: model.parameters.values, offset: 0, shape: [model.parameters.count]).toArray()
    let b = Tensor(storage: reloaded.parameters.values, offset: 0, shape: [reloaded.parameters.count])
        .toArray()
    #expect(a == b)
    // A save in another dtype writes that dtype and names it in config.json.
    try ModelLoader.save(model, to: out, dtype: .bf16)
    let saved = try SafeTensorsFile(path: out + "/model.safetensors")
    #expect(saved.tensors["model.norm.weight"]?.dtype == .bf16)
    let config =
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json")))
        as! [String: Any]
    #expect((config["dtype"] ?? config["torch_dtype"]) as? String == "bfloat16")
}

@Test func unknownArchitectureIsNamed() throws {
    let folder = scratchFolder()
    try writeConfig(
        #"{"architectures":["GPT2LMHeadModel"],"vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}"#,
        in: folder)
    #expect(
        throws: ConfigError.unsupportedArchitecture(path: folder + "/config.json", name: "GPT2LMHeadModel")
    ) {
        try ModelConfig.load(path: folder + "/config.json")
    }
}

@Test func missingAndMistypedFieldsAreNamed() throws {
    let folder = scratchFolder()
    let path = folder + "/config.json"
    try writeConfig(
        #"{"architectures":["LlamaForCausalLM"],"vocab_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}"#,
        in: folder)
    #expect(throws: ConfigError.missingField(path: path, field: "hidden_size")) {
        try ModelConfig.load(path: path)
    }
    try writeConfig(
        #"{"architectures":["LlamaForCausalLM"],"vocab_size":"big","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}"#,
        in: folder)
    #expect(throws: ConfigError.badField(path: path, field: "vocab_size", expected: "an integer")) {
        try ModelConfig.load(path: path)
    }
    try writeConfig(
        #"{"architectures":["LlamaForCausalLM"],"vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":3}"#,
        in: folder)
    #expect(throws: ConfigError.self) { try ModelConfig.load(path: path) }
    try writeConfig(
        #"{"architectures":["LlamaForCausalLM"],"vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"rope_scaling":{"rope_type":"yarn","factor":4}}"#,
        in: folder)
    #expect(
        throws: ConfigError.unsupported(
            path: path, setting: "rope type 'yarn' (supported: default, linear, llama3)")
    ) {
        try ModelConfig.load(path: path)
    }
    try writeConfig("{not json", in: folder)
    #expect(throws: ConfigError.malformed(path: path, reason: "not valid JSON")) {
        try ModelConfig.load(path: path)
    }
}

@Test func bothRoPEConfigStylesResolveAlike() throws {
    let folder = scratchFolder()
    let path = folder + "/config.json"
    let base =
        #""architectures":["LlamaForCausalLM"],"vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2"#
    try writeConfig(
        "{\(base),\"rope_theta\":500000,\"rope_scaling\":{\"type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}}",
        in: folder)
    let classic = try ModelConfig.load(path: path)
    try writeConfig(
        "{\(base),\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000,\"factor\":8,\"low_freq_factor\":1,\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}}",
        in: folder)
    let modern = try ModelConfig.load(path: path)
    #expect(classic == modern)
    #expect(modern.ropeTheta == 500_000)
}

@Test func missingTensorAndWrongShapeAreNamed() throws {
    let source = try ModelLoader.load(folder: fixtureFolder("mistral"))
    let folder = scratchFolder()
    try FileManager.default.copyItem(
        atPath: fixtureFolder("mistral") + "/config.json", toPath: folder + "/config.json")
    let store = source.parameters
    let keep = store.slots.filter { $0.name != "model.norm.weight" }
    let flat = Tensor(storage: store.values, offset: 0, shape: [store.count]).toArray()
    try flat.withUnsafeBufferPointer { buffer in
        let tensors = keep.map {
            TensorToWrite(
                name: $0.name, shape: $0.shape,
                values: UnsafeBufferPointer(rebasing: buffer[$0.offset..<($0.offset + $0.count)]))
        }
        try SafeTensorsWriter.write(tensors, to: folder + "/model.safetensors")
    }
    #expect(throws: WeightsError.missingTensor(folder: folder, name: "model.norm.weight")) {
        try ModelLoader.load(folder: folder)
    }
    let wrong: [Float] = [1, 2, 3]
    try wrong.withUnsafeBufferPointer { w in
        try SafeTensorsWriter.write(
            [TensorToWrite(name: "model.embed_tokens.weight", shape: [3], values: w)],
            to: folder + "/model.safetensors")
    }
    #expect(
        throws: WeightsError.shapeMismatch(
            folder: folder, name: "model.embed_tokens.weight", expected: [96, 64], found: [3])
    ) {
        try ModelLoader.load(folder: folder)
    }
}

@Test func outOfRangeTokensAndOverlongSequencesAreRefused() throws {
    let model = try ModelLoader.load(folder: fixtureFolder("llama-gqa"))
    #expect(throws: ModelError.tokenOutOfRange(id: 96, vocabSize: 96)) {
        try model.validate(TokenBatch(sequences: [[1, 96]]))
    }
    #expect(throws: ModelError.self) {
        try model.validate(TokenBatch(sequences: [[Int32](repeating: 1, count: 257)]))
    }
    try model.validate(TokenBatch(sequences: [[1, 95]]))
}

@Test func scoredMaskSelectsTargets() throws {
    let model = try ModelLoader.load(folder: fixtureFolder("qwen2-bias"))
    let all = model.forward(TokenBatch(sequences: [[3, 4, 5, 6], [7, 8]]))
    let some = model.forward(
        TokenBatch(
            sequences: [[3, 4, 5, 6], [7, 8]], scored: [[false, false, true, true], [false, false]]))
    #expect(all.count == 4)
    // The same positions' log-probs; a smaller batch may take another sgemm kernel, so allow rounding
    // (neighbouring positions differ by far more).
    #expect(some.count == 2)
    #expect(maxAbsDiff(some, Array(all[1..<3])).diff < 1e-5, "\(some) vs \(Array(all[1..<3]))")
}

/// A group's prompt packed once gives the same log-probs and parameter gradients as a copy of it in
/// every sequence (up to rounding).
@Test(arguments: ["qwen3-qknorm", "llama-gqa"])
func sharedPromptsMatchCopiedPrompts(name: String) throws {
    let model = try ModelLoader.load(folder: fixtureFolder(name))
    let prompts: [[Int32]] = [[3, 4, 5, 6, 7], [9, 2]]
    let continuations: [[[Int32]]] = [[[11, 12, 13], [14], [], [15, 16, 17, 18, 19, 20]], [[21, 22]]]
    var sequences: [[Int32]] = []
    var scored: [[Bool]] = []
    for (prompt, group) in zip(prompts, continuations) {
        for continuation in group {
            sequences.append(prompt + continuation)
            scored.append(prompt.map { _ in false } + continuation.map { _ in true })
        }
    }
    let weights = randomFloats(12, seed: 5)
    func run(_ batch: TokenBatch) -> (logp: [Float], gradients: [Float]) {
        model.parameters.zeroGradients()
        let logp = model.forward(batch, temperature: 0.7)
        model.backward(dLogp: weights)
        return (
            logp,
            Tensor(storage: model.parameters.gradients, offset: 0, shape: [model.parameters.count]).toArray()
        )
    }
    let shared = TokenBatch(prompts: prompts, continuations: continuations)
    #expect(shared.tokenCount == 7 + 12)
    let (sharedLogp, sharedGradients) = run(shared)
    let (copiedLogp, copiedGradients) = run(TokenBatch(sequences: sequences, scored: scored))
    #expect(sharedLogp.count == 12)
    #expect(maxAbsDiff(sharedLogp, copiedLogp).diff < 1e-5)
    #expect(relativeError(sharedGradients, copiedGradients) < 1e-4)
}
