import Foundation
import Testing
import Training

/// `model_name_or_path` (TRL's ModelConfig name) and `model_revision` reach the Hub cache lookup.
@Test func trlsModelNameOrPathResolvesThroughTheHubCache() throws {
    let cache = NSTemporaryDirectory() + "hub-\(UUID().uuidString)"
    let commit = String(repeating: "f", count: 40)
    let snapshot = cache + "/models--Org--Tiny/snapshots/" + commit
    try FileManager.default.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(
        atPath: cache + "/models--Org--Tiny/refs", withIntermediateDirectories: true)
    try "{}".write(toFile: snapshot + "/config.json", atomically: true, encoding: .utf8)
    try commit.write(toFile: cache + "/models--Org--Tiny/refs/v2", atomically: true, encoding: .utf8)
    setenv("HF_HUB_CACHE", cache, 1)
    defer { unsetenv("HF_HUB_CACHE") }

    let values = ConfigValues()
    values.merge(
        ["model_name_or_path": "Org/Tiny", "model_revision": "v2", "dataset": "d.jsonl"],
        source: "recipe.yaml")
    #expect(try GRPOConfig(values).model == snapshot)

    let both = ConfigValues()
    both.merge(
        ["model": "Org/Tiny", "model_name_or_path": "Org/Other", "dataset": "d.jsonl"], source: "r.yaml")
    #expect(throws: ConfigError.self) { try GRPOConfig(both) }

    let missing = ConfigValues()
    missing.merge(["model_name_or_path": "Org/Tiny", "dataset": "d.jsonl"], source: "recipe.yaml")
    do {
        _ = try GRPOConfig(missing)
        Issue.record("revision main is not cached, so this should fail")
    } catch let error as ConfigError {
        #expect(error.key == "model_name_or_path" && error.source == "recipe.yaml")
        #expect(error.message.contains("refs/main: no such ref"))
    }
}

@Test func aMistypedKeyIsRefusedWithTheNearestKnownOne() throws {
    let values = ConfigValues()
    values.merge(
        ["model": NSTemporaryDirectory(), "dataset": "d.jsonl", "learnig_rate": 1e-6], source: "recipe.yaml")
    #expect(
        throws: ConfigError(
            key: "learnig_rate", source: "recipe.yaml",
            message: "unknown option; did you mean 'learning_rate'?")
    ) {
        try GRPOConfig(values)
    }
    let far = ConfigValues()
    far.merge(["model": NSTemporaryDirectory(), "dataset": "d.jsonl", "zzzzzz": 1], source: "recipe.yaml")
    #expect(throws: ConfigError(key: "zzzzzz", source: "recipe.yaml", message: "unknown option")) {
        try GRPOConfig(far)
    }
}
