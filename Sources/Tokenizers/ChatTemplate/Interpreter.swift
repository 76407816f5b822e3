import Foundation

/// A parsed chat template, rendered as transformers' `apply_chat_template` renders it with jinja2.
///
///     let template = try ChatTemplate(source)
///     let prompt = try template.render(["messages": .array(messages), "add_generation_prompt": .bool(true)])
public struct ChatTemplate: @unchecked Sendable {
    let nodes: [Node]

    public init(_ source: String) throws {
        // jinja2's keep_trailing_newline=False: one newline at the very end of the source is dropped.
        var text = source
        if let last = text.last, last.isNewline { text.removeLast() }  // "\r\n" is one Character
        nodes = try TemplateParser.parse(text)
    }

    /// Renders with `variables` (messages, tools, add_generation_prompt, bos_token, ...).
    public func render(_ variables: [String: Value]) throws -> String {
        var interpreter = Interpreter(globals: variables)
        var output = ""
        _ = try interpreter.run(nodes, into: &output)
        try interpreter.checkSize(output)
        return output
    }
}

enum Flow { case normal, breakLoop, continueLoop }

struct Interpreter {
    var scopes: [[String: Value]]
    /// Blocks and macro calls open now (bounded by `TemplateLimits.callDepth`).
    var depth = 0
    /// Loop iterations and macro calls so far (bounded by `TemplateLimits.steps`).
    var steps = 0

    init(globals: [String: Value]) { scopes = [globals] }

    func lookup(_ name: String) -> Value {
        for scope in scopes.reversed() { if let value = scope[name] { return value } }
        switch name {
        case "range", "namespace", "raise_exception", "strftime_now", "dict", "lipsum", "cycler", "joiner":
            return .function(name: name, receiver: nil)
        default:
            return .undefined
        }
    }

    mutating func assign(_ name: String, _ value: Value) { scopes[scopes.count - 1][name] = value }

    /// Counts one more nested block or macro call; past the limit, an error instead of a stack
    /// overflow.
    mutating func enter() throws {
        depth += 1
        if depth > TemplateLimits.callDepth {
            throw TemplateError(
                line: 0, column: 0,
                message:
                    "blocks and macro calls nested more than \(TemplateLimits.callDepth) deep (recursion?)")
        }
    }

    /// Counts one loop iteration or macro call.
    mutating func step() throws {
        steps += 1
        if steps > TemplateLimits.steps {
            throw TemplateError(
                line: 0, column: 0,
                message: "the template ran more than \(TemplateLimits.steps) loop iterations and macro calls")
        }
    }

    /// Refuses text past `TemplateLimits.outputBytes`.
    func checkSize(_ text: String) throws {
        if text.utf8.count > TemplateLimits.outputBytes {
            throw TemplateError(
                line: 0, column: 0,
                message: "the template's output grew past \(TemplateLimits.outputBytes >> 20) MiB")
        }
    }

    /// Refuses values nested past `TemplateLimits.nesting` (lists in lists, a namespace holding
    /// itself), which printing, comparing or freeing them would recurse through.
    func checkDepth(_ value: Value) throws -> Value {
        if nestingDepth(value, limit: TemplateLimits.nesting) > TemplateLimits.nesting {
            throw TemplateError(
                line: 0, column: 0,
                message: "a value nested more than \(TemplateLimits.nesting) deep (or holding itself)")
        }
        return value
    }

    /// Refuses strings and lists past the limits, as they are made.
    func checkValue(_ value: Value) throws -> Value {
        switch value {
        case .string(let s): try checkSize(s)
        case .array(let items) where items.count > TemplateLimits.listItems:
            throw TemplateError(
                line: 0, column: 0, message: "a list grew past \(TemplateLimits.listItems) items")
        case .array: return try checkDepth(value)
        default: break
        }
        return value
    }

    mutating func run(_ nodes: [Node], into output: inout String) throws -> Flow {
        try enter()
        defer { depth -= 1 }
        for node in nodes {
            switch node {
            case .text(let text):
                output += text
                try checkSize(output)
            case .output(let expression):
                output += try evaluate(expression).text
                try checkSize(output)
            case .ifBlock(let branches, let otherwise):
                var taken = false
                for (condition, body) in branches where try evaluate(condition).isTruthy {
                    taken = true
                    let flow = try run(body, into: &output)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try run(otherwise, into: &output)
                    if flow != .normal { return flow }
                }
            case .forLoop(let targets, let iterable, let filter, let body, let otherwise):
                try runLoop(targets, iterable, filter, body, otherwise, into: &output)
            case .set(let target, let attribute, let value):
                let result = try evaluate(value)
                if let attribute {
                    guard case .namespace(let ns) = lookup(target[0]) else {
                        throw TemplateError(
                            line: 0, column: 0,
                            message:
                                "cannot set attribute '\(attribute)' of '\(target[0])', which is not a namespace"
                        )
                    }
                    ns.values[attribute] = result
                    _ = try checkDepth(.namespace(ns))  // also catches a namespace that holds itself
                } else if target.count == 1 {
                    assign(target[0], result)
                } else {
                    let items = try iterate(result)
                    for (name, item) in zip(target, items) { assign(name, item) }
                }
            case .setBlock(let name, let body):
                var captured = ""
                _ = try run(body, into: &captured)
                assign(name, .string(captured))
            case .macro(let macro):
                assign(macro.name, .macro(macro))
            case .callBlock(let call, let body):
                scopes.append(["caller": .macro(Macro(name: "caller", parameters: [], body: body))])
                output += try evaluate(call).text
                scopes.removeLast()
                try checkSize(output)
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    private mutating func runLoop(
        _ targets: [String], _ iterable: Expression, _ filter: Expression?, _ body: [Node],
        _ otherwise: [Node],
        into output: inout String
    ) throws {
        var items = try iterate(try evaluate(iterable))
        if let filter {
            items = try items.filter { item in
                scopes.append([:])
                defer { scopes.removeLast() }
                try bind(targets, item)
                return try evaluate(filter).isTruthy
            }
        }
        if items.isEmpty {
            _ = try run(otherwise, into: &output)
            return
        }
        for (index, item) in items.enumerated() {
            try step()
            let loop = Object([
                ("index", .int(index + 1)), ("index0", .int(index)), ("first", .bool(index == 0)),
                ("last", .bool(index == items.count - 1)), ("length", .int(items.count)),
                ("revindex", .int(items.count - index)), ("revindex0", .int(items.count - index - 1)),
                ("previtem", index > 0 ? items[index - 1] : .undefined),
                ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined),
            ])
            scopes.append(["loop": .object(loop)])
            try bind(targets, item)
            let flow = try run(body, into: &output)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
    }

    private mutating func bind(_ targets: [String], _ item: Value) throws {
        if targets.count == 1 {
            assign(targets[0], item)
        } else {
            let parts = try iterate(item)
            for (k, name) in targets.enumerated() { assign(name, k < parts.count ? parts[k] : .undefined) }
        }
    }

    func iterate(_ value: Value) throws -> [Value] {
        switch value {
        case .array(let items): return items
        case .object(let object): return object.keys.map { .string($0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined: return []
        case .none: throw TemplateError(line: 0, column: 0, message: "'NoneType' object is not iterable")
        default: throw TemplateError(line: 0, column: 0, message: "\(value.repr) is not iterable")
        }
    }

    // MARK: - Expressions

    mutating func evaluate(_ expression: Expression) throws -> Value {
        switch expression {
        case .literal(let value): return value
        case .name(let name): return lookup(name)
        case .list(let items): return try checkDepth(.array(try items.map { try evaluate($0) }))
        case .splat: throw TemplateError(line: 0, column: 0, message: "*items is only allowed in a call")
        case .dict(let pairs):
            var object = Object()
            for (key, value) in pairs { object[try evaluate(key).text] = try evaluate(value) }
            return try checkDepth(.object(object))
        case .attribute(let base, let name):
            return attribute(try evaluate(base), name)
        case .item(let base, let index):
            return try item(try evaluate(base), try evaluate(index))
        case .slice(let base, let start, let stop, let step):
            return try slice(
                try evaluate(base), try start.map { try evaluate($0) }, try stop.map { try evaluate($0) },
                try step.map { try evaluate($0) })
        case .call(let callee, let args, let kwargs, let at):
            do {
                let function = try evaluate(callee)
                let (values, named) = try evaluateArguments(args, kwargs)
                return try checkValue(try call(function, values, named))
            } catch let error as TemplateError where error.line == 0 {
                throw TemplateError(line: at.0, column: at.1, message: error.message)
            }
        case .filter(let base, let name, let args, let kwargs, let at):
            let value = try evaluate(base)
            do {
                let (values, named) = try evaluateArguments(args, kwargs)
                return try checkValue(
                    try applyFilter(name, value, values, Dictionary(named, uniquingKeysWith: { _, b in b })))
            } catch let error as TemplateError where error.line == 0 {
                throw TemplateError(line: at.0, column: at.1, message: error.message)
            }
        case .test(let base, let name, let args, let negated, let at):
            let value = try evaluate(base)
            let values = try args.map { try evaluate($0) }
            do {
                return .bool(try applyTest(name, value, values) != negated)
            } catch let error as TemplateError where error.line == 0 {
                throw TemplateError(line: at.0, column: at.1, message: error.message)
            }
        case .unary(let op, let operand):
            let value = try evaluate(operand)
            switch op {
            case "not": return .bool(!value.isTruthy)
            case "-":
                if case .int(let i) = value {
                    guard i != .min else {
                        throw TemplateError(line: 0, column: 0, message: "-(\(i)) does not fit in 64 bits")
                    }
                    return .int(-i)
                }
                if case .double(let d) = value { return .double(-d) }
                throw TemplateError(line: 0, column: 0, message: "cannot negate \(value.repr)")
            default: return value
            }
        case .binary(let op, let lhs, let rhs, let at):
            if op == "and" {
                let left = try evaluate(lhs)
                return left.isTruthy ? try evaluate(rhs) : left
            }
            if op == "or" {
                let left = try evaluate(lhs)
                return left.isTruthy ? left : try evaluate(rhs)
            }
            do {
                return try checkValue(try binary(op, try evaluate(lhs), try evaluate(rhs)))
            } catch let error as TemplateError where error.line == 0 {
                throw TemplateError(line: at.0, column: at.1, message: error.message)
            }
        case .conditional(let value, let condition, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(value) }
            return try otherwise.map { try evaluate($0) } ?? .undefined
        }
    }

    /// A call's arguments, with `*items` spread into positional ones and `**mapping` into named ones.
    mutating func evaluateArguments(_ args: [Expression], _ kwargs: [(String, Expression)]) throws -> (
        [Value], [(String, Value)]
    ) {
        var values: [Value] = []
        for arg in args {
            if case .splat(let inner) = arg {
                values += try iterate(try evaluate(inner))
            } else {
                values.append(try evaluate(arg))
            }
        }
        var named: [(String, Value)] = []
        for (key, expression) in kwargs {
            let value = try evaluate(expression)
            guard key == "**" else {
                named.append((key, value))
                continue
            }
            guard case .object(let object) = value else {
                throw TemplateError(line: 0, column: 0, message: "**\(value.repr) is not a mapping")
            }
            named += object.pairs.map { ($0.key, $0.value) }
        }
        return (values, named)
    }

    func attribute(_ base: Value, _ name: String) -> Value {
        switch base {
        case .object(let object):
            if ["items", "keys", "values", "get"].contains(name) {
                return .function(name: name, receiver: base)
            }
            return object[name] ?? .undefined
        case .namespace(let ns): return ns.values[name] ?? .undefined
        case .string:
            // jinja2: an attribute a str does not have is undefined, not a callable.
            return Self.stringMethods.contains(name) ? .function(name: name, receiver: base) : .undefined
        default:
            return .undefined
        }
    }

    func item(_ base: Value, _ index: Value) throws -> Value {
        switch (base, index) {
        case (.array(let items), .int(let i)):
            let k = i < 0 ? items.count + i : i
            return items.indices.contains(k) ? items[k] : .undefined
        case (.string(let s), .int(let i)):
            let chars = Array(s)
            let k = i < 0 ? chars.count + i : i
            return chars.indices.contains(k) ? .string(String(chars[k])) : .undefined
        case (.object(let object), .string(let key)):
            return object[key] ?? .undefined
        case (.namespace(let ns), .string(let key)):
            return ns.values[key] ?? .undefined
        case (.object, _), (.undefined, _), (.none, _):
            return .undefined
        default:
            if case .string(let name) = index { return attribute(base, name) }
            return .undefined
        }
    }

    func slice(_ base: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws -> Value {
        func int(_ v: Value?) -> Int? { if case .int(let i) = v { return i } else { return nil } }
        let elements: [Value]
        switch base {
        case .array(let items): elements = items
        case .string(let s): elements = s.map { .string(String($0)) }
        default: return .undefined
        }
        let n = elements.count
        let by = int(step) ?? 1
        guard by != 0 else { throw TemplateError(line: 0, column: 0, message: "slice step cannot be zero") }
        func clamp(_ v: Int?, _ fallback: Int) -> Int {
            guard var v else { return fallback }
            if v < 0 { v += n }
            return by > 0 ? min(max(v, 0), n) : min(max(v, -1), n - 1)
        }
        var picked: [Value] = []
        var k = clamp(int(start), by > 0 ? 0 : n - 1)
        let end = clamp(int(stop), by > 0 ? n : -1)
        while by > 0 ? k < end : k > end {
            picked.append(elements[k])
            let (next, overflow) = k.addingReportingOverflow(by)
            if overflow { break }
            k = next
        }
        if case .string = base { return .string(picked.map(\.text).joined()) }
        return .array(picked)
    }
}

extension Flow: Equatable {}

/// How deep lists, mappings and namespaces nest in `value`, counted up to `limit + 1` (the walk stops
/// there, so a namespace that holds itself ends too).
func nestingDepth(_ value: Value, limit: Int) -> Int {
    guard limit >= 0 else { return 1 }
    let children: [Value]
    switch value {
    case .array(let items): children = items
    case .object(let object): children = object.pairs.map(\.value)
    case .namespace(let ns): children = ns.values.pairs.map(\.value)
    default: return 0
    }
    var deepest = 0
    for child in children {
        switch child {
        case .array, .object, .namespace:
            deepest = max(deepest, nestingDepth(child, limit: limit - 1))
            if deepest > limit { return deepest + 1 }
        default: continue
        }
    }
    return deepest + 1
}
