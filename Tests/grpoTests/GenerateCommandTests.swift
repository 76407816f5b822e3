import Foundation
import Testing

@Test func generateWritesCompletionsPerPrompt() throws {
    let model = try modelWithTokenizer()
    let input = temporaryFile(
        "{\"prompt\": \"ab\"}\n{\"tokens\": [1, 2, 3]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
    )
    let result = try runGRPO([
        "generate", "--model", model, "--input", input, "--num-generations", "2", "--max-new-tokens", "6",
        "--seed", "3",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n")
    #expect(lines.count == 3)
    for line in lines {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let completions = object["completions"] as! [[String: Any]]
        #expect(completions.count == 2)
        for completion in completions {
            let tokens = completion["tokens"] as! [Int]
            #expect(tokens.count == (completion["logprobs"] as! [Double]).count)
            // The fixture config's eos_token_id (2) ends a completion early with "stop".
            let reason = completion["finish_reason"] as? String
            #expect(
                reason == "length" ? tokens.count == 6 : reason == "stop" && tokens.last == 2, "\(completion)"
            )
            #expect(completion["text"] is String)
        }
    }
    let again = try runGRPO([
        "generate", "--model", model, "--input", input, "--num-generations", "2", "--max-new-tokens", "6",
        "--seed", "3",
    ])
    #expect(again.stdout == result.stdout)  // reproducible under its seed
}

@Test func singlePromptStreamsTheGreedyText() throws {
    let model = try modelWithTokenizer()
    let streamed = try runGRPO([
        "generate", "--model", model, "--prompt", "ab", "--temperature", "0", "--max-new-tokens", "8",
    ])
    #expect(streamed.status == 0, "\(streamed.stderr)")
    let batch = try runGRPO([
        "generate", "--model", model, "--input", temporaryFile("{\"prompt\": \"ab\"}\n"), "--temperature",
        "0",
        "--max-new-tokens", "8",
    ])
    let object = try JSONSerialization.jsonObject(with: Data(batch.stdout.utf8)) as! [String: Any]
    let text = (object["completions"] as! [[String: Any]])[0]["text"] as! String
    #expect(streamed.stdout == text + "\n")
}

@Test(arguments: [
    (["--temperature=-1"], "temperature must be 0 (greedy) or positive"),
    (["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["--max-new-tokens", "500"], "exceeds the model's context of 256"),
])
func generateRejectsBadSettingsBeforeWork(arguments: [String], message: String) throws {
    let model = try modelWithTokenizer()
    let result = try runGRPO(["generate", "--model", model, "--prompt", "ab"] + arguments)
    #expect(result.status != 0)
    #expect(result.stderr.contains(message), "\(result.stderr)")
}
