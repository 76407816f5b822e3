import Foundation
import Testing
import Tokenizers

/// The `unicode-exact` fixture (scripts/make_tokenizer_fixtures.py, Hugging Face `tokenizers`
/// 0.23.3): a SentencePiece-style vocabulary where pairs of tokens are canonically equivalent
/// (U+03AC and U+1F71, as ids 30216 and 31042 of Llama-2), a merge of "\u{200D} \u{200D}", tokens
/// starting with a raw U+FEFF, and added tokens that differ only in such a scalar.
private struct UnicodeFixture {
    let texts: [String]
    let ids: [[Int32]]
    let idsNoSpecial: [[Int32]]
    let decoded: [String]
    let decodedSkipSpecial: [String]
    let tokens: [String]

    init() throws {
        // Read with the project's parser: Foundation's would drop the U+FEFF that starts strings.
        let text = try String(
            contentsOfFile: tokenizerFixture("unicode-exact.expected.json"), encoding: .utf8)
        guard case .object(let root) = try parseOrderedJSON(text), case .array(let cases)? = root["cases"],
            case .array(let tokens)? = root["tokens"]
        else { throw TokenizerError.unreadable(path: "unicode-exact.expected.json", reason: "layout") }
        func field(_ name: String) -> [Value] {
            cases.map { if case .object(let o) = $0 { o[name] ?? .none } else { .none } }
        }
        func idList(_ value: Value) -> [Int32] {
            guard case .array(let items) = value else { return [] }
            return items.map { if case .int(let i) = $0 { Int32(i) } else { -1 } }
        }
        texts = field("text").map(\.text)
        ids = field("ids").map(idList)
        idsNoSpecial = field("ids_no_special").map(idList)
        decoded = field("decoded").map(\.text)
        decodedSkipSpecial = field("decoded_skip_special").map(\.text)
        self.tokens = tokens.map(\.text)
    }
}

/// The scalars of a string, for comparisons that `==` (canonical equivalence) would blur.
private func scalars(_ text: String) -> [UInt32] { text.unicodeScalars.map(\.value) }

@Test func canonicallyEquivalentTokensStayDistinct() throws {
    let fixture = try UnicodeFixture()
    let tokenizer = try Tokenizer(path: tokenizerFixture("unicode-exact.json"))
    #expect(tokenizer.vocabularySize == fixture.tokens.count)
    for (id, token) in fixture.tokens.enumerated() {
        let got = tokenizer.token(for: Int32(id))
        #expect(got.map(scalars) == scalars(token), "id \(id): \(String(describing: got)) vs \(token)")
        #expect(tokenizer.tokenID(token) == Int32(id), "token \(token.debugDescription)")
    }
    #expect(tokenizer.tokenID("\u{03AC}") != tokenizer.tokenID("\u{1F71}"))
}

@Test func unicodeEdgeCasesEncodeAndDecodeAsHuggingFaceTokenizers() throws {
    let fixture = try UnicodeFixture()
    #expect(fixture.texts.count == 14)
    #expect(fixture.texts.contains { $0.unicodeScalars.first == "\u{FEFF}" })
    // Forward, then backward on the same tokenizer: a cache keyed by canonical equivalence would
    // hand one spelling the ids of the other, depending on which was encoded first.
    let tokenizer = try Tokenizer(path: tokenizerFixture("unicode-exact.json"))
    for order in [Array(fixture.texts.indices), fixture.texts.indices.reversed()] {
        for i in order {
            let text = fixture.texts[i]
            #expect(tokenizer.encode(text) == fixture.ids[i], "text #\(i) \(text.debugDescription)")
            #expect(tokenizer.encode(text, addSpecialTokens: false) == fixture.idsNoSpecial[i], "text #\(i)")
        }
    }
    for i in fixture.texts.indices {
        #expect(scalars(tokenizer.decode(fixture.ids[i])) == scalars(fixture.decoded[i]), "text #\(i)")
        #expect(
            scalars(tokenizer.decode(fixture.ids[i], skipSpecialTokens: true))
                == scalars(fixture.decodedSkipSpecial[i]), "text #\(i)")
    }
}

@Test func aByteOrderMarkStartingAJSONStringIsKept() throws {
    guard case .object(let object) = try parseOrderedJSON("{\"\u{FEFF}k\": \"\u{FEFF}v\", \"k\": 1}") else {
        Issue.record("not an object")
        return
    }
    #expect(object.keys.map(scalars) == [[0xFEFF, 0x6B], [0x6B]])
    #expect(object["\u{FEFF}k"].map { scalars($0.text) } == [0xFEFF, 0x76])
}

@Test func jsonKeysThatAreCanonicallyEquivalentStayDistinct() throws {
    guard case .object(let object) = try parseOrderedJSON("{\"\u{03AC}\": 1, \"\u{1F71}\": 2}") else {
        Issue.record("not an object")
        return
    }
    #expect(object.count == 2)
    #expect(object["\u{03AC}"]?.text == "1")
    #expect(object["\u{1F71}"]?.text == "2")
}
