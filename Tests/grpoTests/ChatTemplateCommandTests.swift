import Foundation
import Testing

/// A model folder holding the fixtures' Qwen-style template, and the messages file and rendering
/// transformers made of `conversation` with the generation prompt and no tools.
private func qwenTemplateCase(_ conversation: String) throws -> (
    folder: String, messages: String, rendering: [String: Any]
) {
    let fixtures = URL(fileURLWithPath: tokenizerFixtureFile("qwen")).deletingLastPathComponent()
        .appendingPathComponent("templates")
    let folder = NSTemporaryDirectory() + "grpo-chat-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
        atPath: fixtures.appendingPathComponent("qwen.jinja").path, toPath: folder + "/chat_template.jinja")
    try #"{"bos_token": "<s>", "eos_token": "</s>"}"#.write(
        toFile: folder + "/tokenizer_config.json", atomically: true, encoding: .utf8)
    let cases =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: fixtures.appendingPathComponent("expected.json"))) as! [[String: Any]]
    let wanted = cases.first {
        $0["template"] as? String == "qwen" && $0["conversation"] as? String == conversation
            && $0["add_generation_prompt"] as? Bool == true && $0["tools"] is NSNull
    }!
    let messagesPath = folder + "/messages.json"
    try JSONSerialization.data(withJSONObject: wanted["messages"]!).write(
        to: URL(fileURLWithPath: messagesPath))
    return (folder, messagesPath, wanted)
}

@Test func chatTemplateRendersLikeTransformers() throws {
    // The fixture's Qwen-style template and "system" conversation, as transformers rendered them.
    let (folder, messagesPath, wanted) = try qwenTemplateCase("system")
    // enable_thinking was passed to the fixture render; the command leaves it undefined, which the
    // template treats the same way as true.
    let result = try runGRPO([
        "chat-template", "--model", folder, "--messages", messagesPath, "--add-generation-prompt",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout == wanted["expected"] as! String)
}

@Test func chatTemplateErrorsNameTheFile() throws {
    let folder = NSTemporaryDirectory() + "grpo-chat-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try #"{"chat_template": "{% for m in messages %}{{ m.role | nosuch }}{% endfor %}"}"#.write(
        toFile: folder + "/tokenizer_config.json", atomically: true, encoding: .utf8)
    let messagesPath = folder + "/messages.json"
    try #"[{"role": "user", "content": "x"}]"#.write(toFile: messagesPath, atomically: true, encoding: .utf8)
    let result = try runGRPO(["chat-template", "--model", folder, "--messages", messagesPath])
    #expect(result.status != 0)
    #expect(result.stderr.contains("tokenizer_config.json: template line 1, column 35"), "\(result.stderr)")
    #expect(result.stderr.contains("unknown filter 'nosuch'"))
    let none = try runGRPO(["chat-template", "--model", NSTemporaryDirectory(), "--messages", messagesPath])
    #expect(none.status != 0 && none.stderr.contains("chat_template"), "\(none.stderr)")
}

/// `--template-kwargs` passes variables as apply_chat_template's **kwargs: the fixture's "single"
/// conversation was rendered by transformers with enable_thinking=False, which the template shows.
@Test func templateKwargsReachTheTemplate() throws {
    let (folder, messagesPath, wanted) = try qwenTemplateCase("single")
    #expect((wanted["kwargs"] as? [String: Any])?["enable_thinking"] as? Bool == false)
    let arguments = [
        "chat-template", "--model", folder, "--messages", messagesPath, "--add-generation-prompt",
    ]
    let result = try runGRPO(arguments + ["--template-kwargs", #"{"enable_thinking": false}"#])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout == wanted["expected"] as! String)
    let plain = try runGRPO(arguments)
    #expect(plain.stdout != result.stdout)
    let bad = try runGRPO(arguments + ["--template-kwargs", "[1]"])
    #expect(bad.status != 0)
    #expect(
        bad.stderr.contains("--chat-template-kwargs: at (value): expected a JSON object"), "\(bad.stderr)")
}
