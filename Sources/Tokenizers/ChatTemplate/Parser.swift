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
    /// `*items` among a call's arguments: the items become positional arguments.
    case splat(Expression)
}

/// How deep blocks, expressions and macro calls may nest, and how much a rendering may do.
///
/// Chat templates arrive inside downloaded model folders, so they are untrusted code. jinja2's sandbox,
/// which transformers uses, bounds `range()` at 100,000 items and Python bounds recursion; these
/// bound the rest, with an error naming the limit.
public enum TemplateLimits {
    /// Nested blocks (`if`, `for`, `macro`, ...) in the source, and nested brackets in an expression.
    public static let nesting = 100
    /// Nested macro calls and blocks while rendering (recursion).
    public static let callDepth = 200
    /// Items of one `range()`, as jinja2's sandbox (MAX_RANGE).
    public static let rangeItems = 100_000
    /// Loop iterations and macro calls in one rendering.
    public static let steps = 1_000_000
    /// UTF-8 bytes of the output, or of any string or list a template builds.
    public static let outputBytes = 16 << 20
    /// Items of any list a template builds.
    public static let listItems = 1_000_000
}

/// Parses lexed segments into statements.
struct TemplateParser {
    private let segments: [Segment]
    private var index = 0
    private var depth = 0

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
        depth += 1
        defer { depth -= 1 }
        if depth > TemplateLimits.nesting,
            case .statement(_, let line, let column)? = segments.dropFirst(index).first
        {
            throw TemplateError(
                line: line, column: column,
                message: "blocks nested more than \(TemplateLimits.nesting) deep")
        }
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
