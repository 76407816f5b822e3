import Foundation
import Testing

/// A model folder: the llama-gqa fixture (vocabulary 96) with a small character-level BPE tokenizer
/// and a chat template.
func modelWithTokenizer() throws -> String {
    let folder = NSTemporaryDirectory() + "grpo-score-text-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    for name in try FileManager.default.contentsOfDirectory(atPath: fixture("llama-gqa"))
    where !name.hasPrefix("expected") {
        try FileManager.default.copyItem(
            atPath: fixture("llama-gqa") + "/" + name, toPath: folder + "/" + name)
    }
    let letters = "abcdefghijklmnopqrstuvwxyz ?:<>|".map(String.init)
    var vocab = Dictionary(uniqueKeysWithValues: letters.enumerated().map { ($1, $0) })
    vocab["ab"] = letters.count
    vocab["<s>"] = letters.count + 1
    let vocabJSON = vocab.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
    let bos = letters.count + 1
    let tokenizer = """
        {"added_tokens": [{"id": \(bos), "content": "<s>", "special": true}],
         "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                            "special_tokens": {"<s>": {"id": "<s>", "ids": [\(bos)], "tokens": ["<s>"]}}},
         "model": {"type": "BPE", "vocab": {\(vocabJSON)}, "merges": ["a b"]}}
        """
    try tokenizer.write(toFile: folder + "/tokenizer.json", atomically: true, encoding: .utf8)
    let config =
        #"{"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"}"#
    try config.write(toFile: folder + "/tokenizer_config.json", atomically: true, encoding: .utf8)
    return folder
}

private func logprobs(_ stdout: String) -> [[Double]] {
    stdout.split(separator: "\n").map {
        (try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["logprobs"] as! [Double]
    }
}

@Test func textAndCompletionScoresAgreeWithTokenScores() throws {
    let model = try modelWithTokenizer()
    let tokenize = try runGRPO([
        "tokenize", "--model", model, "--input",
        temporaryFile("{\"text\": \"hi ab\"}\n{\"text\": \"what is ab\"}\n"),
    ])
    #expect(tokenize.status == 0, "\(tokenize.stderr)")
    let ids = tokenize.stdout.split(separator: "\n").map {
        String($0).replacingOccurrences(of: "ids", with: "tokens")
    }
    let byTokens = try runGRPO([
        "score", "--model", model, "--input", temporaryFile(ids.joined(separator: "\n")),
    ])
    let byText = try runGRPO([
        "score", "--model", model, "--input",
        temporaryFile("{\"text\": \"hi ab\"}\n{\"text\": \"what is ab\"}\n"),
    ])
    #expect(byText.status == 0, "\(byText.stderr)")
    #expect(logprobs(byText.stdout) == logprobs(byTokens.stdout))
    // A completion scores only its own tokens: the tail of the whole text's scores ("what is" + " ab").
    let split = try runGRPO([
        "score", "--model", model, "--input",
        temporaryFile("{\"prompt\": \"what is\", \"completion\": \" ab\"}\n"),
    ])
    #expect(split.status == 0, "\(split.stderr)")
    let whole = logprobs(byText.stdout)[1]
    // " " and "ab"; scoring one sequence instead of two may take another sgemm kernel, so allow rounding.
    let tail = logprobs(split.stdout)[0]
    #expect(tail.count == 2)
    #expect(zip(tail, whole.suffix(2)).allSatisfy { abs($0 - $1) < 1e-5 }, "\(tail) vs \(whole.suffix(2))")
}

@Test func chatScoringRendersThePromptWithTheTemplate() throws {
    let model = try modelWithTokenizer()
    // <s><user>hi<assistant> then the completion "ab": the same as scoring that text's last token.
    let chat = try runGRPO([
        "score", "--model", model, "--chat", "--input",
        temporaryFile("{\"prompt\": \"hi\", \"completion\": \"ab\"}\n"),
    ])
    #expect(chat.status == 0, "\(chat.stderr)")
    let plain = try runGRPO([
        "score", "--model", model, "--input", temporaryFile("{\"text\": \"<user>hi<assistant>ab\"}\n"),
    ])
    #expect(logprobs(chat.stdout)[0] == Array(logprobs(plain.stdout)[0].suffix(1)))
    let messages = try runGRPO([
        "score", "--model", model, "--chat", "--input",
        temporaryFile(
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"completion\": \"ab\"}\n"),
    ])
    #expect(logprobs(messages.stdout) == logprobs(chat.stdout))
}
