/// Hand-written matchers for the split regexes of GPT-2, Llama 3 and Qwen2/2.5/3, giving the pieces
/// the Rust `tokenizers` library gives with its regex engine, several times faster than a regex.
///
/// The alternatives are tried in the regex's order at each position (leftmost-first), each greedy,
/// including the regex engine's backtracking: `\s+(?!\S)` gives back one whitespace character
/// before a non-space, and `\s*[\r\n]+` ends just after the last line break of a whitespace run.
enum KnownSplitPattern {
    case gpt2, llama3, qwen2

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(source: String) {
        switch source {
        case Self.gpt2Source: self = .gpt2
        case Self.llama3Source: self = .llama3
        case Self.qwen2Source: self = .qwen2
        default: return nil
        }
    }

    /// The pieces of `text`; together they are exactly `text`.
    func split(_ text: String) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [Substring] = []
        var index = text.unicodeScalars.startIndex
        var i = 0
        while i < scalars.count {
            let end = matchEnd(scalars, at: i)
            let next = text.unicodeScalars.index(index, offsetBy: end - i)
            pieces.append(text[index..<next])
            index = next
            i = end
        }
        return pieces
    }

    /// The end of the match starting at `i` (there always is one: every character fits an alternative).
    func matchEnd(_ s: [Unicode.Scalar], at i: Int) -> Int {
        let n = s.count
        if let end = contraction(s, at: i) { return end }
        let c = s[i]
        // Letters: GPT-2 ` ?\p{L}+`; the others `[^\r\n\p{L}\p{N}]?\p{L}+`.
        if isLetter(c) { return run(s, from: i + 1, while: isLetter) }
        if i + 1 < n && isLetter(s[i + 1]) {
            let prefixOK = self == .gpt2 ? c == " " : !isNewline(c) && !isNumber(c)
            if prefixOK { return run(s, from: i + 2, while: isLetter) }
        }
        // Numbers: GPT-2 ` ?\p{N}+`, Llama 3 `\p{N}{1,3}`, Qwen2 `\p{N}`.
        switch self {
        case .gpt2:
            if isNumber(c) { return run(s, from: i + 1, while: isNumber) }
            if c == " " && i + 1 < n && isNumber(s[i + 1]) { return run(s, from: i + 2, while: isNumber) }
        case .llama3:
            if isNumber(c) { return min(run(s, from: i + 1, while: isNumber), i + 3) }
        case .qwen2:
            if isNumber(c) { return i + 1 }
        }
        // Other symbols: ` ?[^\s\p{L}\p{N}]+`, then `[\r\n]*` except in GPT-2.
        let symbolStart = c == " " ? i + 1 : i
        if symbolStart < n && isSymbol(s[symbolStart]) {
            let end = run(s, from: symbolStart + 1, while: isSymbol)
            return self == .gpt2 ? end : run(s, from: end, while: isNewline)
        }
        // Whitespace (c is whitespace here).
        let end = run(s, from: i + 1, while: isWhitespace)
        if self != .gpt2, let lastBreak = (i..<end).last(where: { isNewline(s[$0]) }) { return lastBreak + 1 }
        if end == n || end - i == 1 { return end }  // `\s+(?!\S)` at the end, or `\s+` for a single space
        return end - 1
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitive except in GPT-2.
    private func contraction(_ s: [Unicode.Scalar], at i: Int) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        let folded: (Int) -> Unicode.Scalar? = { k in
            guard k < s.count else { return nil }
            let c = s[k]
            if self == .gpt2 { return c }
            if c == "\u{17F}" { return "s" }  // LATIN SMALL LETTER LONG S folds to s
            if c == "\u{212A}" { return "k" }  // KELVIN SIGN folds to k
            return c.isASCII ? Unicode.Scalar(UInt8(c.value) | (isASCIIUpper(c) ? 0x20 : 0)) : c
        }
        let a = folded(i + 1)
        let b = folded(i + 2)
        if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
        if (a == "r" || a == "v") && b == "e" { return i + 3 }
        if a == "l" && b == "l" { return i + 3 }
        return nil
    }
}

private func isASCIIUpper(_ c: Unicode.Scalar) -> Bool { c.value >= 65 && c.value <= 90 }

@inline(__always)
private func run(_ s: [Unicode.Scalar], from start: Int, while predicate: (Unicode.Scalar) -> Bool) -> Int {
    var j = start
    while j < s.count && predicate(s[j]) { j += 1 }
    return j
}

/// \p{L}: general category L (Lu, Ll, Lt, Lm, Lo).
@inline(__always)
func isLetter(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 { return (c.value | 0x20) >= 97 && (c.value | 0x20) <= 122 }
    switch c.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

/// \p{N}: general category N (Nd, Nl, No).
@inline(__always)
func isNumber(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 { return c.value >= 48 && c.value <= 57 }
    switch c.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

/// \s: the Unicode White_Space property.
@inline(__always)
func isWhitespace(_ c: Unicode.Scalar) -> Bool {
    if c.value < 128 { return c == " " || (c.value >= 9 && c.value <= 13) }
    return c.properties.isWhitespace
}

@inline(__always)
func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\n" || c == "\r" }

/// The class `[^\s\p{L}\p{N}]`: neither whitespace, letter nor number.
@inline(__always)
private func isSymbol(_ c: Unicode.Scalar) -> Bool { !isWhitespace(c) && !isLetter(c) && !isNumber(c) }
