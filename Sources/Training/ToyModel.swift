import Foundation
import Models
import SafeTensors

/// Writes small, complete Hugging Face model folders: a byte-level BPE tokenizer (every byte a token,
/// plus chat and R1 tags as added tokens), a ChatML chat template, and a randomly initialised model.
///
/// Used by `grpo demo` and by tests that need a model and tokenizer without a download. The folders
/// load in transformers as they do here.
///
///     try ToyModel.write(to: "toy", layers: 2, hiddenSize: 64, seed: 1)
public enum ToyModel {
    /// Added tokens after the 256 byte tokens, with whether each is special.
    public static let addedTokens: [(String, Bool)] = [
        ("<|endoftext|>", true), ("<|im_start|>", true), ("<|im_end|>", true), ("<think>", false),
        ("</think>", false), ("<answer>", false), ("</answer>", false),
    ]

    public static let chatTemplate =
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"

    /// The vocabulary size: 256 bytes plus the added tokens.
    public static var vocabSize: Int { 256 + addedTokens.count }

    /// Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
    /// generation_config.json for a Qwen2-shaped model into `folder`.
    public static func write(
        to folder: String, layers: Int = 2, hiddenSize: Int = 64, heads: Int = 4, keyValueHeads: Int = 2,
        intermediateSize: Int? = nil, maxPositionEmbeddings: Int = 1024, seed: UInt64 = 0
    ) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let config = ModelConfig(
            architecture: .qwen2, vocabSize: vocabSize, hiddenSize: hiddenSize,
            intermediateSize: intermediateSize ?? 2 * hiddenSize, numHiddenLayers: layers,
            numAttentionHeads: heads, numKeyValueHeads: keyValueHeads, ropeTheta: 10_000,
            tieWordEmbeddings: true, maxPositionEmbeddings: maxPositionEmbeddings)
        try write(to: folder, config: config, seed: seed)
    }

    /// Writes a model of any shape with this tokenizer (`config.vocabSize` at least `vocabSize`; ids
    /// past the tokenizer's decode to nothing, as in transformers).
    public static func write(to folder: String, config: ModelConfig, seed: UInt64) throws {
        precondition(config.vocabSize >= vocabSize, "the model's vocabulary must hold the tokenizer's")
        var config = config
        config.eosTokenIDs = [256, 258]
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try ModelLoader.save(ModelLoader.randomModel(config: config, seed: seed), to: folder)
        try writeTokenizer(to: folder)
    }

    /// Writes the tokenizer files alone (tokenizer.json, tokenizer_config.json, generation_config.json).
    public static func writeTokenizer(to folder: String) throws {
        let table = byteToUnicode()
        var vocab: [String: Int] = [:]
        for byte in 0..<256 { vocab[String(table[byte])] = byte }
        let added = addedTokens.enumerated().map { index, token in
            [
                "id": 256 + index, "content": token.0, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": token.1,
            ] as [String: Any]
        }
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": [
                "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false,
            ],
            "post_processor": NSNull(),
            "decoder": [
                "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false,
            ],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(),
                "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": [String](),
            ] as [String: Any],
        ]
        let tokenizerConfig: [String: Any] = [
            "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "bos_token": NSNull(),
            "add_bos_token": false, "chat_template": chatTemplate, "model_max_length": 1024,
            "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
        ]
        let generation: [String: Any] = ["eos_token_id": [256, 258], "pad_token_id": 256]
        for (name, object) in [
            ("tokenizer.json", tokenizer), ("tokenizer_config.json", tokenizerConfig),
            ("generation_config.json", generation),
        ] {
            let data = try JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try atomicWrite(data, to: folder + "/" + name)
        }
    }

    /// GPT-2's reversible byte to printable-character table.
    static func byteToUnicode() -> [Character] {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table = [Character](repeating: " ", count: 256)
        var next = 256
        for byte in 0..<256 {
            if printable.contains(byte) {
                table[byte] = Character(Unicode.Scalar(UInt32(byte))!)
            } else {
                table[byte] = Character(Unicode.Scalar(UInt32(next))!)
                next += 1
            }
        }
        return table
    }
}
