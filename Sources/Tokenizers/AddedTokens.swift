/// One entry of tokenizer.json's "added_tokens".
public struct AddedToken: Sendable, Equatable {
    public let id: Int32
    public let content: String
    public let special: Bool
    public let singleWord: Bool
    public let lstrip: Bool
    public let rstrip: Bool
    public let normalized: Bool

    init(_ node: JSONNode) throws {
        id = try node["id"].tokenID()
        content = try node["content"].string()
        special = try node["special"].bool(default: false)
        singleWord = try node["single_word"].bool(default: false)
        lstrip = try node["lstrip"].bool(default: false)
        rstrip = try node["rstrip"].bool(default: false)
        normalized = try node["normalized"].bool(default: !special)
    }
}

/// Finds added tokens in text as tokenizers' AddedVocabulary does: leftmost-longest matches,
/// `single_word` rejecting matches next to a word character (`\w`), `lstrip` / `rstrip` taking the
/// whitespace beside a match.
struct AddedTokenMatcher {
    /// (pattern, token) pairs; the pattern is the token's content, normalized for normalized tokens.
    private let patterns: [(pattern: [Unicode.Scalar], token: AddedToken)]
    private let firstScalars: Set<UInt32>

    init(_ entries: [(String, AddedToken)]) {
        patterns = entries.filter { !$0.0.isEmpty }.map { (Array($0.0.unicodeScalars), $0.1) }
        firstScalars = Set(patterns.map { $0.pattern[0].value })
    }

    var isEmpty: Bool { patterns.isEmpty }

    /// Splits `text` into runs of plain text (token nil) and matched added tokens.
    func split(_ text: String) -> [(text: String, token: AddedToken?)] {
        if patterns.isEmpty || text.isEmpty { return [(text, nil)] }
        let s = Array(text.unicodeScalars)
        var out: [(String, AddedToken?)] = []
        var plainStart = 0
        var i = 0
        while i < s.count {
            guard firstScalars.contains(s[i].value), let (length, token) = longestMatch(s, at: i) else {
                i += 1
                continue
            }
            var (start, stop) = (i, i + length)
            if token.singleWord {
                let before = start > 0 && isWordScalar(s[start - 1])
                let after = stop < s.count && isWordScalar(s[stop])
                if before || after {
                    i = stop  // a rejected match is still consumed, as the Aho-Corasick iterator does
                    continue
                }
            }
            if token.lstrip {
                while start > plainStart && isWhitespace(s[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while stop < s.count && isWhitespace(s[stop]) { stop += 1 }
            }
            if plainStart < start { out.append((string(s[plainStart..<start]), nil)) }
            out.append((string(s[start..<stop]), token))
            plainStart = stop
            i = stop
        }
        if plainStart < s.count { out.append((string(s[plainStart...]), nil)) }
        return out
    }

    private func longestMatch(_ s: [Unicode.Scalar], at i: Int) -> (Int, AddedToken)? {
        var best: (Int, AddedToken)?
        for (pattern, token) in patterns where pattern.count > (best?.0 ?? 0) && i + pattern.count <= s.count
        {
            if pattern.indices.allSatisfy({ s[i + $0] == pattern[$0] }) { best = (pattern.count, token) }
        }
        return best
    }
}

private func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
}

/// \w: letters, marks, numbers and connector punctuation (regex crate's Unicode word class).
private func isWordScalar(_ c: Unicode.Scalar) -> Bool {
    if isLetter(c) || isNumber(c) { return true }
    switch c.properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation: return true
    default: return c.properties.isJoinControl
    }
}
