import Foundation
import Testing
import Tokenizers

/// Fixtures made by scripts/make_tokenizer_fixtures.py with Hugging Face `tokenizers` 0.23.3.
let tokenizerFamilies = ["gpt2", "llama3", "qwen2", "sentencepiece", "metaspace", "digits-split"]

func tokenizerFixture(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
}

struct ExpectedEncoding: Decodable {
    let ids: [Int32]
    let idsNoSpecial: [Int32]
    let decoded: String
    let decodedSkipSpecial: String
    enum CodingKeys: String, CodingKey {
        case ids
        case idsNoSpecial = "ids_no_special"
        case decoded
        case decodedSkipSpecial = "decoded_skip_special"
    }
}

let corpus: [String] = try! JSONDecoder().decode(
    [String].self, from: Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("corpus.json"))))

/// "text #3 ("Hello…"): first difference at 5: got 12, expected 13".
func describeMismatch(_ got: [Int32], _ expected: [Int32], text: String, index: Int) -> String {
    let at = zip(got, expected).enumerated().first { $1.0 != $1.1 }?.offset ?? min(got.count, expected.count)
    let context = { (ids: [Int32]) in Array(ids[max(0, at - 2)..<min(ids.count, at + 3)]) }
    return "text #\(index) \(String(text.prefix(40)).debugDescription): first difference at id \(at) of "
        + "\(got.count) vs \(expected.count): got …\(context(got)) expected …\(context(expected))"
}

@Test(arguments: tokenizerFamilies)
func encodingMatchesHuggingFaceTokenizers(family: String) throws {
    let tokenizer = try Tokenizer(path: tokenizerFixture("\(family).json"))
    let expected = try JSONDecoder().decode(
        [ExpectedEncoding].self,
        from: Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("\(family).expected.json"))))
    #expect(expected.count == corpus.count)
    for (index, (text, want)) in zip(corpus, expected).enumerated() {
        let ids = tokenizer.encode(text)
        #expect(ids == want.ids, "\(family): \(describeMismatch(ids, want.ids, text: text, index: index))")
        let plain = tokenizer.encode(text, addSpecialTokens: false)
        #expect(
            plain == want.idsNoSpecial,
            "\(family) without special tokens: \(describeMismatch(plain, want.idsNoSpecial, text: text, index: index))"
        )
    }
}

@Test(arguments: tokenizerFamilies)
func decodingMatchesHuggingFaceTokenizers(family: String) throws {
    let tokenizer = try Tokenizer(path: tokenizerFixture("\(family).json"))
    let expected = try JSONDecoder().decode(
        [ExpectedEncoding].self,
        from: Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("\(family).expected.json"))))
    for (index, want) in expected.enumerated() {
        let decoded = tokenizer.decode(want.ids)
        #expect(
            decoded == want.decoded,
            "\(family) text #\(index): decoded \(decoded.prefix(80).debugDescription), expected \(want.decoded.prefix(80).debugDescription)"
        )
        let skipped = tokenizer.decode(want.ids, skipSpecialTokens: true)
        #expect(
            skipped == want.decodedSkipSpecial,
            "\(family) text #\(index) skipping specials: \(skipped.prefix(80).debugDescription), expected \(want.decodedSkipSpecial.prefix(80).debugDescription)"
        )
    }
}
