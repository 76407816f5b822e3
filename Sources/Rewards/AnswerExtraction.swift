import Foundation

/// Finds the final answer in a completion, in the order graders use.
///
/// 1. the last `\boxed{...}` (or `\fbox{...}`), braces nested to any depth;
/// 2. else the last `<answer>...</answer>` (a `\boxed{}` inside it wins);
/// 3. else the text after the last `####` (GSM8K's marker), to the end of its line;
/// 4. else the last number in the text.
public func extractAnswer(_ text: String) -> String? {
    if let boxed = lastBoxed(text) { return boxed }
    if let tagged = lastTagged(text, open: "<answer>", close: "</answer>") {
        return lastBoxed(tagged) ?? tagged.trimmingWhitespace
    }
    if let marker = text.range(of: "####", options: .backwards) {
        let rest = text[marker.upperBound...].prefix { $0 != "\n" }
        let answer = String(rest).trimmingWhitespace
        if !answer.isEmpty { return answer }
    }
    return lastNumberText(text)
}

/// The reference answer of a dataset field: GSM8K's `... #### 72` and `\boxed{}` solutions reduce
/// to their final answer; anything else is taken whole.
public func referenceAnswer(_ text: String) -> String {
    if let marker = text.range(of: "####", options: .backwards) {
        return String(text[marker.upperBound...]).trimmingWhitespace
    }
    return lastBoxed(text) ?? text.trimmingWhitespace
}

/// True when `answer` and `reference` denote the same value: numerically (integers, decimals,
/// thousands separators, signs, `a/b`, `\frac{a}{b}`, `\dfrac`, percentages, trailing zeros), else
/// as text after removing LaTeX wrappers, spaces and a final period.
public func answersMatch(_ answer: String, _ reference: String) -> Bool {
    let (a, r) = (normalizeAnswer(answer), normalizeAnswer(reference))
    if let expected = parseNumber(r) {
        let candidates: [String] = [a] + (lastNumberText(a).map { [$0] } ?? [])
        for candidate in candidates {
            guard let value = parseNumber(candidate) else { continue }
            if value.matches(expected) { return true }
            // "50%" answers "50" and "0.5"; "0.5" answers "50%".
            if candidate.hasSuffix("%"), let whole = parseNumber(String(candidate.dropLast())),
                whole.matches(expected)
            {
                return true
            }
            if r.hasSuffix("%"), let whole = parseNumber(String(r.dropLast())), value.matches(whole) {
                return true
            }
            return false
        }
        return false
    }
    return !a.isEmpty && a == r
}

// MARK: - Pieces

extension StringProtocol {
    var trimmingWhitespace: String {
        String(self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The contents of the last `\boxed{...}` or `\fbox{...}`, or nil.
func lastBoxed(_ text: String) -> String? {
    let chars = Array(text)
    var result: String?
    var i = 0
    while i < chars.count {
        var matched: Int?
        for command in ["\\boxed", "\\fbox"] where i + command.count <= chars.count {
            if String(chars[i..<(i + command.count)]) == command { matched = command.count }
        }
        guard let length = matched else {
            i += 1
            continue
        }
        var j = i + length
        while j < chars.count && chars[j] == " " { j += 1 }
        guard j < chars.count, chars[j] == "{" else {
            i = j
            continue
        }
        var depth = 0
        var k = j
        while k < chars.count {
            if chars[k] == "{" { depth += 1 }
            if chars[k] == "}" {
                depth -= 1
                if depth == 0 { break }
            }
            k += 1
        }
        guard k < chars.count else { break }  // unbalanced: not an answer
        result = String(chars[(j + 1)..<k])
        i = k + 1
    }
    return result
}

/// The contents of the last `open ... close` pair, or nil.
func lastTagged(_ text: String, open: String, close: String) -> String? {
    guard let end = text.range(of: close, options: .backwards),
        let start = text.range(of: open, options: .backwards, range: text.startIndex..<end.lowerBound)
    else { return nil }
    return String(text[start.upperBound..<end.lowerBound])
}

/// The last number-looking token: an optional sign, digits with thousands commas, a decimal part,
/// a `/b` fraction or a `\frac{a}{b}`, and a trailing `%`.
func lastNumberText(_ text: String) -> String? {
    let chars = Array(text)
    var best: String?
    var i = 0
    while i < chars.count {
        if let (token, end) = fracToken(chars, i) {
            best = token
            i = end
            continue
        }
        let startsNumber =
            chars[i].isASCIIDigit
            || (chars[i] == "." && i + 1 < chars.count && chars[i + 1].isASCIIDigit)
        guard startsNumber else {
            i += 1
            continue
        }
        var start = i
        if start > 0 && chars[start - 1] == "-" { start -= 1 }
        var j = i
        while j < chars.count {
            if chars[j].isASCIIDigit || chars[j] == "." && j + 1 < chars.count && chars[j + 1].isASCIIDigit {
                j += 1
            } else if chars[j] == "," && j + 3 < chars.count + 1
                && (1...3).allSatisfy({ j + $0 < chars.count && chars[j + $0].isASCIIDigit })
                && (j + 4 >= chars.count || !chars[j + 4].isASCIIDigit)
            {
                j += 4
            } else if chars[j] == "/" && j + 1 < chars.count && chars[j + 1].isASCIIDigit {
                j += 1
            } else {
                break
            }
        }
        if j < chars.count && chars[j] == "%" { j += 1 }
        best = String(chars[start..<j])
        i = j
    }
    return best
}

private func fracToken(_ chars: [Character], _ i: Int) -> (String, Int)? {
    for command in ["\\frac", "\\dfrac", "\\tfrac"] {
        guard i + command.count <= chars.count, String(chars[i..<(i + command.count)]) == command else {
            continue
        }
        var j = i + command.count
        var parts: [String] = []
        while parts.count < 2 {
            guard j < chars.count, chars[j] == "{",
                let close = chars[j...].firstIndex(of: "}")
            else { return nil }
            parts.append(String(chars[(j + 1)..<close]))
            j = close + 1
        }
        var start = i
        if start > 0 && chars[start - 1] == "-" { start -= 1 }
        return (String(chars[start..<j]), j)
    }
    return nil
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// Removes what does not change an answer's value: `$`, `\$`, `\text{...}` wrappers, `\left`,
/// `\right`, `\!`, `\,`, spaces, a final period, and `\%` (kept as `%`).
func normalizeAnswer(_ text: String) -> String {
    var s = text.trimmingWhitespace
    for (from, to) in [
        ("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\%", "%"),
        ("\\$", ""), ("$", ""), ("^\\circ", ""), ("^{\\circ}", ""), ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
    ] {
        s = s.replacingOccurrences(of: from, with: to)
    }
    while let range = s.range(of: "\\text{") ?? s.range(of: "\\mathrm{") ?? s.range(of: "\\textbf{") {
        guard let close = s[range.upperBound...].firstIndex(of: "}") else { break }
        s = String(s[..<range.lowerBound]) + s[range.upperBound..<close] + s[s.index(after: close)...]
    }
    s = String(s.unicodeScalars.filter { !$0.properties.isWhitespace })
    while s.hasSuffix(".") { s.removeLast() }
    return s
}

/// Parses a whole normalized answer as a number, or nil.
func parseNumber(_ text: String) -> Number? {
    var s = Substring(text)
    var negative = false
    if s.hasPrefix("+") || s.hasPrefix("-") {
        negative = s.first == "-"
        s = s.dropFirst()
    }
    var value: Number
    if s.hasPrefix("\\frac{") {
        let body = s.dropFirst(6)
        guard let mid = body.range(of: "}{"), body.hasSuffix("}"),
            let n = parseNumber(String(body[..<mid.lowerBound])),
            let d = parseNumber(String(body[mid.upperBound..<body.index(before: body.endIndex)]))
        else { return nil }
        value = divide(n, d)
    } else if let slash = s.firstIndex(of: "/") {
        guard let n = parseDecimal(s[..<slash]), let d = parseDecimal(s[s.index(after: slash)...]) else {
            return nil
        }
        value = divide(n, d)
    } else if s.hasSuffix("%") {
        guard let whole = parseDecimal(s.dropLast()) else { return nil }
        value = divide(whole, .exact(Rational(100)))
    } else {
        guard let decimal = parseDecimal(s) else { return nil }
        value = decimal
    }
    if negative {
        switch value {
        case .exact(let r): value = .exact(-r)
        case .approximate(let d): value = .approximate(-d)
        }
    }
    return value
}

private func divide(_ n: Number, _ d: Number) -> Number {
    if case .exact(let a) = n, case .exact(let b) = d, let q = a / b { return .exact(q) }
    return .approximate(n.doubleValue / d.doubleValue)
}

/// Digits with optional thousands commas (groups of three) and an optional decimal part.
private func parseDecimal(_ text: Substring) -> Number? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count <= 2, !text.isEmpty else { return nil }
    var whole = String(parts[0])
    if whole.contains(",") {
        let groups = whole.split(separator: ",", omittingEmptySubsequences: false)
        guard groups.first!.count >= 1 && groups.first!.count <= 3,
            groups.dropFirst().allSatisfy({ $0.count == 3 })
        else { return nil }
        whole = groups.joined()
    }
    let fraction = parts.count == 2 ? String(parts[1]) : ""
    guard (whole + fraction).allSatisfy(\.isASCIIDigit), !(whole + fraction).isEmpty else { return nil }
    let digits = (whole + fraction).drop { $0 == "0" }
    if digits.count <= 17, fraction.count <= 17,
        let n = Int(digits.isEmpty ? "0" : String(digits)),
        let r = Rational(n, Int(pow10(fraction.count)))
    {
        return .exact(r)
    }
    return Double(whole + "." + (fraction.isEmpty ? "0" : fraction)).map { .approximate($0) }
}

private func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { acc, _ in acc * 10 } }
