import Foundation
import Testing
import Tokenizers

@testable import Training

/// TRL's `chat_template_kwargs`: a run's config sets template variables for every prompt, and a
/// dataset line's own `chat_template_kwargs` object overrides them for that line.
@Test func templateKwargsFromTheConfigAndTheLine() throws {
    let root = NSTemporaryDirectory() + "grpo-kwargs-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    try ToyModel.write(to: root, layers: 1, hiddenSize: 32, heads: 2, keyValueHeads: 1, seed: 1)
    let tokenizer = try Tokenizer(path: root)
    var config = TokenizerConfig(chatTemplates: [
        "default":
            "{{ messages[0].content }}{% if enable_thinking is defined %}|{{ enable_thinking }}{% endif %}"
    ])
    let values = ConfigValues()
    values.merge(
        [
            "model": root, "dataset": root + "/d.jsonl",
            "chat_template_kwargs": #"{"enable_thinking": false}"#,
        ],
        source: "flags")
    config.templateKwargs = try GRPOConfig(values).chatTemplateKwargs
    let yaml = ConfigValues()
    yaml.merge(
        ["model": root, "dataset": root + "/d.jsonl", "chat_template_kwargs": ["enable_thinking": false]],
        source: "run.yaml")
    #expect(try GRPOConfig(yaml).chatTemplateKwargs["enable_thinking"]?.text == "False")
    let lines = [
        #"{"messages": [{"role": "user", "content": "1+1="}]}"#,
        #"{"messages": [{"role": "user", "content": "1+1="}], "chat_template_kwargs": {"enable_thinking": true}}"#,
    ].enumerated().map { index, text -> (line: Int, object: Object) in
        guard case .object(let object) = try! parseOrderedJSON(text) else { fatalError() }
        return (index + 1, object)
    }
    let examples = try promptExamples(
        lines, path: "d.jsonl", tokenizer: tokenizer, config: config, maxPromptLength: nil)
    #expect(examples.map(\.prompt) == ["1+1=|False", "1+1=|True"])
    #expect(examples[1].fields["chat_template_kwargs"] == nil)

    guard case .object(let bad) = try parseOrderedJSON(#"{"prompt": "x", "chat_template_kwargs": 3}"#) else {
        return
    }
    #expect(throws: DatasetError.self) {
        try promptExamples(
            [(7, bad)], path: "d.jsonl", tokenizer: tokenizer, config: config, maxPromptLength: nil)
    }
    let wrong = ConfigValues()
    wrong.merge(["model": root, "dataset": "d", "chat_template_kwargs": "[1, 2]"], source: "flags")
    #expect(throws: ConfigError.self) { try GRPOConfig(wrong) }
}
