import Foundation
import SafeTensors
import Testing

/// Runs the built `grpo` executable (next to the test bundle) and captures its output and status.
func runGRPO(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    try runProgram(grpoExecutable(), arguments)
}

/// Runs `executable` with `arguments` to its end: its status and output.
func runProgram(_ executable: URL, _ arguments: [String]) throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let (out, err) = (Pipe(), Pipe())
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, stdout, stderr)
}

/// The built `grpo` executable, next to the test bundle.
func grpoExecutable() -> URL {
    let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let executable = products.appendingPathComponent("grpo")
    if FileManager.default.fileExists(atPath: executable.path) { return executable }
    return products.deletingLastPathComponent().appendingPathComponent("grpo")
}

func fixture(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/\(name)").path
}

func temporaryFile(_ contents: String) -> String {
    let path = NSTemporaryDirectory() + "grpo-cli-\(UUID().uuidString).jsonl"
    try! contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Test func infoReportsArchitectureAndCategories() throws {
    let result = try runGRPO(["info", "--model", fixture("qwen3-qknorm")])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("Qwen3ForCausalLM"))
    #expect(result.stdout.contains("parameters          86432"))
    #expect(result.stdout.contains("attention"))
}

@Test func scoreWritesOneLineOfLogprobsPerInput() throws {
    let input = temporaryFile("{\"tokens\": [1, 2, 3, 4]}\n\n{\"tokens\": [7]}\n{\"tokens\": [9, 10]}\n")
    let output = input + ".out"
    let result = try runGRPO([
        "score", "--model", fixture("llama-gqa"), "--input", input, "--output", output, "--batch-tokens", "3",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 3)
    let counts = try lines.map { line -> Int in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let values = object["logprobs"] as! [Double]
        #expect(values.allSatisfy { $0 < 0 })
        return values.count
    }
    #expect(counts == [3, 0, 1])
}

@Test func scoreMatchesTransformersThroughTheCommandLine() throws {
    // Every fixture sequence, scored at temperature 0.7, against transformers' values.
    let inputs =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: fixture("mistral") + "/inputs.json")))
        as! [String: Any]
    let sequences = inputs["sequences"] as! [[Int]]
    let input = temporaryFile(sequences.map { "{\"tokens\": \($0)}" }.joined(separator: "\n"))
    let result = try runGRPO([
        "score", "--model", fixture("mistral"), "--input", input, "--temperature", "0.7",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let scored = result.stdout.split(separator: "\n").map {
        (try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["logprobs"] as! [Double]
    }
    #expect(scored.map(\.count) == sequences.map { $0.count - 1 })
    let expected = try SafeTensorsFile(path: fixture("mistral") + "/expected.safetensors").floats("logp_t07")
    let got = scored.flatMap { $0 }
    #expect(got.count == expected.count)
    let worst = zip(got, expected).map { abs($0 - Double($1)) }.max() ?? .infinity
    #expect(worst <= 1e-4, "max |diff| = \(worst)")
}

@Test(arguments: [
    ("{\"tokens\": [1, 2]}\n{\"tokens\": [1, 500]}\n", ":2: token 500 is not an id in 0..<96"),
    ("{\"tokens\": [1, 2]}\nnot json\n", ":2: column 1: not JSON here"),
    ("{\"text\": \"hi\"}\n", "/tokenizer.json: cannot read"),
    ("{\"words\": \"hi\"}\n", ":1: expected \"tokens\", \"text\", or \"prompt\" and \"completion\""),
    ("{\"tokens\": [1, 2.5]}\n", ":1: token 2.5 is not an id"),
    ("{\"tokens\": []}\n", ":1: nothing to score: no tokens"),
])
func scoreRejectsBadLinesNamingTheLine(contents: String, message: String) throws {
    let input = temporaryFile(contents)
    let result = try runGRPO(["score", "--model", fixture("llama-gqa"), "--input", input])
    #expect(result.status != 0)
    #expect(
        result.stderr.contains(message.hasPrefix(":") ? input + message : message), "stderr: \(result.stderr)"
    )
}

@Test func missingModelFolderIsAClearError() throws {
    let result = try runGRPO(["info", "--model", "/nonexistent/model"])
    #expect(result.status != 0)
    #expect(result.stderr.contains("/nonexistent/model/config.json"))
}

@Test func convertWritesAFolderThatLoadsAgain() throws {
    let out = NSTemporaryDirectory() + "grpo-convert-\(UUID().uuidString)"
    let result = try runGRPO([
        "convert", "--model", fixture("llama-tied"), "--output", out, "--dtype", "bf16",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let info = try runGRPO(["info", "--model", out])
    #expect(info.status == 0 && info.stdout.contains("tied to lm_head"))
    let bad = try runGRPO(["convert", "--model", fixture("llama-tied"), "--output", out, "--dtype", "int4"])
    #expect(bad.status != 0 && bad.stderr.contains("--dtype must be f32, f16 or bf16"))
}

/// Help text prints as written: no runs of spaces left by line continuations in any command's
/// prose, and train's and sft's help list every key with its type and default.
@Test func helpPrintsCleanlyWithEveryKey() throws {
    for command in [
        "score", "train", "sft", "generate", "eval", "sample", "plot", "merge", "demo", "tokenize",
    ] {
        let result = try runGRPO([command, "--help"])
        #expect(result.status == 0, "\(command): \(result.stderr)")
        let prose = result.stdout.components(separatedBy: "USAGE:").first ?? ""
        #expect(
            prose.range(of: #"[^ \n]   +[^ ]"#, options: .regularExpression) == nil,
            "\(command) --help:\n\(prose)")
    }
    let train = try runGRPO(["train", "--help"]).stdout
    for (key, type, value) in [
        ("num_generations", "int", "8"), ("beta", "number", "0"),
        ("loss_type", "grpo|bnpo|dr_grpo|dapo|cispo", "dapo"),
        ("algorithm", "grpo|rloo|reinforce_pp|ppo", "grpo"), ("num_ppo_epochs", "int", "4"),
        ("per_device_train_batch_size", "int", "none"), ("save_total_limit", "int", "none"),
        ("report_to", "list", "none"), ("eval_strategy", "no|steps|epoch", "no"),
    ] {
        #expect(train.contains("  \(key): \(type), default \(value)\n"), "\(key)")
    }
    let sft = try runGRPO(["sft", "--help"]).stdout
    #expect(sft.contains("  learning_rate: number, default 2e-05\n"), "\(sft)")
    #expect(sft.contains("  per_device_train_batch_size: int, default 8\n"))
}
