/// An error in a chat template, naming its line and column (1-based).
public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public let line: Int
    public let column: Int
    public let message: String
    /// The file the template came from, once known (tokenizer_config.json or chat_template.jinja).
    public var file: String? = nil
    public var description: String {
        file.map { "\($0): template line \(line), column \(column): \(message)" }
            ?? "chat template line \(line), column \(column): \(message)"
    }
}

/// The template split into literal text and tags, whitespace control already applied.
enum Segment {
    case text(String)
    case output(source: String, line: Int, column: Int)
    case statement(source: String, line: Int, column: Int)
}

/// Splits a template into segments with jinja2's whitespace rules as transformers configures them
/// (`trim_blocks=True`, `lstrip_blocks=True`): `{%-` / `-%}` strip all whitespace on that side;
/// a block or comment tag alone on its line loses the line's leading spaces and tabs (unless
/// written `{%+`), and the first newline after a block or comment tag is dropped.
func lexTemplate(_ template: String) throws -> [Segment] {
    let s = Array(template.unicodeScalars)
    var segments: [Segment] = []
    var text = String.UnicodeScalarView()
    var stripNextWhitespace = false
    var dropNextNewline = false
    var i = 0
    var line = 1
    var lineStart = 0

    func position(_ index: Int) -> (Int, Int) {
        var l = 1
        var start = 0
        for k in 0..<index where s[k] == "\n" {
            l += 1
            start = k + 1
        }
        return (l, index - start + 1)
    }

    while i < s.count {
        let isTag = s[i] == "{" && i + 1 < s.count && (s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#")
        if !isTag {
            if stripNextWhitespace && isWhitespace(s[i]) {
                i += 1
                continue
            }
            stripNextWhitespace = false
            if dropNextNewline {
                dropNextNewline = false
                if s[i] == "\n" {
                    i += 1
                    line += 1
                    lineStart = i
                    continue
                }
            }
            text.append(s[i])
            if s[i] == "\n" {
                line += 1
                lineStart = i + 1
            }
            i += 1
            continue
        }
        stripNextWhitespace = false
        dropNextNewline = false
        let kind = s[i + 1]
        let close: Unicode.Scalar = kind == "{" ? "}" : kind == "%" ? "%" : "#"
        var bodyStart = i + 2
        let (tagLine, tagColumn) = position(i)
        var keepLeft = false
        if bodyStart < s.count && s[bodyStart] == "-" {
            while let last = text.last, isWhitespace(last) { text.removeLast() }
            bodyStart += 1
        } else if bodyStart < s.count && s[bodyStart] == "+" {
            keepLeft = true
            bodyStart += 1
        } else if kind != "{" && !keepLeft {
            // lstrip_blocks: drop spaces and tabs between the line start and the tag.
            var k = text.endIndex
            var onlyBlanks = true
            while k > text.startIndex {
                let previous = text.index(before: k)
                let c = text[previous]
                if c == "\n" { break }
                if c != " " && c != "\t" {
                    onlyBlanks = false
                    break
                }
                k = previous
            }
            if onlyBlanks { text.removeSubrange(k..<text.endIndex) }
        }
        // Find the closing delimiter outside string literals.
        var j = bodyStart
        var quote: Unicode.Scalar?
        var found = false
        while j + 1 < s.count {
            let c = s[j]
            if let q = quote {
                if c == "\\" {
                    j += 2
                    continue
                }
                if c == q { quote = nil }
            } else if (c == "'" || c == "\"") && kind != "#" {
                quote = c
            } else if c == close && s[j + 1] == "}" {
                found = true
                break
            }
            j += 1
        }
        guard found else {
            throw TemplateError(
                line: tagLine, column: tagColumn, message: "unclosed tag '{\(kind)': expected '\(close)}'")
        }
        var bodyEnd = j
        var stripRight = false
        if bodyEnd > bodyStart && s[bodyEnd - 1] == "-" {
            stripRight = true
            bodyEnd -= 1
        }
        if !text.isEmpty {
            segments.append(.text(String(text)))
            text = String.UnicodeScalarView()
        }
        let source = String(String.UnicodeScalarView(s[bodyStart..<bodyEnd]))
        switch kind {
        case "{": segments.append(.output(source: source, line: tagLine, column: tagColumn))
        case "%": segments.append(.statement(source: source, line: tagLine, column: tagColumn))
        default: break  // comment
        }
        for k in i..<(j + 2) where s[k] == "\n" {
            line += 1
            lineStart = k + 1
        }
        i = j + 2
        stripNextWhitespace = stripRight
        dropNextNewline = !stripRight && kind != "{"
    }
    _ = (line, lineStart)
    if !text.isEmpty { segments.append(.text(String(text))) }
    return segments
}

/// A token of an expression inside a tag.
enum ExpressionToken: Hashable {
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case symbol(String)
    case end
}

/// Tokenizes the inside of a tag; positions are offsets into `source` for error columns.
func tokenizeExpression(_ source: String, line: Int, column: Int) throws -> [(ExpressionToken, Int)] {
    let s = Array(source.unicodeScalars)
    var tokens: [(ExpressionToken, Int)] = []
    var i = 0
    let symbols = [
        "**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{",
        "}",
        ",", ":", ".", "|", "=",
    ]
    while i < s.count {
        let c = s[i]
        if isWhitespace(c) {
            i += 1
            continue
        }
        let start = i
        if c == "_" || isLetter(c) {
            while i < s.count && (s[i] == "_" || isLetter(s[i]) || isNumber(s[i])) { i += 1 }
            tokens.append((.name(String(String.UnicodeScalarView(s[start..<i]))), start))
        } else if c.value >= 48 && c.value <= 57 {
            while i < s.count && s[i].value >= 48 && s[i].value <= 57 { i += 1 }
            var isDouble = false
            if i + 1 < s.count && s[i] == "." && s[i + 1].value >= 48 && s[i + 1].value <= 57 {
                isDouble = true
                i += 1
                while i < s.count && s[i].value >= 48 && s[i].value <= 57 { i += 1 }
            }
            // An exponent (1e308, 2.5E-3), as jinja2's float literals.
            if i < s.count, s[i] == "e" || s[i] == "E" {
                var j = i + 1
                if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
                if j < s.count, s[j].value >= 48 && s[j].value <= 57 {
                    while j < s.count && s[j].value >= 48 && s[j].value <= 57 { j += 1 }
                    isDouble = true
                    i = j
                }
            }
            let literal = String(String.UnicodeScalarView(s[start..<i]))
            if isDouble {
                tokens.append((.double(Double(literal)!), start))
            } else if let value = Int(literal) {
                tokens.append((.int(value), start))
            } else {
                throw TemplateError(
                    line: line, column: column + start, message: "integer literal \(literal) is too large")
            }
        } else if c == "'" || c == "\"" {
            i += 1
            var value = String.UnicodeScalarView()
            var closed = false
            while i < s.count {
                if s[i] == c {
                    closed = true
                    i += 1
                    break
                }
                if s[i] == "\\" && i + 1 < s.count {
                    i += 1
                    switch s[i] {
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    case "r": value.append("\r")
                    case "\\", "'", "\"": value.append(s[i])
                    default:
                        value.append("\\")
                        value.append(s[i])
                    }
                } else {
                    value.append(s[i])
                }
                i += 1
            }
            guard closed else {
                throw TemplateError(line: line, column: column + start, message: "unterminated string")
            }
            tokens.append((.string(String(value)), start))
        } else if let symbol = symbols.first(where: { sym in
            let chars = Array(sym.unicodeScalars)
            return i + chars.count <= s.count && Array(s[i..<(i + chars.count)]) == chars
        }) {
            i += symbol.unicodeScalars.count
            tokens.append((.symbol(symbol), start))
        } else {
            throw TemplateError(line: line, column: column + start, message: "unexpected character '\(c)'")
        }
    }
    tokens.append((.end, s.count))
    return tokens
}
