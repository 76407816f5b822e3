import Tokenizers

/// TinyZero's Countdown reward: reach `target` with each of `nums` used exactly once.
///
/// The equation is the last `<answer>...</answer>`. Score 1.0 when it uses exactly the given
/// numbers (as a multiset), has only digits, `+ - * / ( ) .` and spaces, and evaluates to the target
/// within 1e-5; 0.1 (`formatScore`) when an answer is present but wrong in any of those ways (or
/// divides by zero); 0 when there is no answer. The equation is parsed and evaluated here, never
/// handed to an interpreter.
public final class CountdownReward: Reward {
    public let name = "countdown"
    public let requiredFields = ["target", "nums"]
    public let formatScore: Double

    public init(formatScore: Double = 0.1) { self.formatScore = formatScore }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        try batch.map { input in
            guard let target = input.fields["target"].flatMap(numberValue) else {
                throw RewardError.missingField(reward: name, field: "target", line: nil)
            }
            guard case .array(let list) = input.fields["nums"] ?? .none else {
                throw RewardError.missingField(reward: name, field: "nums", line: nil)
            }
            let numbers = list.compactMap(numberValue)
            guard let equation = lastTagged(input.completion, open: "<answer>", close: "</answer>") else {
                return 0
            }
            guard equation.allSatisfy({ $0.isASCIIDigit || "+-*/(). \t\n".contains($0) }),
                usedNumbers(equation).sorted() == numbers.sorted(),
                let value = evaluateArithmetic(equation)
            else { return formatScore }
            return abs(value - target) < 1e-5 ? 1 : formatScore
        }
    }

    public func fieldProblem(_ field: String, _ value: Value) -> String? {
        if field == "target" { return numberValue(value) == nil ? "a number" : nil }
        guard case .array(let items) = value, !items.isEmpty, items.allSatisfy({ numberValue($0) != nil })
        else {
            return "a non-empty list of numbers"
        }
        return nil
    }

    private func numberValue(_ value: Value) -> Double? {
        switch value {
        case .int(let i): Double(i)
        case .double(let d): d
        case .string(let s): Double(s.trimmingWhitespace)
        default: nil
        }
    }

    /// The integers written in the equation (runs of digits, as TinyZero's `\d+`).
    private func usedNumbers(_ equation: String) -> [Double] {
        equation.split(whereSeparator: { !$0.isASCIIDigit }).compactMap { Double(String($0)) }
    }
}

/// Evaluates `+ - * /` with parentheses and unary signs over decimal numbers; nil when malformed or
/// dividing by zero.
///
///     expression := term (('+' | '-') term)*
///     term       := factor (('*' | '/') factor)*
///     factor     := ('+' | '-') factor | number | '(' expression ')'
public func evaluateArithmetic(_ text: String) -> Double? {
    var parser = ArithmeticParser(chars: Array(text.filter { !$0.isWhitespace }))
    guard let value = parser.expression(depth: 0), parser.position == parser.chars.count else { return nil }
    return value.isFinite ? value : nil
}

private struct ArithmeticParser {
    let chars: [Character]
    var position = 0

    mutating func expression(depth: Int) -> Double? {
        guard depth < 200, var value = term(depth: depth) else { return nil }
        while position < chars.count, chars[position] == "+" || chars[position] == "-" {
            let op = chars[position]
            position += 1
            guard let rhs = term(depth: depth) else { return nil }
            value = op == "+" ? value + rhs : value - rhs
        }
        return value
    }

    mutating func term(depth: Int) -> Double? {
        guard var value = factor(depth: depth) else { return nil }
        while position < chars.count, chars[position] == "*" || chars[position] == "/" {
            let op = chars[position]
            position += 1
            guard let rhs = factor(depth: depth) else { return nil }
            if op == "/" && rhs == 0 { return nil }
            value = op == "*" ? value * rhs : value / rhs
        }
        return value
    }

    mutating func factor(depth: Int) -> Double? {
        guard position < chars.count, depth < 200 else { return nil }
        switch chars[position] {
        case "+", "-":
            let negative = chars[position] == "-"
            position += 1
            return factor(depth: depth + 1).map { negative ? -$0 : $0 }
        case "(":
            position += 1
            guard let value = expression(depth: depth + 1), position < chars.count, chars[position] == ")"
            else {
                return nil
            }
            position += 1
            return value
        default:
            let start = position
            while position < chars.count, chars[position].isASCIIDigit || chars[position] == "." {
                position += 1
            }
            return position > start ? Double(String(chars[start..<position])) : nil
        }
    }
}
