import Foundation
import Testing
import Tokenizers

private func folder(_ files: [String: String]) -> String {
    let path = NSTemporaryDirectory() + "tokenizer-config-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    for (name, text) in files {
        try! text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
    }
    return path
}

@Test func tokensInStringAndObjectFormAndGenerationEOSList() throws {
    let dir = folder([
        "tokenizer_config.json":
            #"{"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false}, "eos_token": "</s>", "add_bos_token": true, "chat_template": "{{ bos_token }}"}"#,
        "generation_config.json": #"{"eos_token_id": [2, 32000]}"#,
    ])
    let config = try TokenizerConfig.load(folder: dir)
    #expect(config.bosToken == "<s>")
    #expect(config.eosToken == "</s>")
    #expect(config.addBOSToken == true)
    #expect(config.chatTemplate == "{{ bos_token }}")
    #expect(config.generationEOSTokenIDs == [2, 32000])
}

@Test func namedTemplatesAndTheJinjaFileBesideIt() throws {
    let dir = folder([
        "tokenizer_config.json":
            #"{"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}]}"#,
        "generation_config.json": #"{"eos_token_id": 7}"#,
    ])
    var config = try TokenizerConfig.load(folder: dir)
    #expect(config.chatTemplates == ["default": "A", "tool_use": "B"])
    #expect(config.generationEOSTokenIDs == [7])
    try "C".write(toFile: dir + "/chat_template.jinja", atomically: true, encoding: .utf8)
    config = try TokenizerConfig.load(folder: dir)
    #expect(config.chatTemplate == "C")
}

@Test func malformedConfigNamesFileAndField() throws {
    let dir = folder(["tokenizer_config.json": #"{"eos_token": 5}"#])
    #expect(
        throws: TokenizerError.badField(
            path: dir + "/tokenizer_config.json", at: "eos_token.content", expected: "a string")
    ) {
        try TokenizerConfig.load(folder: dir)
    }
}
