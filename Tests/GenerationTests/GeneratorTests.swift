import Foundation
import Generation
import Models
import TestSupport
import Testing

let modelNames = ["llama-gqa", "llama-tied", "llama3-rope", "qwen2-bias", "qwen3-qknorm", "mistral"]

func modelFolder(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/\(name)").path
}

struct GenerateFixture: Decodable {
    let prompts: [[Int32]]
    let maxNewTokens: Int
    let greedy: [[Int32]]
    enum CodingKeys: String, CodingKey {
        case prompts
        case maxNewTokens = "max_new_tokens"
        case greedy
    }
}

@Test(arguments: modelNames)
func greedyMatchesTransformersGenerate(name: String) throws {
    let model = try ModelLoader.load(folder: modelFolder(name))
    let fixture = try JSONDecoder().decode(
        GenerateFixture.self,
        from: Data(contentsOf: URL(fileURLWithPath: modelFolder(name) + "/generate.json")))
    var parameters = SamplingParameters()
    parameters.temperature = 0
    parameters.maxNewTokens = fixture.maxNewTokens
    let groups = try Generator(model: model).generate(prompts: fixture.prompts, parameters: parameters)
    for (p, expected) in fixture.greedy.enumerated() {
        #expect(groups[p][0].tokens == expected, "\(name) prompt \(p)")
        #expect(groups[p][0].finishReason == .length)
    }
}

@Test func greedyMatchesArgmaxWithFullRecomputation() throws {
    let model = try ModelLoader.load(folder: modelFolder("qwen2-bias"))
    var parameters = SamplingParameters()
    parameters.temperature = 0
    parameters.maxNewTokens = 8
    let prompt: [Int32] = [11, 22, 33, 44]
    let completion = try Generator(model: model).generate(prompts: [prompt], parameters: parameters)[0][0]
    var sequence = prompt
    for step in 0..<8 {
        let logits = model.logits(TokenBatch(sequences: [sequence]), rows: [sequence.count - 1])[0]
        let next = argmax(logits[...])
        #expect(completion.tokens[step] == next, "step \(step)")
        let expectedLogprob = tokenLogProbability(logits[...], token: next, temperature: 1)
        #expect(abs(completion.logprobs[step] - expectedLogprob) < 1e-4)
        sequence.append(next)
    }
}

/// Same tokens and finish reasons; log-probs equal up to float rounding (a matmul's blocking, and so
/// its last bits, depends on how many rows the batch has).
func sameCompletions(_ a: [Completion], _ b: [Completion]) -> Bool {
    a.count == b.count
        && zip(a, b).allSatisfy { x, y in
            x.tokens == y.tokens && x.finishReason == y.finishReason
                && zip(x.logprobs, y.logprobs).allSatisfy { abs($0 - $1) < 1e-4 }
        }
}

@Test func completionsDoNotDependOnTheRestOfTheBatch() throws {
    let model = try ModelLoader.load(folder: modelFolder("llama-gqa"))
    let generator = Generator(model: model)
    var parameters = SamplingParameters()
    parameters.temperature = 0.9
    parameters.topP = 0.95
    parameters.numGenerations = 3
    parameters.maxNewTokens = 10
    parameters.seed = 1234
    let a: [Int32] = [1, 2, 3, 4, 5]
    let together = try generator.generate(prompts: [a, [9, 8], [60]], parameters: parameters)
    let withOthers = try generator.generate(
        prompts: [a, [33, 34, 35, 36, 37, 38, 39]], parameters: parameters)
    #expect(sameCompletions(together[0], withOthers[0]))
    // Samples of a group differ from one another (their streams are independent).
    #expect(Set(together[0].map(\.tokens)).count > 1)
    // A KV-cache budget that forces one prompt per wave changes nothing.
    generator.maxCacheBytes = generator.cacheBytes(tokens: 7 + 10) * 4
    let inWaves = try generator.generate(prompts: [a, [9, 8], [60]], parameters: parameters)
    #expect(zip(inWaves, together).allSatisfy { sameCompletions($0, $1) })
    #expect(generator.peakCacheBytes <= generator.maxCacheBytes)
    // Another seed gives other completions.
    parameters.seed = 99
    #expect(!sameCompletions(try generator.generate(prompts: [a], parameters: parameters)[0], together[0]))
}

@Test func stopTokensEndCompletions() throws {
    let model = try ModelLoader.load(folder: modelFolder("llama-gqa"))
    var parameters = SamplingParameters()
    parameters.temperature = 0
    parameters.maxNewTokens = 12
    parameters.stopTokenIDs = [57]  // greedy from [5, 17, 3] gives 51, 75, 38, 75, 57, ...
    let completion = try Generator(model: model).generate(prompts: [[5, 17, 3]], parameters: parameters)[0][0]
    #expect(completion.tokens == [51, 75, 38, 75, 57])
    #expect(completion.finishReason == .stop)
}

@Test func badRequestsFailBeforeAnyWork() throws {
    let model = try ModelLoader.load(folder: modelFolder("mistral"))
    let generator = Generator(model: model)
    var parameters = SamplingParameters()
    #expect(throws: GenerationError.emptyPrompt(index: 1)) {
        try generator.generate(prompts: [[1], []], parameters: parameters)
    }
    parameters.maxNewTokens = 250
    #expect(throws: GenerationError.promptTooLong(index: 0, tokens: 10, maxNewTokens: 250, context: 256)) {
        try generator.generate(prompts: [[Int32](repeating: 1, count: 10)], parameters: parameters)
    }
    parameters.maxNewTokens = 4
    #expect(throws: GenerationError.tokenOutOfRange(index: 0, id: 96, vocabSize: 96)) {
        try generator.generate(prompts: [[96]], parameters: parameters)
    }
    for change in [
        { (p: inout SamplingParameters) in p.temperature = -1 }, { $0.topP = 0 }, { $0.topP = 1.5 },
        { $0.topK = -2 }, { $0.minP = 2 }, { $0.maxNewTokens = 0 }, { $0.repetitionPenalty = 0 },
    ] {
        var bad = SamplingParameters()
        change(&bad)
        #expect(throws: GenerationError.self) { try generator.generate(prompts: [[1]], parameters: bad) }
    }
}
