import Foundation

/// A text normalizer from tokenizer.json's "normalizer".
enum Normalizer {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(TextPattern, with: String)
    case strip(left: Bool, right: Bool)
    case sequence([Normalizer])

    static let supported = [
        "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Prepend", "Replace", "Strip", "Sequence",
    ]

    init(_ node: JSONNode) throws {
        switch try node.type() {
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Prepend": self = .prepend(try node["prepend"].string())
        case "Replace": self = .replace(try TextPattern(node["pattern"]), with: try node["content"].string())
        case "Strip":
            self = .strip(
                left: try node["strip_left"].bool(default: true),
                right: try node["strip_right"].bool(default: true))
        case "Sequence": self = .sequence(try node["normalizers"].array().map(Normalizer.init))
        case let other:
            throw TokenizerError.unsupported(
                path: node.file, at: node.path + ".type", type: other, supported: Self.supported)
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        case .prepend(let prefix): return text.unicodeScalars.isEmpty ? text : prefix + text
        case .replace(let pattern, let content): return pattern.replacingMatches(in: text, with: content)
        case .strip(let left, let right):
            var scalars = Substring(text).unicodeScalars[...]
            if left {
                while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
            }
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .sequence(let steps): return steps.reduce(text) { $1.apply($0) }
        }
    }
}

/// A `{"String": ...}` or `{"Regex": ...}` pattern of Replace and Split components.
struct TextPattern {
    let literal: String?
    let regex: NSRegularExpression?
    /// The source regex, which picks a hand-written scanner for the split patterns of known models.
    let source: String

    init(_ node: JSONNode) throws {
        if let literal = node["String"].stringValue {
            self.literal = literal
            regex = nil
            source = literal
        } else if let pattern = node["Regex"].stringValue {
            literal = nil
            source = pattern
            do {
                regex = try NSRegularExpression(pattern: pattern)
            } catch {
                throw node["Regex"].error("a valid regular expression, got \(pattern)")
            }
        } else {
            throw node.error("{\"String\": ...} or {\"Regex\": ...}")
        }
    }

    /// Scalar-offset ranges of the non-overlapping matches in `text`, left to right.
    func matches(in text: String) -> [Range<String.Index>] {
        if let literal {
            return text.scalarRanges(of: literal)
        }
        let ns = text as NSString
        return regex!.matches(in: text, range: NSRange(location: 0, length: ns.length)).compactMap {
            $0.range.length == 0 ? nil : Range($0.range, in: text)
        }
    }

    func replacingMatches(in text: String, with content: String) -> String {
        // Scalar-aligned ranges: appended as scalars, since a range can start inside a character.
        var result = String.UnicodeScalarView()
        var last = text.startIndex
        for range in matches(in: text) {
            result.append(contentsOf: text.unicodeScalars[last..<range.lowerBound])
            result.append(contentsOf: content.unicodeScalars)
            last = range.upperBound
        }
        result.append(contentsOf: text.unicodeScalars[last...])
        return String(result)
    }
}
