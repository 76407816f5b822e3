import Foundation
import Testing
import Training

func rewardFixture(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("RewardsTests/Fixtures/\(name)").path
}

struct RewardCommandTests {
    /// The fixture's expected score of its first plain case and first chat case.
    func expectedScores(_ name: String) throws -> (plain: Double, chat: Double) {
        let data = try Data(contentsOf: URL(fileURLWithPath: rewardFixture(name) + "/expected.json"))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let plain = (root["cases"] as! [[String: Any]])[0]["score"] as! Double
        let chat = (root["chat_cases"] as! [[String: Any]])[0]["score"] as! Double
        return (plain, chat)
    }

    @Test func scoresEachLineWithTheConfiguredRewards() throws {
        let model = rewardFixture("qwen2-rm")
        let config = temporaryFile(
            """
            model_name_or_path: \(model)
            learning_rate: 1.0e-5
            rewards:
              - accuracy
              - {name: format, pattern: ' The answer.*'}
              - {name: reward_model, model: \(model), metric_name: rm}
            reward_weights: [1.0, 0.5, 2.0]
            """)
        let input = temporaryFile(
            #"""
            {"prompt": "What is 12 + 30?", "completion": " The answer is 42.", "answer": "42"}
            {"prompt": [{"role": "user", "content": "What is 12 + 30?"}], "completion": "The answer is 42.", "answer": 41}
            """#)
        let result = try runGRPO(["reward", "--config", config, "--input", input])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        try #require(lines.count == 2)
        let expected = try expectedScores("qwen2-rm")
        let first = lines[0]["rewards"] as! [String: Double]
        #expect(first["accuracy"] == 1 && first["format"] == 1)
        #expect(abs(first["rm"]! - expected.plain) < 1e-4)
        #expect(abs((lines[0]["reward"] as! Double) - (1 + 0.5 + 2 * first["rm"]!)) < 1e-9)
        // The chat line is scored through the reward model's own chat template.
        let second = lines[1]["rewards"] as! [String: Double]
        #expect(second["accuracy"] == 0 && second["format"] == 0)
        #expect(abs(second["rm"]! - expected.chat) < 1e-4)
    }

    @Test func badLinesAndRewardsAreNamed() throws {
        let input = temporaryFile(
            #"""
            {"prompt": "1+1=", "completion": "2", "answer": "2"}
            {"prompt": "1+2=", "completion": "3"}
            """#)
        var result = try runGRPO(["reward", "--input", input, "--rewards", "accuracy"])
        #expect(result.status != 0)
        #expect(
            result.stderr.contains(input + ":2: reward 'accuracy' needs the field \"answer\""),
            "\(result.stderr)")
        result = try runGRPO(["reward", "--input", input, "--rewards", "acuracy"])
        #expect(result.stderr.contains("did you mean 'accuracy'?"), "\(result.stderr)")
        result = try runGRPO(["reward", "--input", input, "--rewards", "soft_overlong_punishment"])
        #expect(
            result.stderr.contains(input + ":1: a length reward needs \"completion_length\""),
            "\(result.stderr)")
        result = try runGRPO([
            "reward", "--input", input, "--rewards", "[{name: reward_model, model: /nonexistent}]",
        ])
        #expect(result.stderr.contains("/nonexistent: no such folder"), "\(result.stderr)")
        let lengths = temporaryFile(#"{"prompt": "x", "completion": "y", "completion_length": 250}"#)
        result = try runGRPO([
            "reward", "--input", lengths, "--rewards", "soft_overlong_punishment", "--max_completion_length",
            "256",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains(#""soft_overlong_punishment": -0.90625"#), "\(result.stdout)")
    }
}

/// The code reward through the commands: `grpo reward` scores programs, `eval` and `sample` run it
/// on a model's completions, and a line without tests is named before anything runs.
@Test func codeRewardInRewardEvalAndSample() throws {
    let input = temporaryFile(
        #"""
        {"prompt": "add", "completion": "```python\ndef add(a, b):\n    return a + b\n```", "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}
        {"prompt": "add", "completion": "def add(a, b):\n    return a * b", "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}
        {"prompt": "sum", "completion": "print(sum(map(int, input().split())))", "inputs": ["1 2\n", "3 4\n"], "outputs": ["3", "7"]}
        """#)
    let scored = try runGRPO(["reward", "--input", input, "--rewards", "[{name: code, timeout: 5}]"])
    #expect(scored.status == 0, "\(scored.stderr)")
    let rewards = scored.stdout.split(separator: "\n").map {
        (try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["reward"] as! Double
    }
    #expect(rewards == [1, 0.5, 1])

    let bad = temporaryFile(
        #"""
        {"prompt": "add", "completion": "x", "test_list": ["assert True"]}
        {"prompt": "add", "completion": "x", "answer": 3}
        """#)
    let refused = try runGRPO(["reward", "--input", bad, "--rewards", "code"])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains(".jsonl:2:") && refused.stderr.contains("test_list"), "\(refused.stderr)")

    let root = NSTemporaryDirectory() + "grpo-code-cli-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    try ToyModel.write(to: root + "/model", layers: 1, hiddenSize: 32, heads: 2, keyValueHeads: 1, seed: 5)
    let data = root + "/data.jsonl"
    try (1...3).map { #"{"prompt": "print \#($0)", "inputs": [""], "outputs": ["\#($0)"]}"# }
        .joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
    let eval = try runGRPO([
        "eval", "--model", root + "/model", "--dataset", data, "--reward", "{name: code, timeout: 2}",
        "--num-generations", "2", "--max-completion-length", "8",
    ])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.stdout.contains("code") && eval.stdout.contains("pass@2"), "\(eval.stdout)")
    let sample = try runGRPO([
        "sample", "--model", root + "/model", "--dataset", data, "--reward", "code", "--num-generations", "2",
        "--max-completion-length", "8", "--threshold", "-1", "--keep", "all", "--output",
        root + "/kept.jsonl",
    ])
    #expect(sample.status == 0, "\(sample.stderr)")
    let kept = try String(contentsOfFile: root + "/kept.jsonl", encoding: .utf8).split(separator: "\n")
    #expect(!kept.isEmpty && kept.allSatisfy { $0.contains("\"reward\": 0") || $0.contains("\"reward\": 1") })
}
