import Foundation
import Testing
import Tokenizers

// Random inputs built from pieces of the grammar: each must parse, render or load, or fail with an
// error, never trap or crash the process. Seeded, so a failure reproduces; small enough to stay fast.

/// SplitMix64, so every run tries the same inputs.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Test func randomTemplatesNeverCrash() throws {
    let pool = [
        "{{", "}}", "{%", "%}", "{%-", "-%}", "{#", "#}", " if ", " for ", " in ", " endfor ", " endif ",
        " set ", " x ", "=",
        "(", ")", "[", "]", "'a'", "\"b\"", "1", "-1", "9223372036854775807", "*", "**", "//", "%", "~", "|",
        "length",
        "tojson", "join", ".", "items", "range", ",", ":", " macro ", " endmacro ", " call ", " endcall ",
        " not ",
        " and ", " or ", " is ", " defined ", " none ", "messages", "loop", "namespace", "ns", "ns.x", "{",
        "}",
        " else ", " elif ", " break ", " continue ", "-", "+", "/", "1e5", "0.5", "==", "<", ">", " ", "\n",
        "m",
        "m.content", "upper()", "split", "strip", "'\\n'", "caller()", "f", "f(", "*x", "**y", "0", "[::-1]",
        "[1:2]",
        "indent", "int", "float", "round", "selectattr", "map", "default", "first", "last", "reverse",
        "unique",
        "dictsort", "string", "trim", "title", "capitalize", "replace", "startswith", "endswith", "count",
        "find",
        "loop.index", "loop.previtem", "raise_exception", "dict", "strftime_now", "'%Y'", " if ", "true",
        "false",
    ]
    var rng = SeededGenerator(state: 14)
    let message = Value.object(Object([("role", .string("user")), ("content", .string("hi there"))]))
    let variables: [String: Value] = [
        "messages": .array([message, message]), "x": .array([.int(1), .int(2)]),
        "y": .object(Object([("a", .int(1))])), "m": message, "add_generation_prompt": .bool(true),
    ]
    var rendered = 0
    for _ in 0..<60_000 {
        let n = Int.random(in: 1...40, using: &rng)
        let source = (0..<n).map { _ in pool.randomElement(using: &rng)! }.joined()
        guard let template = try? ChatTemplate(source) else { continue }
        if (try? template.render(variables)) != nil { rendered += 1 }
    }
    #expect(rendered > 1000)  // the pieces make real templates, not only syntax errors
}

@Test func mangledTokenizerFilesNeverCrash() throws {
    let base = """
        {"added_tokens": [{"id": 9, "content": "<s>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false}],
         "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}, {"type": "Prepend", "prepend": "▁"}]},
         "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "Digits", "individual_digits": true}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}]},
         "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [9], "tokens": ["<s>"]}}},
         "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
         "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true, "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "▁": 4, "▁ab": 5, "<0x41>": 6, "1": 7, "2": 8, "<s>": 9}, "merges": ["a b", "▁ ab"]}}
        """
    let scalars = Array(base.unicodeScalars)
    let inserts = [
        "-1", "1e30", "99999999999", "null", "true", "\"\"", "[]", "{}", "\"x y z\"", "0.5", "\"\\u0000\"",
        "[[", "\"\\ud800\"",
    ]
    var rng = SeededGenerator(state: 14)
    let path = NSTemporaryDirectory() + "fuzz-tokenizer-\(UUID().uuidString).json"
    var loaded = 0
    for _ in 0..<2_000 {
        var s = scalars
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let at = Int.random(in: 0..<s.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: s.remove(at: at)
            case 1: s.insert(contentsOf: inserts.randomElement(using: &rng)!.unicodeScalars, at: at)
            default:
                let end = min(s.count, at + Int.random(in: 1...6, using: &rng))
                s.replaceSubrange(at..<end, with: inserts.randomElement(using: &rng)!.unicodeScalars)
            }
        }
        try String(String.UnicodeScalarView(s)).write(toFile: path, atomically: false, encoding: .utf8)
        guard let tokenizer = try? Tokenizer(path: path) else { continue }
        loaded += 1
        let ids = tokenizer.encode("ab ab 12 A\u{301} <s>x")
        _ = tokenizer.decode(ids + [0, 6, 9, 99, -1], skipSpecialTokens: Bool.random(using: &rng))
    }
    #expect(loaded > 50)
}

@Test func randomJSONNeverCrashes() throws {
    let pool = [
        "{", "}", "[", "]", ",", ":", "\"a\"", "\"\\u", "d800", "\\udc00", "\"", "1", "-", "e", "+", ".",
        "tru", "true", "null", "nul", " ", "\\", "1e400", "-0", "99999999999999999999", "\u{FEFF}", "é", "\n",
    ]
    var rng = SeededGenerator(state: 14)
    var parsed = 0
    for _ in 0..<100_000 {
        let text = (0..<Int.random(in: 1...30, using: &rng)).map { _ in pool.randomElement(using: &rng)! }
            .joined()
        if let value = try? parseOrderedJSON(text) {
            parsed += 1
            _ = value.jsonText
        }
    }
    #expect(parsed > 100)
}

/// A lone surrogate escape (Python keeps it in a str; a Swift string cannot hold one) reads as
/// U+FFFD, and the escape after it is read on its own; a pair is one scalar.
@Test func loneSurrogatesBecomeReplacementCharacters() throws {
    let cases = [
        (#""\ud800\u0041""#, "\u{FFFD}A"), (#""\ud800\ud800""#, "\u{FFFD}\u{FFFD}"),
        (#""\udc00""#, "\u{FFFD}"),
        (#""\ud800""#, "\u{FFFD}"), (#""\ud83d\ude00""#, "\u{1F600}"),
    ]
    for (json, expected) in cases {
        #expect(
            try parseOrderedJSON(json).text.unicodeScalars.elementsEqual(expected.unicodeScalars), "\(json)")
    }
}

@Test func randomTextEncodesAndDecodes() throws {
    var rng = SeededGenerator(state: 14)
    let ranges: [ClosedRange<UInt32>] = [
        0...0x7F, 0x80...0x7FF, 0x300...0x36F, 0x2000...0x206F, 0xFE00...0xFEFF, 0x1F300...0x1FAFF,
        0xAC00...0xD7A3, 0x0E00...0x0E7F,
    ]
    for family in tokenizerFamilies + ["unicode-exact"] {
        let tokenizer = try Tokenizer(path: tokenizerFixture("\(family).json"))
        for _ in 0..<2_000 {
            var view = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...30, using: &rng) {
                let range = ranges.randomElement(using: &rng)!
                if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &rng)) { view.append(scalar) }
            }
            let ids = tokenizer.encode(String(view))
            _ = tokenizer.decode(ids)
        }
    }
}
