import Foundation
import Models
import SafeTensors
import TestSupport
import Testing

/// Fixtures made by scripts/make_fixtures.py with PyTorch + transformers (see its docstring).
let fixtureNames = ["llama-gqa", "llama-tied", "llama3-rope", "qwen2-bias", "qwen3-qknorm", "mistral"]

func fixtureFolder(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
}

struct FixtureInputs: Decodable {
    let sequences: [[Int32]]
    let logitRows: [Int]
    let gradientWeights: [Float]
    let gradientTemperature: Float
    enum CodingKeys: String, CodingKey {
        case sequences
        case logitRows = "logit_rows"
        case gradientWeights = "gradient_weights"
        case gradientTemperature = "gradient_temperature"
    }
}

struct Fixture {
    let model: Transformer
    let inputs: FixtureInputs
    let expected: SafeTensorsFile
    var batch: TokenBatch { TokenBatch(sequences: inputs.sequences) }

    init(_ name: String) throws {
        let folder = fixtureFolder(name)
        model = try ModelLoader.load(folder: folder)
        inputs = try JSONDecoder().decode(
            FixtureInputs.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/inputs.json")))
        expected = try SafeTensorsFile(path: folder + "/expected.safetensors")
    }
}

@Test(arguments: fixtureNames)
func logProbabilitiesMatchTransformers(name: String) throws {
    let fixture = try Fixture(name)
    for (temperature, key) in [(Float(1), "logp_t1"), (0.7, "logp_t07")] {
        let logp = fixture.model.forward(fixture.batch, temperature: temperature)
        let (diff, index) = maxAbsDiff(logp, try fixture.expected.floats(key))
        #expect(diff <= 1e-4, "\(name) \(key): max |diff| = \(diff) at target \(index)")
    }
}

@Test(arguments: fixtureNames)
func logitsMatchTransformers(name: String) throws {
    let fixture = try Fixture(name)
    let logits = fixture.model.logits(fixture.batch, rows: fixture.inputs.logitRows).flatMap { $0 }
    let (diff, index) = maxAbsDiff(logits, try fixture.expected.floats("logits"))
    #expect(diff <= 1e-4, "\(name) logits: max |diff| = \(diff) at \(index)")
}

@Test(arguments: fixtureNames, [false, true])
func gradientsMatchTransformers(name: String, checkpointing: Bool) throws {
    let fixture = try Fixture(name)
    let model = fixture.model
    model.gradientCheckpointing = checkpointing
    model.parameters.zeroGradients()
    model.forward(fixture.batch, temperature: fixture.inputs.gradientTemperature)
    model.backward(dLogp: fixture.inputs.gradientWeights)
    var worst: (name: String, error: Float) = ("", 0)
    var compared = 0
    for slot in model.parameters.slots {
        let expected = try fixture.expected.floats("grad." + slot.name)
        let error = relativeError(model.parameters.gradient(slot.name).toArray(), expected)
        if error > worst.error { worst = (slot.name, error) }
        compared += 1
    }
    #expect(compared == model.parameters.slots.count)
    #expect(worst.error <= 1e-3, "\(name): worst gradient \(worst.name), relative error \(worst.error)")
}
