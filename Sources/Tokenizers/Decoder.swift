import Foundation

/// A decoder from tokenizer.json's "decoder": turns token strings back into text.
enum Decoder {
    case byteLevel
    case metaspace(replacement: String, prependScheme: String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(TextPattern, with: String)
    case sequence([Decoder])

    static let supported = ["ByteLevel", "Metaspace", "ByteFallback", "Fuse", "Strip", "Replace", "Sequence"]

    init(_ node: JSONNode) throws {
        switch try node.type() {
        case "ByteLevel": self = .byteLevel
        case "Metaspace":
            var scheme = try node["prepend_scheme"].optionalString()
            if scheme == nil {
                scheme = try node["add_prefix_space"].bool(default: true) ? "always" : "never"
            }
            self = .metaspace(replacement: try node["replacement"].string(), prependScheme: scheme!)
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            let content = try node["content"].string()
            guard content.unicodeScalars.count == 1 else { throw node["content"].error("one character") }
            self = .strip(
                content: content.unicodeScalars.first!, start: try node["start"].int(),
                stop: try node["stop"].int())
        case "Replace": self = .replace(try TextPattern(node["pattern"]), with: try node["content"].string())
        case "Sequence": self = .sequence(try node["decoders"].array().map(Decoder.init))
        case let other:
            throw TokenizerError.unsupported(
                path: node.file, at: node.path + ".type", type: other, supported: Self.supported)
        }
    }

    /// Applies this decoder to a list of token strings (tokenizers' `decode_chain`).
    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { ByteLevel.decodeBytes(token, into: &bytes) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let scheme):
            // In the first token every marker is dropped (not only a leading one), as tokenizers does.
            return tokens.enumerated().map { i, token in
                token.replacingScalars(replacement, with: i == 0 && scheme != "never" ? "" : " ")
            }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    out.append(text)
                } else {
                    out += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = Self.fallbackByte(token) {
                    pending.append(byte)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var scalars = Substring(token).unicodeScalars
                var removed = 0
                while removed < start, scalars.first == content {
                    scalars.removeFirst()
                    removed += 1
                }
                removed = 0
                while removed < stop, scalars.last == content {
                    scalars.removeLast()
                    removed += 1
                }
                return String(scalars)
            }
        case .replace(let pattern, let content):
            return tokens.map { pattern.replacingMatches(in: $0, with: content) }
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decodeChain($0) }
        }
    }

    /// The byte of a `<0xXX>` token.
    static func fallbackByte(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8.starts(with: "<0x".utf8), utf8[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }
}
