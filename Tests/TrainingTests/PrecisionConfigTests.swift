import Foundation
import Models
import Testing
import Training

private func values(_ entries: [String: Any]) -> ConfigValues {
    let values = ConfigValues()
    values.merge(
        ["model": NSTemporaryDirectory(), "dataset": "d.jsonl"].merging(entries) { _, new in new },
        source: "run.yaml")
    return values
}

@Test func precisionComesFromItsKeyOrTRLsBF16() throws {
    #expect(try GRPOConfig(values([:])).precision == .float32)
    #expect(try GRPOConfig(values(["bf16": true])).precision == .bf16)
    #expect(try GRPOConfig(values(["bf16": false])).precision == .float32)
    #expect(try GRPOConfig(values(["precision": "auto"])).precision == .auto)
    #expect(try GRPOConfig(values(["precision": "auto", "bf16": true])).precision == .auto)
    #expect(try GRPOConfig(values(["precision": "bf16", "bf16": true])).precision == .bf16)
    #expect(try SFTConfig(values(["precision": "bf16"])).precision == .bf16)
    #expect(try GRPOConfig(values(["precision": "bf16"])).summary["precision"] as? String == "bf16")
    for bad: [String: Any] in [
        ["precision": "fp8"], ["precision": "float32", "bf16": true], ["bf16": "maybe"],
    ] {
        #expect(throws: Training.ConfigError.self, "\(bad)") { try GRPOConfig(values(bad)) }
    }
    do {
        _ = try GRPOConfig(values(["precision": "float32", "bf16": true]))
    } catch let error as Training.ConfigError {
        #expect(error.key == "precision" && "\(error)".contains("bf16"))
    }
}
