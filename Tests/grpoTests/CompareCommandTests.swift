import Foundation
import Testing
import Training

/// `grpo compare` trains each variant in its own process and tabulates what they logged.
@Test func compareRunsEachVariantAndPrintsTheTables() throws {
    let root = NSTemporaryDirectory() + "grpo-compare-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    try ToyModel.write(to: root + "/model", layers: 1, hiddenSize: 32, heads: 2, keyValueHeads: 1, seed: 5)
    let data = (1...6).map { #"{"prompt": "\#($0)+\#($0)=", "answer": \#($0 * 2)}"# }
    try data.joined(separator: "\n").write(toFile: root + "/data.jsonl", atomically: true, encoding: .utf8)
    let held = (7...9).map { #"{"prompt": "\#($0)+\#($0)=", "answer": \#($0 * 2)}"# }
    try held.joined(separator: "\n").write(toFile: root + "/held.jsonl", atomically: true, encoding: .utf8)
    let yaml = """
        model: \(root)/model
        dataset: \(root)/data.jsonl
        eval_dataset: \(root)/held.jsonl
        num_generations: 4
        per_step_prompts: 2
        max_completion_length: 6
        rewards: [accuracy]
        learning_rate: 1.0e-3

        """
    try yaml.write(toFile: root + "/base.yaml", atomically: true, encoding: .utf8)
    let result = try runGRPO([
        "compare", "--config", root + "/base.yaml", "--variants", "grpo_kl,ppo,grpo+lora", "--steps", "2",
        "--eval-every", "1", "--seeds", "1-2", "--runs-dir", root + "/runs",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    if ProcessInfo.processInfo.environment["SHOW_COMPARE"] != nil { print(result.stdout) }
    for variant in ["grpo_kl", "ppo", "grpo+lora"] {
        #expect(result.stdout.contains("| \(variant) |"), "no row for \(variant):\n\(result.stdout)")
        #expect(FileManager.default.fileExists(atPath: root + "/runs/\(variant)/seed-2/metrics.jsonl"))
    }
    #expect(result.stdout.contains("held-out accuracy after 2 steps"))
    #expect(result.stdout.contains("2 seeds per variant"))
    let table = try String(contentsOfFile: root + "/runs/compare.md", encoding: .utf8)
    #expect(table.contains("| ppo |"))
    // PPO's row has a critic, GRPO's a reference; LoRA's has neither (its reference is the base).
    let ppoRow = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("| ppo | ") })
    #expect(ppoRow.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[8] != "-")
    let bad = try runGRPO(["compare", "--variants", "grpo,dpo", "--runs-dir", root + "/runs"])
    #expect(bad.status != 0 && bad.stderr.contains("'dpo' is not a variant"), "\(bad.stderr)")
}
