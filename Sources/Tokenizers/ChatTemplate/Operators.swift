import Foundation

// Python's operators on template values: comparison, membership, concatenation and arithmetic,
// with Python's integer semantics within 64 bits.

extension Interpreter {
    func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        switch op {
        case "==": return .bool(equal(a, b))
        case "!=": return .bool(!equal(a, b))
        case "<", ">", "<=", ">=":
            let order = try compare(a, b)
            switch op {
            case "<": return .bool(order < 0)
            case ">": return .bool(order > 0)
            case "<=": return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case "in", "not in":
            let found: Bool
            switch b {
            case .string(let s): found = s.contains(a.text) || a.text.isEmpty
            case .array(let items): found = items.contains { equal($0, a) }
            case .object(let object): found = object[a.text] != nil
            case .undefined: found = false
            default:
                throw TemplateError(
                    line: 0, column: 0, message: "argument of type \(b.typeName) is not iterable ('in')")
            }
            return .bool(op == "in" ? found : !found)
        case "~": return .string(a.text + b.text)
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.array(let x), .array(let y)): return .array(x + y)
            default: return try arithmetic(op, a, b)
            }
        case "*":
            if case .string(let s) = a, case .int(let n) = b {
                guard n <= 0 || s.utf8.count <= TemplateLimits.outputBytes / n else {
                    throw TemplateError(
                        line: 0, column: 0,
                        message:
                            "a string repeated \(n) times would pass \(TemplateLimits.outputBytes >> 20) MiB")
                }
                return .string(String(repeating: s, count: max(n, 0)))
            }
            return try arithmetic(op, a, b)
        default:
            return try arithmetic(op, a, b)
        }
    }

    func arithmetic(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        func number(_ v: Value) -> Double? {
            switch v {
            case .int(let i): Double(i)
            case .double(let d): d
            case .bool(let b): b ? 1 : 0
            default: nil
            }
        }
        guard let x = number(a), let y = number(b) else {
            throw TemplateError(
                line: 0, column: 0, message: "unsupported operands for \(op): \(a.repr) and \(b.repr)")
        }
        if case .int(let i) = a, case .int(let j) = b, op != "/" { return try integerArithmetic(op, i, j) }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/":
            guard y != 0 else { throw TemplateError(line: 0, column: 0, message: "division by zero") }
            return .double(x / y)
        case "//":
            guard y != 0 else { throw TemplateError(line: 0, column: 0, message: "division by zero") }
            return .double((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw TemplateError(line: 0, column: 0, message: "modulo by zero") }
            return .double(x - y * (x / y).rounded(.down))
        case "**": return .double(pow(x, y))
        default: throw TemplateError(line: 0, column: 0, message: "unknown operator \(op)")
        }
    }

    /// Python's integer operators; a result past 64 bits is an error (Python's integers are unbounded).
    func integerArithmetic(_ op: String, _ x: Int, _ y: Int) throws -> Value {
        let tooLarge = TemplateError(
            line: 0, column: 0, message: "integer result of \(x) \(op) \(y) does not fit in 64 bits")
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> Value {
            if result.overflow { throw tooLarge }
            return .int(result.partialValue)
        }
        switch op {
        case "+": return try checked(x.addingReportingOverflow(y))
        case "-": return try checked(x.subtractingReportingOverflow(y))
        case "*": return try checked(x.multipliedReportingOverflow(by: y))
        case "//", "%":
            guard y != 0 else {
                throw TemplateError(
                    line: 0, column: 0, message: op == "%" ? "modulo by zero" : "division by zero")
            }
            if x == .min && y == -1 { throw tooLarge }
            var (quotient, remainder) = x.quotientAndRemainder(dividingBy: y)
            if remainder != 0 && (remainder < 0) != (y < 0) {  // floor, as Python
                quotient -= 1
                remainder += y
            }
            return .int(op == "//" ? quotient : remainder)
        case "**":
            if y < 0 { return .double(pow(Double(x), Double(y))) }
            var result = 1
            var base = x
            var exponent = y
            while exponent > 0 {
                if exponent & 1 == 1 {
                    let (r, o) = result.multipliedReportingOverflow(by: base)
                    if o { throw tooLarge }
                    result = r
                }
                exponent >>= 1
                if exponent > 0 {
                    let (b, o) = base.multipliedReportingOverflow(by: base)
                    if o { throw tooLarge }
                    base = b
                }
            }
            return .int(result)
        default: throw TemplateError(line: 0, column: 0, message: "unknown operator \(op)")
        }
    }

    func compare(_ a: Value, _ b: Value) throws -> Int {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        default:
            let numbers: (Double, Double)?
            switch (a, b) {
            case (.int(let x), .int(let y)): numbers = (Double(x), Double(y))
            case (.int(let x), .double(let y)): numbers = (Double(x), y)
            case (.double(let x), .int(let y)): numbers = (x, Double(y))
            case (.double(let x), .double(let y)): numbers = (x, y)
            default: numbers = nil
            }
            guard let (x, y) = numbers else {
                throw TemplateError(line: 0, column: 0, message: "cannot compare \(a.repr) with \(b.repr)")
            }
            return x < y ? -1 : (x == y ? 0 : 1)
        }
    }
}

func equal(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.bool(let x), .bool(let y)): return x == y
    case (.int(let x), .int(let y)): return x == y
    case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
    case (.double(let x), .double(let y)): return x == y
    case (.string(let x), .string(let y)): return x == y
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
    case (.object(let x), .object(let y)):
        return Set(x.keys) == Set(y.keys) && x.keys.allSatisfy { equal(x[$0]!, y[$0]!) }
    default: return false
    }
}
