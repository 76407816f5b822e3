/// A piece of text on its way to the model, and whether it starts at the input's first character
/// (Metaspace's `prepend_scheme: first` adds its marker only there).
struct Piece {
    var text: String
    var atStart: Bool
}

/// How Split treats the delimiters it finds (tokenizers' SplitDelimiterBehavior).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// A pre-tokenizer from tokenizer.json's "pre_tokenizer".
enum PreTokenizer {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TextPattern, known: KnownSplitPattern?, behavior: SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case metaspace(replacement: String, prependScheme: String, split: Bool)
    case sequence([PreTokenizer])

    static let supported = ["ByteLevel", "Split", "Digits", "Metaspace", "Sequence"]

    init(_ node: JSONNode) throws {
        switch try node.type() {
        case "ByteLevel":
            self = .byteLevel(
                addPrefixSpace: try node["add_prefix_space"].bool(default: true),
                useRegex: try node["use_regex"].bool(default: true))
        case "Split":
            let pattern = try TextPattern(node["pattern"])
            let name = try node["behavior"].string()
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw node["behavior"].error(
                    "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
            }
            let known = pattern.regex == nil ? nil : KnownSplitPattern(source: pattern.source)
            self = .split(
                pattern, known: known, behavior: behavior, invert: try node["invert"].bool(default: false))
        case "Digits":
            self = .digits(individual: try node["individual_digits"].bool(default: false))
        case "Metaspace":
            var scheme = try node["prepend_scheme"].optionalString()
            if scheme == nil {
                scheme = try node["add_prefix_space"].bool(default: true) ? "always" : "never"
            }
            guard ["always", "first", "never"].contains(scheme!) else {
                throw node["prepend_scheme"].error("always, first or never")
            }
            self = .metaspace(
                replacement: try node["replacement"].string(), prependScheme: scheme!,
                split: try node["split"].bool(default: true))
        case "Sequence":
            self = .sequence(try node["pretokenizers"].array().map(PreTokenizer.init))
        case let other:
            throw TokenizerError.unsupported(
                path: node.file, at: node.path + ".type", type: other, supported: Self.supported)
        }
    }

    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0) }
        default:
            return pieces.flatMap { apply(to: $0) }
        }
    }

    private func apply(to piece: Piece) -> [Piece] {
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            var text = piece.text
            if addPrefixSpace && !text.startsWithScalars(" ") { text = " " + text }
            let parts = useRegex ? KnownSplitPattern.gpt2.split(text).map(String.init) : [text]
            return pieces(parts, from: piece).map {
                Piece(text: ByteLevel.encode($0.text), atStart: $0.atStart)
            }
        case .split(let pattern, let known, let behavior, let invert):
            let text = piece.text
            var ranges: [(Range<String.Index>, isMatch: Bool)] = []
            if let known {
                ranges = known.split(text).map { ($0.startIndex..<$0.endIndex, true) }
            } else {
                var last = text.startIndex
                for match in pattern.matches(in: text) {
                    if last < match.lowerBound { ranges.append((last..<match.lowerBound, false)) }
                    ranges.append((match, true))
                    last = match.upperBound
                }
                if last < text.endIndex { ranges.append((last..<text.endIndex, false)) }
            }
            if invert { ranges = ranges.map { ($0.0, !$0.isMatch) } }
            return pieces(apply(behavior, ranges, in: text), from: piece)
        case .digits(let individual):
            var parts: [String] = []
            var current = ""
            var currentIsDigit = false
            for scalar in piece.text.unicodeScalars {
                let digit = isNumber(scalar)
                if !current.isEmpty && (digit != currentIsDigit || (digit && individual)) {
                    parts.append(current)
                    current = ""
                }
                current.unicodeScalars.append(scalar)
                currentIsDigit = digit
            }
            if !current.isEmpty { parts.append(current) }
            return pieces(parts, from: piece)
        case .metaspace(let replacement, let scheme, let split):
            var text = piece.text.replacingScalars(" ", with: replacement)
            let prepend = scheme == "always" || (scheme == "first" && piece.atStart)
            if prepend && !text.startsWithScalars(replacement) { text = replacement + text }
            guard split else { return [Piece(text: text, atStart: piece.atStart)] }
            // Split before each marker scalar (a marker can begin a character with a combining mark).
            var parts: [String] = []
            var current = String.UnicodeScalarView()
            let marker = replacement.unicodeScalars.first
            for scalar in text.unicodeScalars {
                if scalar == marker && !current.isEmpty {
                    parts.append(String(current))
                    current = String.UnicodeScalarView()
                }
                current.append(scalar)
            }
            if !current.isEmpty { parts.append(String(current)) }
            return pieces(parts, from: piece)
        case .sequence:
            preconditionFailure("handled in apply(_:)")
        }
    }

    /// Applies a delimiter behaviour to ranges that cover `text`; empty pieces are dropped.
    private func apply(
        _ behavior: SplitBehavior, _ ranges: [(Range<String.Index>, isMatch: Bool)], in text: String
    )
        -> [String]
    {
        var parts: [String] = []
        var pending = ""  // MergedWithNext: delimiters waiting for what follows
        for (k, (range, isMatch)) in ranges.enumerated() {
            let part = String(text[range])
            let previousIsMatch = k > 0 ? ranges[k - 1].isMatch : nil
            switch behavior {
            case .removed:
                if !isMatch { parts.append(part) }
            case .isolated:
                parts.append(part)
            case .mergedWithPrevious:
                if isMatch && previousIsMatch == false && !parts.isEmpty {
                    parts[parts.count - 1] += part
                } else {
                    parts.append(part)
                }
            case .mergedWithNext:
                if isMatch {
                    if !pending.isEmpty {
                        parts.append(pending)
                    }
                    pending = part
                } else {
                    parts.append(pending + part)
                    pending = ""
                }
            case .contiguous:
                if isMatch && previousIsMatch == true && !parts.isEmpty {
                    parts[parts.count - 1] += part
                } else {
                    parts.append(part)
                }
            }
        }
        if !pending.isEmpty { parts.append(pending) }
        return parts.filter { !$0.isEmpty }
    }

    private func pieces(_ parts: [String], from piece: Piece) -> [Piece] {
        parts.enumerated().map { Piece(text: $1, atStart: piece.atStart && $0 == 0) }
    }
}
