import Foundation
import Testing

func tokenizerFixtureFile(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TokenizersTests/Fixtures/\(name).json").path
}

@Test func tokenizeEncodesAndDecodesRoundTrip() throws {
    let input = temporaryFile("{\"text\": \"Hello world\"}\n{\"text\": \"<|eot_id|>日本 😀\"}\n")
    let withBOS = try runGRPO(["tokenize", "--model", tokenizerFixtureFile("llama3"), "--input", input])
    #expect(withBOS.status == 0, "\(withBOS.stderr)")
    #expect(withBOS.stdout.hasPrefix("{\"ids\": [0, "))  // <|begin_of_text|> from the post-processor
    let plain = try runGRPO([
        "tokenize", "--model", tokenizerFixtureFile("llama3"), "--input", input, "--no-special-tokens",
    ])
    #expect(plain.status == 0)
    let decoded = try runGRPO([
        "tokenize", "--model", tokenizerFixtureFile("llama3"), "--input", temporaryFile(plain.stdout),
        "--decode",
    ])
    #expect(decoded.stdout == "{\"text\": \"Hello world\"}\n{\"text\": \"<|eot_id|>日本 😀\"}\n")
    let skipped = try runGRPO([
        "tokenize", "--model", tokenizerFixtureFile("llama3"), "--input", temporaryFile(plain.stdout),
        "--decode", "--skip-special-tokens",
    ])
    #expect(skipped.stdout.hasSuffix("{\"text\": \"日本 😀\"}\n"))
}

@Test func tokenizeReportsInvalidUTF8WithItsLine() throws {
    let path = NSTemporaryDirectory() + "grpo-utf8-\(UUID().uuidString).jsonl"
    var bytes = Data("{\"text\": \"fine\"}\n{\"text\": \"bad ".utf8)
    bytes.append(contentsOf: [0xFF, 0xFE])
    bytes.append(contentsOf: Data("\"}\n".utf8))
    try bytes.write(to: URL(fileURLWithPath: path))
    let result = try runGRPO(["tokenize", "--model", tokenizerFixtureFile("gpt2"), "--input", path])
    #expect(result.status != 0)
    #expect(result.stderr.contains("\(path):2: invalid UTF-8"), "\(result.stderr)")
}

@Test func tokenizeRejectsUnknownIdsWhenDecoding() throws {
    let input = temporaryFile("{\"ids\": [1, 99999]}\n")
    let result = try runGRPO([
        "tokenize", "--model", tokenizerFixtureFile("gpt2"), "--input", input, "--decode",
    ])
    #expect(result.status != 0)
    #expect(result.stderr.contains(":1: 99999 is not a token id of this tokenizer"), "\(result.stderr)")
}

/// Lines starting with a raw U+FEFF and text whose tokens are canonically equivalent to others
/// tokenize as Hugging Face `tokenizers` does (ids from the unicode-exact fixture), and each id of
/// an equivalent pair decodes to its own spelling.
@Test func tokenizeKeepsEveryScalarOfItsInput() throws {
    let input = temporaryFile(
        "{\"text\": \"\u{FEFF}start with a byte order mark\"}\n{\"text\": \"\u{03AC} \u{1F71} \u{03AC}\u{1F71}\"}\n"
    )
    let result = try runGRPO(["tokenize", "--model", tokenizerFixtureFile("unicode-exact"), "--input", input])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
        result.stdout == """
            {"ids": [1, 321, 341, 260, 342, 259, 282, 268, 279, 267, 259, 260, 259, 261, 284, 279, 264, 259, 274, 277, 263, 264, 277, 259, 272, 344, 270]}
            {"ids": [1, 323, 324, 323, 308]}

            """)
    let decoded = try runGRPO([
        "tokenize", "--model", tokenizerFixtureFile("unicode-exact"), "--input",
        temporaryFile("{\"ids\": [323]}\n{\"ids\": [324]}\n"), "--decode",
    ])
    #expect(decoded.status == 0, "\(decoded.stderr)")
    #expect(
        decoded.stdout.unicodeScalars.map(\.value)
            == "{\"text\": \"\u{03AC}\"}\n{\"text\": \"\u{1F71}\"}\n".unicodeScalars.map(\.value))
}
