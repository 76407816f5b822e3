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
