import Foundation
import Testing

/// DeepSeek-R1's four stages in miniature, through the command line exactly as the README runs
/// them: cold-start SFT, reasoning RL, rejection sampling + SFT, RL again, then evaluation.
@Test func r1PipelineRunsEndToEnd() throws {
    let root = NSTemporaryDirectory() + "grpo-pipeline-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    func run(_ arguments: [String]) throws -> String {
        let result = try runGRPO(arguments)
        #expect(result.status == 0, "grpo \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }
    _ = try run([
        "demo", "--data-only", "--output-dir", root, "--sft-examples", "16", "--held-out", "8", "--layers",
        "1",
        "--hidden-size", "32",
    ])
    let data = root + "/data"
    let manager = FileManager.default
    // Stage 1: cold-start SFT on worked examples.
    _ = try run([
        "sft", "--model", root + "/base-model", "--dataset", data + "/sft.jsonl", "--output_dir",
        root + "/sft1",
        "--max_steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
    ])
    // Stage 2: reasoning RL with accuracy and format rewards.
    let rl = [
        "--dataset", data + "/rl.jsonl", "--num_generations", "4", "--per_step_prompts", "2",
        "--max_completion_length", "12", "--max_steps", "2", "--rewards", "accuracy,format",
        "--reward_weights", "1,0.5", "--learning_rate", "1e-4",
    ]
    _ = try run(["train", "--model", root + "/sft1", "--output_dir", root + "/rl1"] + rl)
    // Stage 3: rejection sampling from the RL model, then SFT on what passed.
    let sampled = try run([
        "sample", "--model", root + "/rl1", "--dataset", data + "/held_out.jsonl", "--reward", "format",
        "--num-generations", "4", "--max-completion-length", "12", "--threshold", "0", "--keep", "all",
        "--output", root + "/rs.jsonl",
    ])
    #expect(sampled.contains("prompts kept     8"))
    let kept = try String(contentsOfFile: root + "/rs.jsonl", encoding: .utf8).split(separator: "\n")
    #expect(kept.count >= 8)
    _ = try run([
        "sft", "--model", root + "/rl1", "--dataset", root + "/rs.jsonl", "--output_dir", root + "/sft2",
        "--max_steps", "2", "--per_device_train_batch_size", "4",
    ])
    // Stage 4: RL again, then evaluation on the held-out problems.
    _ = try run(["train", "--model", root + "/sft2", "--output_dir", root + "/rl2"] + rl)
    let report = try run([
        "eval", "--model", root + "/rl2", "--dataset", data + "/held_out.jsonl", "--reward", "accuracy",
        "--max-completion-length", "12",
    ])
    #expect(report.contains("accuracy "))
    for folder in ["sft1", "rl1", "sft2", "rl2"] {
        #expect(manager.fileExists(atPath: "\(root)/\(folder)/model.safetensors"), "no model in \(folder)")
        #expect(manager.fileExists(atPath: "\(root)/\(folder)/metrics.jsonl"), "no metrics in \(folder)")
    }
}

@Test func sftAndSampleRefuseBadInput() throws {
    let root = NSTemporaryDirectory() + "grpo-sft-cli-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let demo = try runGRPO([
        "demo", "--data-only", "--output-dir", root, "--sft-examples", "4", "--held-out", "2", "--layers",
        "1",
        "--hidden-size", "32",
    ])
    #expect(demo.status == 0, "\(demo.stderr)")
    try "{\"prompt\": \"1+1=\"}\n".write(toFile: root + "/bad.jsonl", atomically: true, encoding: .utf8)
    let sft = try runGRPO(["sft", "--model", root + "/base-model", "--dataset", root + "/bad.jsonl"])
    #expect(sft.status != 0)
    #expect(sft.stderr.contains("bad.jsonl:1: has \"prompt\" without \"completion\""), "\(sft.stderr)")
    let typo = try runGRPO([
        "sft", "--model", root + "/base-model", "--dataset", root + "/bad.jsonl", "--epochs", "2",
    ])
    #expect(typo.stderr.contains("epochs: unknown option"), "\(typo.stderr)")
    let sample = try runGRPO([
        "sample", "--model", root + "/base-model", "--dataset", root + "/data/held_out.jsonl", "--keep",
        "most",
        "--output", root + "/x.jsonl",
    ])
    #expect(sample.status != 0)
    #expect(sample.stderr.contains("--keep: expected best or all"), "\(sample.stderr)")
    let missing = try runGRPO([
        "sample", "--model", root + "/base-model", "--dataset", root + "/data/sft.jsonl", "--output",
        root + "/x.jsonl",
    ])
    #expect(missing.stderr.contains("needs the field \"answer\""), "\(missing.stderr)")
}
