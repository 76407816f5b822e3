/// Recursive-descent parser for expressions, with jinja2's precedence (lowest first):
/// conditional, or, and, not, comparisons / in / is, ~, + -, * / // %, **, unary -, postfix
/// (attributes, items, calls, filters, tests).
struct ExpressionParser {
    private var tokens: [(ExpressionToken, Int)]
    private var position = 0
    private var depth = 0
    let line: Int
    let column: Int

    init(_ tokens: [(ExpressionToken, Int)], line: Int, column: Int) {
        self.tokens = tokens
        self.line = line
        self.column = column
    }

    var peek: ExpressionToken { tokens[position].0 }
    var here: (Int, Int) { (line, column + 3 + tokens[position].1) }

    mutating func advance() { if position < tokens.count - 1 { position += 1 } }

    func error(_ message: String) -> TemplateError {
        TemplateError(line: line, column: column + 3 + tokens[position].1, message: message)
    }

    mutating func expectEnd() throws { if peek != .end { throw error("unexpected \(describe(peek))") } }

    mutating func expectName(_ name: String? = nil) throws -> String {
        guard case .name(let found) = peek, name == nil || found == name else {
            throw error("expected \(name.map { "'\($0)'" } ?? "a name"), got \(describe(peek))")
        }
        advance()
        return found
    }

    mutating func expectSymbol(_ symbol: String) throws {
        guard peek == .symbol(symbol) else { throw error("expected '\(symbol)', got \(describe(peek))") }
        advance()
    }

    mutating func parseComplete() throws -> Expression {
        let expression = try parseExpression()
        try expectEnd()
        return expression
    }

    /// Counts one level of nesting; past the limit, an error (a recursive parser must not overflow).
    private mutating func enter() throws {
        depth += 1
        if depth > TemplateLimits.nesting {
            throw error("expression nested more than \(TemplateLimits.nesting) deep")
        }
    }

    mutating func parseExpression(allowConditional: Bool = true) throws -> Expression {
        try enter()
        defer { depth -= 1 }
        let value = try parseOr()
        guard allowConditional, peek == .name("if") else { return value }
        advance()
        let condition = try parseOr()
        var otherwise: Expression?
        if peek == .name("else") {
            advance()
            otherwise = try parseExpression()
        }
        return .conditional(value, condition: condition, otherwise: otherwise)
    }

    /// One left-associative level: `next (op next)*` for the operators in `operators`.
    private mutating func parseLevel(
        _ operators: Set<ExpressionToken>, _ next: (inout ExpressionParser) throws -> Expression
    ) throws -> Expression {
        var left = try next(&self)
        while operators.contains(peek) {
            let at = here
            let op: String
            switch peek {
            case .name(let word): op = word
            case .symbol(let symbol): op = symbol
            default: preconditionFailure("operators are names or symbols")
            }
            advance()
            left = .binary(op, left, try next(&self), at: at)
        }
        return left
    }

    private mutating func parseOr() throws -> Expression {
        try parseLevel([.name("or")]) { try $0.parseAnd() }
    }
    private mutating func parseAnd() throws -> Expression {
        try parseLevel([.name("and")]) { try $0.parseNot() }
    }
    private mutating func parseConcat() throws -> Expression {
        try parseLevel([.symbol("~")]) { try $0.parseAdditive() }
    }
    private mutating func parseAdditive() throws -> Expression {
        try parseLevel([.symbol("+"), .symbol("-")]) { try $0.parseMultiplicative() }
    }
    private mutating func parseMultiplicative() throws -> Expression {
        try parseLevel([.symbol("*"), .symbol("/"), .symbol("//"), .symbol("%")]) { try $0.parsePower() }
    }

    private mutating func parseNot() throws -> Expression {
        if peek == .name("not") {
            advance()
            try enter()
            defer { depth -= 1 }
            return .unary("not", try parseNot())
        }
        return try parseComparison()
    }

    /// Comparisons chain as in Python: `a < b <= c` is `a < b and b <= c`.
    private mutating func parseComparison() throws -> Expression {
        var operands = [try parseConcat()]
        var operators: [(String, (Int, Int))] = []
        while true {
            let at = here
            if case .symbol(let op) = peek, ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                advance()
                operators.append((op, at))
            } else if peek == .name("in") {
                advance()
                operators.append(("in", at))
            } else if peek == .name("not"), position + 1 < tokens.count, tokens[position + 1].0 == .name("in")
            {
                advance()
                advance()
                operators.append(("not in", at))
            } else {
                break
            }
            operands.append(try parseConcat())
        }
        guard !operators.isEmpty else { return operands[0] }
        var result = Expression.binary(operators[0].0, operands[0], operands[1], at: operators[0].1)
        for k in 1..<operators.count {
            let next = Expression.binary(operators[k].0, operands[k], operands[k + 1], at: operators[k].1)
            result = .binary("and", result, next, at: operators[k].1)
        }
        return result
    }

    private mutating func parsePower() throws -> Expression {
        let left = try parseUnary()
        if peek == .symbol("**") {
            let at = here
            advance()
            return .binary("**", left, try parseUnary(), at: at)
        }
        return left
    }

    private mutating func parseUnary() throws -> Expression {
        if peek == .symbol("-") || peek == .symbol("+") {
            let op = peek == .symbol("-") ? "-" : "+"
            advance()
            try enter()
            defer { depth -= 1 }
            return try parsePostfix(.unary(op, try parseUnary()))
        }
        return try parsePostfix(try parsePrimary())
    }

    private mutating func parsePrimary() throws -> Expression {
        let token = peek
        let start = position
        advance()
        switch token {
        case .string(var text):
            while case .string(let more) = peek {  // adjacent literals concatenate, as in Python
                text += more
                advance()
            }
            return .literal(.string(text))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(name)
            }
        case .symbol("("):
            let inner = try parseExpression()
            if peek == .symbol(",") {  // a tuple: treated as a list
                var items = [inner]
                while peek == .symbol(",") {
                    advance()
                    if peek == .symbol(")") { break }
                    items.append(try parseExpression())
                }
                try expectSymbol(")")
                return .list(items)
            }
            try expectSymbol(")")
            return inner
        case .symbol("["):
            var items: [Expression] = []
            while peek != .symbol("]") {
                items.append(try parseExpression())
                if peek == .symbol(",") { advance() } else { break }
            }
            try expectSymbol("]")
            return .list(items)
        case .symbol("{"):
            var pairs: [(Expression, Expression)] = []
            while peek != .symbol("}") {
                let key = try parseExpression()
                try expectSymbol(":")
                pairs.append((key, try parseExpression()))
                if peek == .symbol(",") { advance() } else { break }
            }
            try expectSymbol("}")
            return .dict(pairs)
        default:
            position = start
            throw error("unexpected \(describe(token))")
        }
    }

    private mutating func parsePostfix(_ base: Expression) throws -> Expression {
        var value = base
        while true {
            let at = here
            switch peek {
            case .symbol("."):
                advance()
                if case .int(let i) = peek {
                    advance()
                    value = .item(value, .literal(.int(i)))
                } else {
                    value = .attribute(value, try expectName())
                }
            case .symbol("["):
                advance()
                var parts: [Expression?] = [nil]
                var colons = 0
                while peek != .symbol("]") {
                    if peek == .symbol(":") {
                        advance()
                        colons += 1
                        parts.append(nil)
                    } else {
                        parts[parts.count - 1] = try parseExpression()
                    }
                }
                try expectSymbol("]")
                if colons == 0 {
                    guard let index = parts[0] else { throw error("expected an index") }
                    value = .item(value, index)
                } else {
                    value = .slice(value, parts[0], parts[1], parts.count > 2 ? parts[2] : nil)
                }
            case .symbol("("):
                advance()
                let (args, kwargs) = try parseArguments()
                value = .call(value, args, kwargs, at: at)
            case .symbol("|"):
                advance()
                let name = try expectName()
                var (args, kwargs): ([Expression], [(String, Expression)]) = ([], [])
                if peek == .symbol("(") {
                    advance()
                    (args, kwargs) = try parseArguments()
                }
                value = .filter(value, name, args, kwargs, at: at)
            case .name("is"):
                advance()
                var negated = false
                if peek == .name("not") {
                    advance()
                    negated = true
                }
                let name = try expectName()
                var args: [Expression] = []
                if peek == .symbol("(") {
                    advance()
                    args = try parseArguments().0
                } else if case .name(let word) = peek,
                    !["and", "or", "else", "if", "in", "not", "is"].contains(word)
                {
                    args = [try parsePrimary()]
                } else if case .string = peek {
                    args = [try parsePrimary()]
                } else if case .int = peek {
                    args = [try parsePrimary()]
                }
                value = .test(value, name, args, negated: negated, at: at)
            default:
                return value
            }
        }
    }

    private mutating func parseArguments() throws -> ([Expression], [(String, Expression)]) {
        var args: [Expression] = []
        var kwargs: [(String, Expression)] = []
        while peek != .symbol(")") {
            if peek == .symbol("*") {
                advance()
                args.append(.splat(try parseExpression()))
            } else if peek == .symbol("**") {
                advance()
                kwargs.append(("**", try parseExpression()))
            } else if case .name(let key) = peek, position + 1 < tokens.count,
                tokens[position + 1].0 == .symbol("=")
            {
                advance()
                advance()
                kwargs.append((key, try parseExpression()))
            } else {
                args.append(try parseExpression())
            }
            if peek == .symbol(",") { advance() } else { break }
        }
        try expectSymbol(")")
        return (args, kwargs)
    }
}

func describe(_ token: ExpressionToken) -> String {
    switch token {
    case .name(let n): "'\(n)'"
    case .string(let s): "string \(pythonStringRepr(s))"
    case .int(let i): "\(i)"
    case .double(let d): "\(d)"
    case .symbol(let s): "'\(s)'"
    case .end: "end of tag"
    }
}
