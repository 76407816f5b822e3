/// A statement of a parsed template.
indirect enum Node {
    case text(String)
    case output(Expression)
    case ifBlock(branches: [(Expression, [Node])], otherwise: [Node])
    case forLoop(
        targets: [String], iterable: Expression, filter: Expression?, body: [Node], otherwise: [Node])
    case set(target: [String], attribute: String?, value: Expression)
    case setBlock(name: String, body: [Node])
    case macro(Macro)
    case callBlock(call: Expression, body: [Node])
    case breakLoop, continueLoop
}

/// An expression; `at` is (line, column) for errors.
indirect enum Expression {
    case literal(Value)
    case name(String)
    case list([Expression])
    case dict([(Expression, Expression)])
    case attribute(Expression, String)
    case item(Expression, Expression)
    case slice(Expression, Expression?, Expression?, Expression?)
    case call(Expression, [Expression], [(String, Expression)], at: (Int, Int))
    case filter(Expression, String, [Expression], [(String, Expression)], at: (Int, Int))
    case test(Expression, String, [Expression], negated: Bool, at: (Int, Int))
    case unary(String, Expression)
    case binary(String, Expression, Expression, at: (Int, Int))
    case conditional(Expression, condition: Expression, otherwise: Expression?)
}

/// Parses lexed segments into statements.
struct TemplateParser {
    private let segments: [Segment]
    private var index = 0

    init(_ segments: [Segment]) { self.segments = segments }

    static func parse(_ template: String) throws -> [Node] {
        var parser = TemplateParser(try lexTemplate(template))
        let (nodes, end) = try parser.parseBlock(until: [])
        if let (keyword, line, column) = end {
            throw TemplateError(line: line, column: column, message: "unexpected '\(keyword)'")
        }
        return nodes
    }

    /// Parses until a statement starting with one of `keywords`; returns it (its keyword and tokens).
    private mutating func parseBlock(until keywords: Set<String>) throws -> ([Node], (String, Int, Int)?) {
        var nodes: [Node] = []
        while index < segments.count {
            let segment = segments[index]
            index += 1
            switch segment {
            case .text(let text):
                nodes.append(.text(text))
            case .output(let source, let line, let column):
                var expression = ExpressionParser(
                    try tokenizeExpression(source, line: line, column: column), line: line, column: column)
                nodes.append(.output(try expression.parseComplete()))
            case .statement(let source, let line, let column):
                var tokens = ExpressionParser(
                    try tokenizeExpression(source, line: line, column: column), line: line, column: column)
                guard case .name(let keyword) = tokens.peek else {
                    throw TemplateError(line: line, column: column, message: "expected a statement name")
                }
                if keywords.contains(keyword) {
                    index -= 1
                    return (nodes, (keyword, line, column))
                }
                tokens.advance()
                nodes.append(try parseStatement(keyword, &tokens, line: line, column: column))
            }
        }
        return (nodes, nil)
    }

    private mutating func expectEnd(_ keyword: String, line: Int, column: Int) throws {
        guard case .statement(let source, let l, let c) = segments[index] else { return }
        let tokens = try tokenizeExpression(source, line: l, column: c)
        guard tokens.count == 2, tokens[0].0 == .name(keyword) else {
            throw TemplateError(line: l, column: c, message: "expected '\(keyword)'")
        }
        index += 1
    }

    /// The tokens of the statement at `index` (which must be a statement), past its keyword.
    private mutating func takeStatement() throws -> ExpressionParser {
        guard case .statement(let source, let line, let column) = segments[index] else {
            preconditionFailure()
        }
        index += 1
        var parser = ExpressionParser(
            try tokenizeExpression(source, line: line, column: column), line: line, column: column)
        parser.advance()
        return parser
    }

    private mutating func parseStatement(
        _ keyword: String, _ tokens: inout ExpressionParser, line: Int, column: Int
    )
        throws -> Node
    {
        func missing(_ end: String) -> TemplateError {
            TemplateError(line: line, column: column, message: "'\(keyword)' without a matching '\(end)'")
        }
        switch keyword {
        case "if":
            var branches: [(Expression, [Node])] = []
            var condition = try tokens.parseComplete()
            var otherwise: [Node] = []
            while true {
                let (body, end) = try parseBlock(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard let (next, _, _) = end else { throw missing("endif") }
                var statement = try takeStatement()
                if next == "elif" {
                    condition = try statement.parseComplete()
                    continue
                }
                if next == "else" {
                    try statement.expectEnd()
                    let (rest, final) = try parseBlock(until: ["endif"])
                    guard final != nil else { throw missing("endif") }
                    _ = try takeStatement()
                    otherwise = rest
                }
                break
            }
            return .ifBlock(branches: branches, otherwise: otherwise)
        case "for":
            var targets = [try tokens.expectName()]
            while tokens.peek == .symbol(",") {
                tokens.advance()
                targets.append(try tokens.expectName())
            }
            try tokens.expectName("in")
            let iterable = try tokens.parseExpression(allowConditional: false)
            var filter: Expression?
            if tokens.peek == .name("if") {
                tokens.advance()
                filter = try tokens.parseExpression(allowConditional: false)
            }
            try tokens.expectEnd()
            let (body, end) = try parseBlock(until: ["else", "endfor"])
            guard let (next, _, _) = end else { throw missing("endfor") }
            _ = try takeStatement()
            var otherwise: [Node] = []
            if next == "else" {
                let (rest, final) = try parseBlock(until: ["endfor"])
                guard final != nil else { throw missing("endfor") }
                _ = try takeStatement()
                otherwise = rest
            }
            return .forLoop(
                targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
        case "set":
            var target = [try tokens.expectName()]
            var attribute: String?
            if tokens.peek == .symbol(".") {
                tokens.advance()
                attribute = try tokens.expectName()
            }
            while tokens.peek == .symbol(",") {
                tokens.advance()
                target.append(try tokens.expectName())
            }
            if tokens.peek == .end {
                let (body, end) = try parseBlock(until: ["endset"])
                guard end != nil else { throw missing("endset") }
                _ = try takeStatement()
                return .setBlock(name: target[0], body: body)
            }
            try tokens.expectSymbol("=")
            return .set(target: target, attribute: attribute, value: try tokens.parseComplete())
        case "macro":
            let name = try tokens.expectName()
            try tokens.expectSymbol("(")
            var parameters: [(String, Expression?)] = []
            while tokens.peek != .symbol(")") {
                let parameter = try tokens.expectName()
                var defaultValue: Expression?
                if tokens.peek == .symbol("=") {
                    tokens.advance()
                    defaultValue = try tokens.parseExpression()
                }
                parameters.append((parameter, defaultValue))
                if tokens.peek == .symbol(",") { tokens.advance() } else { break }
            }
            try tokens.expectSymbol(")")
            try tokens.expectEnd()
            let (body, end) = try parseBlock(until: ["endmacro"])
            guard end != nil else { throw missing("endmacro") }
            _ = try takeStatement()
            return .macro(Macro(name: name, parameters: parameters, body: body))
        case "call":
            let call = try tokens.parseComplete()
            let (body, end) = try parseBlock(until: ["endcall"])
            guard end != nil else { throw missing("endcall") }
            _ = try takeStatement()
            return .callBlock(call: call, body: body)
        case "generation":
            // transformers' AssistantTracker extension: marks assistant text; renders its body.
            try tokens.expectEnd()
            let (body, end) = try parseBlock(until: ["endgeneration"])
            guard end != nil else { throw missing("endgeneration") }
            _ = try takeStatement()
            return .ifBlock(branches: [(.literal(.bool(true)), body)], otherwise: [])
        case "break":
            try tokens.expectEnd()
            return .breakLoop
        case "continue":
            try tokens.expectEnd()
            return .continueLoop
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endcall", "endgeneration":
            throw TemplateError(
                line: line, column: column, message: "unexpected '\(keyword)' with no open block")
        default:
            throw TemplateError(line: line, column: column, message: "unknown statement '\(keyword)'")
        }
    }
}

/// Recursive-descent parser for expressions, with jinja2's precedence (lowest first):
/// conditional, or, and, not, comparisons / in / is, ~, + -, * / // %, **, unary -, postfix
/// (attributes, items, calls, filters, tests).
struct ExpressionParser {
    private var tokens: [(ExpressionToken, Int)]
    private var position = 0
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

    mutating func parseExpression(allowConditional: Bool = true) throws -> Expression {
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

    private mutating func parseOr() throws -> Expression {
        var left = try parseAnd()
        while peek == .name("or") {
            let at = here
            advance()
            left = .binary("or", left, try parseAnd(), at: at)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expression {
        var left = try parseNot()
        while peek == .name("and") {
            let at = here
            advance()
            left = .binary("and", left, try parseNot(), at: at)
        }
        return left
    }

    private mutating func parseNot() throws -> Expression {
        if peek == .name("not") {
            advance()
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

    private mutating func parseConcat() throws -> Expression {
        var left = try parseAdditive()
        while peek == .symbol("~") {
            let at = here
            advance()
            left = .binary("~", left, try parseAdditive(), at: at)
        }
        return left
    }

    private mutating func parseAdditive() throws -> Expression {
        var left = try parseMultiplicative()
        while case .symbol(let op) = peek, op == "+" || op == "-" {
            let at = here
            advance()
            left = .binary(op, left, try parseMultiplicative(), at: at)
        }
        return left
    }

    private mutating func parseMultiplicative() throws -> Expression {
        var left = try parsePower()
        while case .symbol(let op) = peek, ["*", "/", "//", "%"].contains(op) {
            let at = here
            advance()
            left = .binary(op, left, try parsePower(), at: at)
        }
        return left
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
            return try parsePostfix(.unary(op, try parseUnary()))
        }
        return try parsePostfix(try parsePrimary())
    }

    private mutating func parsePrimary() throws -> Expression {
        let token = peek
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
            position -= 1
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
            if case .name(let key) = peek, position + 1 < tokens.count, tokens[position + 1].0 == .symbol("=")
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
