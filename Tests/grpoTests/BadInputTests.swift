import Foundation
import Testing
import Training

/// Hostile and careless input across the commands: each case breaks one thing in a toy model folder
/// or passes one bad option, and must end in an error that names the cause (an exit status, never a
/// signal), before any output is written.
struct BadInputCase: Sendable, CustomStringConvertible {
    var name: String
    /// config.json keys to overwrite, as JSON text ("1e12", "2e62", ...).
    var config: [String: String] = [:]
    /// Puts a NaN into the first float of this tensor.
    var nanTensor: String?
    /// The command after `grpo`; MODEL, INPUT and OUT stand for the folder, a JSONL file and a
    /// fresh output path.
    var arguments: [String]
    /// Lines of INPUT.
    var input: [String] = [#"{"prompt": "1+2="}"#]
    /// A chat_template.jinja for the model folder (templates arrive with downloaded models).
    var chatTemplate: String?
    var expected: String

    var description: String { name }
}

let badInputCases: [BadInputCase] = [
    BadInputCase(
        name: "vocabulary of 1e12", config: ["vocab_size": "1e12"], arguments: ["info", "--model", "MODEL"],
        expected: "field 'vocab_size' should be at most 16777216"),
    BadInputCase(
        name: "vocabulary of 2e62", config: ["vocab_size": "2e62"],
        arguments: ["score", "--model", "MODEL", "--input", "INPUT"],
        expected: "field 'vocab_size' should be a number that fits"),
    BadInputCase(
        name: "a fractional hidden size", config: ["hidden_size": "32.5"],
        arguments: ["info", "--model", "MODEL"],
        expected: "field 'hidden_size' should be a whole number, got 32.5"),
    BadInputCase(
        name: "a billion layers", config: ["num_hidden_layers": "1000000000"],
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT"],
        expected: "field 'num_hidden_layers' should be at most 1024"),
    BadInputCase(
        name: "intermediate size past any model", config: ["intermediate_size": "100000000"],
        arguments: ["score", "--model", "MODEL", "--input", "INPUT"],
        expected: "field 'intermediate_size' should be at most"),
    BadInputCase(
        name: "config larger than its weights", config: ["vocab_size": "300"],
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT"],
        expected: "tensor 'model.embed_tokens.weight' has shape [263, 32], config.json implies [300, 32]"),
    BadInputCase(
        name: "negative head count", config: ["num_attention_heads": "-2"],
        arguments: ["info", "--model", "MODEL"], expected: "field 'num_attention_heads' should be a positive"),
    BadInputCase(
        name: "a negative RoPE base", config: ["rope_theta": "-1"], arguments: ["info", "--model", "MODEL"],
        expected: "field 'rope_theta' should be a positive number, got -1.0"),
    BadInputCase(
        name: "no context", config: ["max_position_embeddings": "0"],
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT"],
        expected: "field 'max_position_embeddings' should be a positive integer, got 0"),
    BadInputCase(
        name: "llama3 RoPE with equal frequency factors",
        config: [
            "rope_theta":
                #"10000, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 1, "original_max_position_embeddings": 64}"#
        ],
        arguments: ["info", "--model", "MODEL"], expected: "0 < low_freq_factor < high_freq_factor"),
    BadInputCase(
        name: "a BOS id past any integer", config: ["tie_word_embeddings": #"true, "bos_token_id": [1e30]"#],
        arguments: ["info", "--model", "MODEL"], expected: "field 'bos_token_id' should be a number that fits"
    ),
    BadInputCase(
        name: "a fractional BOS id", config: ["tie_word_embeddings": #"true, "bos_token_id": 1.5"#],
        arguments: ["info", "--model", "MODEL"],
        expected: "field 'bos_token_id' should be a token id (an integer) or a list of them"),
    BadInputCase(
        name: "NaN weights, sampling with top-p", nanTensor: "model.norm.weight",
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT", "--top-p", "0.9"],
        expected: "tensor 'model.norm.weight' holds 1 NaN or infinite values"),
    BadInputCase(
        name: "NaN weights, training", nanTensor: "model.embed_tokens.weight",
        arguments: [
            "train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT", "--rewards", "format",
        ],
        expected: "tensor 'model.embed_tokens.weight' holds 1 NaN or infinite values"),
    BadInputCase(
        name: "token id outside the vocabulary",
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT"],
        input: [#"{"prompt": "1+2="}"#, #"{"tokens": [1, 999999]}"#],
        expected: "INPUT:2: the prompt has token id 999999, outside the vocabulary 0..<263"),
    BadInputCase(
        name: "empty token list", arguments: ["generate", "--model", "MODEL", "--input", "INPUT"],
        input: [#"{"tokens": []}"#], expected: "INPUT:1: the prompt is empty"),
    BadInputCase(
        name: "a line nested thousands of levels deep",
        arguments: ["train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT"],
        input: [
            #"{"prompt": "1+2=", "answer": "3"}"#, "{\"prompt\": " + String(repeating: "[", count: 5000),
        ],
        expected: "INPUT:2: column 523: nested more than 512 levels deep"),
    BadInputCase(
        name: "an answer of null",
        arguments: ["train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT"],
        input: [#"{"prompt": "1+2=", "answer": null}"#],
        expected: "INPUT:1: reward 'accuracy' needs the field \"answer\", got null"),
    BadInputCase(
        name: "an answer that is an object",
        arguments: ["train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT"],
        input: [#"{"prompt": "1+2=", "answer": "3"}"#, #"{"prompt": "1+2=", "answer": {"value": 3}}"#],
        expected:
            #"INPUT:2: reward 'accuracy': field "answer" must be text, a number, or a non-empty list of them (any one is right), got {"value": 3}"#
    ),
    BadInputCase(
        name: "countdown numbers that are text",
        arguments: [
            "train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT", "--rewards",
            "countdown",
        ],
        input: [#"{"prompt": "1+2=", "target": 3, "nums": "1 2"}"#],
        expected: #"INPUT:1: reward 'countdown': field "nums" must be a non-empty list of numbers, got "1 2""#
    ),
    BadInputCase(
        name: "a NUL character in a prompt",
        arguments: ["train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT"],
        input: [#"{"prompt": "1+2=", "answer": "3"}"#, #"{"prompt": "1\u0000+2=", "answer": "3"}"#],
        expected: "INPUT:2: the prompt holds a NUL character"),
    BadInputCase(
        name: "a chat template with a huge range",
        arguments: ["chat-template", "--model", "MODEL", "--messages", "INPUT"],
        input: [#"[{"role": "user", "content": "hi"}]"#],
        chatTemplate: "{% for i in range(10**12) %}{{ i }}{% endfor %}",
        expected:
            "model/chat_template.jinja: template line 1, column 19: range too big: the sandbox allows at most 100000 items"
    ),
    BadInputCase(
        name: "a chat template that recurses",
        arguments: [
            "train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT", "--rewards", "format",
        ],
        input: [#"{"messages": [{"role": "user", "content": "hi"}]}"#],
        chatTemplate: "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        expected:
            "INPUT:1: chat template: MODEL/chat_template.jinja: template line 1, column 21: blocks and macro calls nested more than 200"
    ),
    BadInputCase(
        name: "template kwargs that are not an object",
        arguments: ["chat-template", "--model", "MODEL", "--messages", "INPUT", "--template-kwargs", "true"],
        input: [#"[{"role": "user", "content": "hi"}]"#],
        expected: "--chat-template-kwargs: at (value): expected a JSON object of template variables, got true"
    ),
    BadInputCase(
        name: "a dataset line's template kwargs that are not an object",
        arguments: ["sft", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT"],
        input: [#"{"prompt": "1+2=", "completion": "3", "chat_template_kwargs": [1]}"#],
        expected: "INPUT:1: \"chat_template_kwargs\" must be an object of template variables, got [1]"),
    BadInputCase(
        name: "tokenize a line that is not JSON",
        arguments: ["tokenize", "--model", "MODEL", "--input", "INPUT"],
        input: [#"{"text": "fine"}"#, "nope"],
        expected: "INPUT:2: column 1: not JSON here"),
    BadInputCase(
        name: "eval with an unknown reward",
        arguments: ["eval", "--model", "MODEL", "--dataset", "INPUT", "--reward", "acuracy"],
        expected: "unknown reward 'acuracy'"),
    BadInputCase(
        name: "sample keeping an unknown rule",
        arguments: ["sample", "--model", "MODEL", "--dataset", "INPUT", "--keep", "most", "--output", "OUT"],
        expected: "--keep: expected best or all, got 'most'"),
    BadInputCase(
        name: "convert into a folder that cannot be made",
        arguments: ["convert", "--model", "MODEL", "--output", "/proc/grpo-cannot-write"],
        expected: "/proc/grpo-cannot-write"),
    BadInputCase(
        name: "train into an output_dir that cannot be made",
        arguments: [
            "train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "/proc/grpo-out", "--rewards",
            "format",
        ],
        expected: "cannot use /proc/grpo-out: "),
    BadInputCase(
        name: "generate output into a missing folder",
        arguments: [
            "generate", "--model", "MODEL", "--input", "INPUT", "--output", "/nonexistent/dir/out.jsonl",
        ],
        expected: "/nonexistent/dir/out.jsonl"),
    BadInputCase(
        name: "a negative temperature, given as the next word",
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT", "--temperature", "-1"],
        expected: "temperature must be 0 (greedy) or positive, got -1.0"),
    BadInputCase(
        name: "no KV-cache budget",
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT", "--max-cache-mib", "0"],
        expected: "--max-cache-mib must be between 1 and"),
    BadInputCase(
        name: "sample with a threshold of NaN",
        arguments: [
            "sample", "--model", "MODEL", "--dataset", "INPUT", "--threshold", "nan", "--output", "OUT",
        ],
        expected: "--threshold must be a finite number, got nan"),
    BadInputCase(
        name: "SFT on prompts alone",
        arguments: ["sft", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", "OUT"],
        input: [#"{"messages": [{"role": "user", "content": "1+2="}], "answer": "3"}"#],
        expected: "INPUT:1: nothing to learn: no assistant turn and no completion text"),
    BadInputCase(
        name: "an empty output_dir",
        arguments: ["train", "--model", "MODEL", "--dataset", "INPUT", "--output_dir", ""],
        expected: "output_dir: must not be empty"),
    BadInputCase(
        name: "a YAML config of aliases of aliases (billion laughs)",
        arguments: ["train", "--config", "INPUT"],
        input: [#"a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]"#]
            + (1...8).map { k in
                let (name, previous) = (String(UnicodeScalar(97 + k)!), String(UnicodeScalar(96 + k)!))
                return "\(name): &\(name) ["
                    + Array(repeating: "*\(previous)", count: 10).joined(separator: ", ") + "]"
            } + ["model: MODEL"],
        expected: "INPUT: the YAML expands to more than 100000 values"),
    BadInputCase(
        name: "a YAML config nested thousands deep", arguments: ["train", "--config", "INPUT"],
        input: ["model: " + String(repeating: "[", count: 5000)], expected: "INPUT: invalid YAML"),
    BadInputCase(
        name: "an external reward that waits forever", arguments: ["train", "--config", "INPUT"],
        input: [
            "model: MODEL", "dataset: MODEL/missing.jsonl", "rewards:",
            "  - {name: external, command: [cat], timeout: 1e308}",
        ],
        expected: "option 'timeout' must be a positive number of seconds, at most 86400"),
    BadInputCase(
        name: "demo with a negative KL weight", arguments: ["demo", "--beta", "-1", "--output-dir", "OUT"],
        expected: "--beta must be 0 or positive, got -1.0"),
    BadInputCase(
        name: "demo with NaN epochs", arguments: ["demo", "--sft-epochs", "nan", "--output-dir", "OUT"],
        expected: "--sft-epochs must be a positive number, got nan"),
    BadInputCase(
        name: "an adapter folder that is not one",
        arguments: ["generate", "--model", "MODEL", "--input", "INPUT", "--adapter", "MODEL"],
        expected: "MODEL/adapter_config.json: no such file"),
    BadInputCase(
        name: "LoRA dropout of 1.5",
        arguments: ["train", "--model", "MODEL", "--dataset", "INPUT", "--lora_dropout", "1.5"],
        expected: "lora_dropout: must be a probability in [0, 1)"),
    BadInputCase(
        name: "demo with no width", arguments: ["demo", "--hidden-size", "0", "--output-dir", "OUT"],
        expected: "--hidden-size must be a multiple of 8"),
    BadInputCase(
        name: "demo with no layers", arguments: ["demo", "--layers", "0", "--output-dir", "OUT"],
        expected: "--layers must be between 1 and 64"),
    BadInputCase(
        name: "demo seeds backwards", arguments: ["demo", "--seeds", "5-1", "--output-dir", "OUT"],
        expected: "--seeds: expected seeds and ranges"),
    BadInputCase(
        name: "demo with a seed and seeds",
        arguments: ["demo", "--seed", "2", "--seeds", "1-2", "--output-dir", "OUT"],
        expected: "give --seed or --seeds, not both"),
]

@Test(arguments: badInputCases)
func badInputIsAClearErrorNeverACrash(_ bad: BadInputCase) throws {
    let root = NSTemporaryDirectory() + "grpo-bad-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let model = root + "/model"
    try ToyModel.write(to: model, layers: 1, hiddenSize: 32, heads: 2, keyValueHeads: 1, seed: 3)
    if !bad.config.isEmpty {
        var text = try String(contentsOfFile: model + "/config.json", encoding: .utf8)
        for (key, value) in bad.config {
            // Replace the key's value in place: the written config is one key per line.
            let pattern = try NSRegularExpression(pattern: "\"\(key)\" *: *[^,\n}]+")
            let range = NSRange(text.startIndex..., in: text)
            text = pattern.stringByReplacingMatches(
                in: text, range: range, withTemplate: "\"\(key)\": \(value)")
            #expect(text.contains("\"\(key)\": \(value)"), "config.json has no \(key)")
        }
        try text.write(toFile: model + "/config.json", atomically: true, encoding: .utf8)
    }
    if let tensor = bad.nanTensor { try poison(tensor, in: model + "/model.safetensors") }
    if let template = bad.chatTemplate {
        try template.write(toFile: model + "/chat_template.jinja", atomically: true, encoding: .utf8)
    }
    let input = root + "/input.jsonl"
    try (bad.input.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
    let out = root + "/out"
    let arguments = bad.arguments.map { ["MODEL": model, "INPUT": input, "OUT": out][$0] ?? $0 }
    if bad.input.contains(where: { $0.contains("MODEL") }) {  // a YAML config naming the model folder
        let text = try String(contentsOfFile: input, encoding: .utf8)
        try text.replacingOccurrences(of: "MODEL", with: model).write(
            toFile: input, atomically: true, encoding: .utf8)
    }
    let result = try runGRPO(arguments)
    #expect(result.status != 0 && result.status < 128, "\(bad.name): status \(result.status)")
    let expected = bad.expected.replacingOccurrences(of: "INPUT", with: input).replacingOccurrences(
        of: "MODEL", with: model)
    #expect(result.stderr.contains(expected), "\(bad.name): \(result.stderr)")
    #expect(!result.stderr.contains("Domain="), "\(bad.name): an NSError dump: \(result.stderr)")
    #expect(result.stdout.isEmpty, "\(bad.name) printed: \(result.stdout)")
    #expect(!FileManager.default.fileExists(atPath: out), "\(bad.name) left \(out) behind")
}

/// Writes a NaN over the first value of `tensor` in a float32 safetensors file.
private func poison(_ tensor: String, in path: String) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let header = try #require(
        JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
    let entry = try #require(header[tensor] as? [String: Any], "no tensor \(tensor)")
    let offsets = try #require(entry["data_offsets"] as? [Int])
    let start = 8 + headerLength + offsets[0]
    withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) {
        data.replaceSubrange(start..<(start + 4), with: $0)
    }
    try data.write(to: URL(fileURLWithPath: path))
}
