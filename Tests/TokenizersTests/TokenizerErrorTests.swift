import Foundation
import Testing
import Tokenizers

private func writeTokenizer(_ json: String) -> String {
    let path = NSTemporaryDirectory() + "tokenizer-\(UUID().uuidString).json"
    try! json.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

private let model = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#

@Test func aSmallTokenizerFileWorks() throws {
    let tokenizer = try Tokenizer(path: writeTokenizer("{\(model)}"))
    #expect(tokenizer.encode("abab") == [2, 2])
    #expect(tokenizer.encode("aab") == [0, 2])
    #expect(tokenizer.decode([2, 0]) == "ab a")  // no decoder: tokens joined by spaces, as tokenizers does
}

/// Older files give the model without "type"; tokenizers then reads it by its fields (BPE has merges).
@Test func aModelWithoutTypeReadsAsBPE() throws {
    let untyped = #""model": {"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#
    #expect(try Tokenizer(path: writeTokenizer("{\(untyped)}")).encode("abab") == [2, 2])
}

/// A merge's halves are split on the space scalar: " \u{200D}" is one character (a space, then a
/// joiner that extends it), so splitting on characters finds no space.
@Test func aMergeOfJoinersLoads() throws {
    let joiners =
        "\"model\": {\"type\": \"BPE\", \"vocab\": {\"\u{200D}\": 0, \"\u{200D}\u{200D}\": 1}, \"merges\": [\"\u{200D} \u{200D}\"]}"
    #expect(try Tokenizer(path: writeTokenizer("{\(joiners)}")).encode("\u{200D}\u{200D}\u{200D}") == [1, 0])
}

@Test func mergesInBothFormsAreAccepted() throws {
    let pairs = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}"#
    #expect(try Tokenizer(path: writeTokenizer("{\(pairs)}")).encode("ab") == [2])
}

@Test(arguments: [
    (#"{"added_tokens": []}"#, "at model: expected the tokenizer model"),
    (
        #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}"#,
        "at model.merges[0]: expected two tokens"
    ),
    (
        #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a z"]}}"#,
        "at model.merges[0]: expected tokens that are in the vocabulary"
    ),
    (
        #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}}"#,
        "at model.merges[0]: expected \"left right\""
    ),
    (#"{"model": {"type": "WordPiece", "vocab": {}}}"#, "at model.type: unsupported type 'WordPiece'"),
    (
        "{\(model), \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Whitespace\"}]}}",
        "at pre_tokenizer.pretokenizers[0].type: unsupported type 'Whitespace'"
    ),
    (
        "{\(model), \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"(\"}, \"content\": \"\"}}",
        "at normalizer.pattern.Regex: expected a valid regular expression"
    ),
    (
        "{\(model), \"decoder\": {\"type\": \"Strip\", \"content\": \"ab\", \"start\": 1, \"stop\": 0}}",
        "at decoder.content: expected one character"
    ),
    (
        "{\(model), \"added_tokens\": [{\"id\": \"x\", \"content\": \"<s>\"}]}",
        "at added_tokens[0].id: expected a token id"
    ),
    ("[1, 2]", "at (root): expected an object"),
    (#"{"model": {"vocab": {"a": 0}}}"#, "at model.type: expected the model's type: the model has neither"),
    (
        #"{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}"#,
        "at model.vocab.a: expected a token id"
    ),
    (
        #"{"model": {"type": "BPE", "vocab": {"a": 1e12}, "merges": []}}"#,
        "at model.vocab.a: expected a token id"
    ),
    (
        #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a  a"]}}"#,
        "expected two tokens separated by one space"
    ),
    ("{not json", "not valid JSON"),
])
func malformedFilesNameTheFileAndJSONPath(json: String, message: String) throws {
    let path = writeTokenizer(json)
    do {
        _ = try Tokenizer(path: path)
        Issue.record("loaded without error")
    } catch let error as TokenizerError {
        #expect(error.description.hasPrefix(path + ": "), "\(error)")
        #expect(error.description.contains(message), "\(error)")
    }
}
