import Foundation
import Testing

@testable import Tokenizers

/// The hand-written scanners must split exactly as a regex engine does with the original pattern
/// (ICU here, standing in for the Oniguruma engine tokenizers uses; the golden tests check the
/// end result against tokenizers itself).
@Test(arguments: [KnownSplitPattern.gpt2, .llama3, .qwen2])
func scannerAgreesWithTheRegex(pattern: KnownSplitPattern) throws {
    let source: String
    switch pattern {
    case .gpt2: source = KnownSplitPattern.gpt2Source
    case .llama3: source = KnownSplitPattern.llama3Source
    case .qwen2: source = KnownSplitPattern.qwen2Source
    }
    #expect(KnownSplitPattern(source: source) == pattern)
    let regex = try NSRegularExpression(pattern: source)
    let extra = [
        "a  b", "x \n y", "  \n\n  z", "end  ", "'S'LL'Ve 're", "tab\t\tnext", "12345678", " 12 ab",
        "\r\n\r\n",
    ]
    for text in corpus.dropLast() + extra {
        let expected = regex.matches(in: text, range: NSRange(location: 0, length: (text as NSString).length))
            .map { (text as NSString).substring(with: $0.range) }
        let got = pattern.split(text).map(String.init)
        #expect(got == expected, "\(pattern) on \(text.prefix(40).debugDescription)")
    }
}

@Test func tokenizerFilesUseTheScanners() throws {
    for family in ["llama3", "qwen2"] {
        let data = try Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("\(family).json")))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let steps = (json["pre_tokenizer"] as! [String: Any])["pretokenizers"] as! [[String: Any]]
        let source = (steps[0]["pattern"] as! [String: String])["Regex"]!
        #expect(KnownSplitPattern(source: source) != nil, "\(family)'s split pattern is not recognised")
    }
}

@Test func heapMergesAgreeWithTheScanOnLongPieces() throws {
    let tokenizer = try Tokenizer(path: tokenizerFixture("gpt2.json"))
    var state: UInt64 = 42
    let alphabet = Array("aaabbeeeinnorssttthl_Ġ")
    for length in [1, 2, 33, 64, 257, 1000] {
        for _ in 0..<5 {
            var piece = ""
            for _ in 0..<length {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                piece.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            #expect(
                tokenizer.model.merged(piece, heap: true) == tokenizer.model.merged(piece, heap: false),
                "length \(length)")
        }
    }
}
