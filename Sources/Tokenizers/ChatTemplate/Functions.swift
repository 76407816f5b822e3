import Foundation

// Filters, tests, methods and global functions of chat templates: those jinja2 and transformers
// provide that real templates use.

extension Interpreter {
    func fail(_ message: String) -> TemplateError { TemplateError(line: 0, column: 0, message: message) }

    mutating func call(_ function: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        switch function {
        case .macro(let macro):
            try step()
            var scope: [String: Value] = [:]
            for (k, parameter) in macro.parameters.enumerated() {
                if k < args.count {
                    scope[parameter.name] = args[k]
                } else if let named = kwargs.first(where: { $0.0 == parameter.name }) {
                    scope[parameter.name] = named.1
                } else {
                    scope[parameter.name] = try parameter.defaultValue.map { try evaluate($0) } ?? .undefined
                }
            }
            scopes.append(scope)
            defer { scopes.removeLast() }
            var output = ""
            _ = try run(macro.body, into: &output)
            return .string(output)
        case .function(let name, let receiver?):
            return try method(name, receiver, args, kwargs)
        case .function(let name, nil):
            return try global(name, args, kwargs)
        default:
            throw fail("\(function.repr) is not callable")
        }
    }

    func global(_ name: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        switch name {
        case "range":
            let ints = args.compactMap { v -> Int? in if case .int(let i) = v { return i } else { return nil }
            }
            guard ints.count == args.count, (1...3).contains(ints.count) else {
                throw fail("range() takes 1 to 3 integers")
            }
            let (start, stop, step) =
                ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            guard step != 0 else { throw fail("range() step cannot be zero") }
            // Python's len(range(...)), computed without making the items (in Double: no overflow).
            let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
            let count = span <= 0 ? 0 : (span / Double(step.magnitude)).rounded(.up)
            guard count <= Double(TemplateLimits.rangeItems) else {
                throw fail(
                    "range too big: the sandbox allows at most \(TemplateLimits.rangeItems) items (as jinja2's)"
                )
            }
            return .array(Swift.stride(from: start, to: stop, by: step).map { .int($0) })
        case "namespace":
            var object = Object()
            if case .object(let initial)? = args.first { object = initial }
            for (key, value) in kwargs { object[key] = value }
            return try checkDepth(.namespace(Namespace(object)))
        case "dict":
            return .object(Object(kwargs))
        case "raise_exception":
            throw fail("raise_exception: \(args.first?.text ?? "")")
        case "strftime_now":
            guard case .string(let format)? = args.first else {
                throw fail("strftime_now() needs a format string")
            }
            var now = time(nil)
            var parts = tm()
            localtime_r(&now, &parts)
            var buffer = [Int8](repeating: 0, count: 256)
            let count = strftime(&buffer, buffer.count, format, &parts)
            return .string(String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        default:
            throw fail("unknown function '\(name)'")
        }
    }

    func method(_ name: String, _ receiver: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws
        -> Value
    {
        switch receiver {
        case .string(let s):
            return try stringMethod(name, s, args)
        case .object(let object):
            switch name {
            case "items": return .array(object.keys.map { .array([.string($0), object[$0]!]) })
            case "keys": return .array(object.keys.map { .string($0) })
            case "values": return .array(object.keys.map { object[$0]! })
            case "get": return object[args.first?.text ?? ""] ?? (args.count > 1 ? args[1] : .none)
            default: break
            }
        default:
            break
        }
        throw fail("\(receiver.repr.prefix(40)) has no method '\(name)'")
    }

    /// The str methods templates can call (others are undefined attributes, as in jinja2).
    static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize", "startswith", "endswith",
        "split",
        "replace", "find", "count", "join", "isdigit", "isspace", "splitlines", "isalpha", "isalnum",
        "islower",
        "isupper",
    ]

    func stringMethod(_ name: String, _ s: String, _ args: [Value]) throws -> Value {
        let characters: Set<Character>? = args.first.flatMap {
            if case .string(let c) = $0 { Set(c) } else { nil }
        }
        let strip = { (c: Character) in characters?.contains(c) ?? c.isWhitespace }
        switch name {
        case "strip": return .string(String(s.drop(while: strip).reversed().drop(while: strip).reversed()))
        case "lstrip": return .string(String(s.drop(while: strip)))
        case "rstrip": return .string(String(s.reversed().drop(while: strip).reversed()))
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "title": return .string(s.capitalized)
        case "capitalize": return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "startswith", "endswith":
            let options: [String]
            switch args.first {
            case .string(let p)?: options = [p]
            case .array(let list)?: options = list.map(\.text)
            default: throw fail("\(name)() needs a string")
            }
            return .bool(options.contains { name == "startswith" ? s.hasPrefix($0) : s.hasSuffix($0) })
        case "split":
            if case .string(let separator)? = args.first {
                var parts = s.components(separatedBy: separator)
                if case .int(let limit)? = args.dropFirst().first, limit >= 0, parts.count > limit + 1 {
                    parts = Array(parts[0..<limit]) + [parts[limit...].joined(separator: separator)]
                }
                return .array(parts.map { .string($0) })
            }
            return .array(s.split(whereSeparator: \.isWhitespace).map { .string(String($0)) })
        case "replace":
            guard args.count >= 2 else { throw fail("replace() needs two strings") }
            return .string(s.replacingOccurrences(of: args[0].text, with: args[1].text))
        case "find":
            guard let range = s.range(of: args.first?.text ?? "") else { return .int(-1) }
            return .int(s.distance(from: s.startIndex, to: range.lowerBound))
        case "count":
            let needle = args.first?.text ?? ""
            return .int(needle.isEmpty ? s.count + 1 : s.components(separatedBy: needle).count - 1)
        case "join":
            guard case .array(let items)? = args.first else { throw fail("join() needs a list") }
            return .string(items.map(\.text).joined(separator: s))
        case "isdigit": return .bool(!s.isEmpty && s.allSatisfy(\.isNumber))
        case "isspace": return .bool(!s.isEmpty && s.allSatisfy(\.isWhitespace))
        case "isalpha": return .bool(!s.isEmpty && s.allSatisfy(\.isLetter))
        case "isalnum": return .bool(!s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber })
        case "islower": return .bool(s.contains(where: \.isCased) && s == s.lowercased())
        case "isupper": return .bool(s.contains(where: \.isCased) && s == s.uppercased())
        case "splitlines":
            var lines = s.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(
                String.init)
            if lines.last == "" { lines.removeLast() }
            return .array(lines.map { .string($0) })
        default: throw fail("strings have no method '\(name)'")
        }
    }

    mutating func applyFilter(_ name: String, _ value: Value, _ args: [Value], _ kwargs: [String: Value])
        throws -> Value
    {
        switch name {
        case "trim":
            return .string(value.text.trimmingCharacters(in: .whitespacesAndNewlines))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.count)
            case .array(let a): return .int(a.count)
            case .object(let o): return .int(o.keys.count)
            case .undefined: return .int(0)
            default: throw fail("object of type \(value.typeName) has no len()")
            }
        case "lower": return .string(value.text.lowercased())
        case "upper": return .string(value.text.uppercased())
        case "capitalize": return try stringMethod("capitalize", value.text, [])
        case "title": return .string(value.text.capitalized)
        case "string": return .string(value.text)
        case "int":
            switch value {
            case .int: return value
            case .double(let d):
                guard let whole = Int(exactly: d.rounded(.towardZero)) else {
                    throw fail("cannot convert float \(pythonFloat(d)) to integer")
                }
                return .int(whole)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            case .bool(let b): return .int(b ? 1 : 0)
            default: return .int(0)
            }
        case "float":
            switch value {
            case .int(let i): return .double(Double(i))
            case .double: return value
            case .string(let s): return .double(Double(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            default: return .double(0)
            }
        case "abs":
            if case .int(let i) = value {
                guard i != .min else { throw fail("abs(\(i)) does not fit in 64 bits") }
                return .int(abs(i))
            }
            if case .double(let d) = value { return .double(abs(d)) }
            throw fail("abs needs a number")
        case "tojson":
            // transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
            // sort_keys=False), arguments by position or name.
            func argument(_ k: Int, _ name: String) -> Value? {
                kwargs[name] ?? (k < args.count ? args[k] : nil)
            }
            var indent: String?
            switch argument(1, "indent") {
            case .int(let i)?:
                guard i <= 1000 else { throw fail("tojson indent \(i) is past 1000") }
                indent = String(repeating: " ", count: max(i, 0))
            case .string(let s)?: indent = s
            case nil, .none?: indent = nil
            case let other?: throw fail("tojson indent must be an integer or a string, got \(other.repr)")
            }
            var separators: (item: String, key: String)?
            if let given = argument(2, "separators"), !given.isNone {
                guard case .array(let pair) = given, pair.count == 2, case .string(let item) = pair[0],
                    case .string(let key) = pair[1]
                else { throw fail("tojson separators must be two strings (item, key)") }
                separators = (item, key)
            }
            return .string(
                pythonJSON(
                    value, indent: indent, separators: separators,
                    sortKeys: argument(3, "sort_keys")?.isTruthy ?? false,
                    ensureASCII: argument(0, "ensure_ascii")?.isTruthy ?? false))
        case "default", "d":
            let fallback = args.first ?? .string("")
            let useOnFalsy = (args.count > 1 ? args[1] : kwargs["boolean"] ?? .bool(false)).isTruthy
            if !value.isDefined || (useOnFalsy && !value.isTruthy) { return fallback }
            return value
        case "join":
            let separator = args.first?.text ?? kwargs["d"]?.text ?? ""
            var items = try iterate(value)
            if case .string(let attribute)? = kwargs["attribute"] {
                items = items.map { self.attribute($0, attribute) }
            }
            return .string(items.map(\.text).joined(separator: separator))
        case "first": return try iterate(value).first ?? .undefined
        case "last": return try iterate(value).last ?? .undefined
        case "reverse":
            if case .string(let s) = value { return .string(String(s.reversed())) }
            return .array(try iterate(value).reversed())
        case "list": return .array(try iterate(value))
        case "replace":
            guard args.count >= 2 else { throw fail("replace needs two arguments") }
            return .string(value.text.replacingOccurrences(of: args[0].text, with: args[1].text))
        case "items":
            guard case .object(let object) = value else {
                if case .undefined = value { return .array([]) }
                throw fail("items needs a mapping")
            }
            return .array(object.keys.map { .array([.string($0), object[$0]!]) })
        case "dictsort":
            guard case .object(let object) = value else { throw fail("dictsort needs a mapping") }
            return .array(object.keys.sorted().map { .array([.string($0), object[$0]!]) })
        case "unique":
            var seen: [Value] = []
            for item in try iterate(value) where !seen.contains(where: { equal($0, item) }) {
                seen.append(item)
            }
            return .array(seen)
        case "map":
            let items = try iterate(value)
            if case .string(let attribute)? = kwargs["attribute"] {
                return .array(items.map { self.attribute($0, attribute) })
            }
            guard case .string(let filterName)? = args.first else {
                throw fail("map needs a filter name or attribute=")
            }
            return .array(try items.map { try applyFilter(filterName, $0, Array(args.dropFirst()), [:]) })
        case "select", "reject":
            let items = try iterate(value)
            let testName = args.first?.text
            return .array(
                try items.filter { item in
                    let passed =
                        try testName.map { try applyTest($0, item, Array(args.dropFirst())) } ?? item.isTruthy
                    return passed == (name == "select")
                })
        case "selectattr", "rejectattr":
            guard case .string(let attributeName)? = args.first else {
                throw fail("\(name) needs an attribute name")
            }
            let items = try iterate(value)
            return .array(
                try items.filter { item in
                    let field = self.attribute(item, attributeName)
                    let passed =
                        args.count > 1
                        ? try applyTest(args[1].text, field, Array(args.dropFirst(2))) : field.isTruthy
                    return passed == (name == "selectattr")
                })
        case "safe":
            return value
        case "round":
            let digits: Int = { if case .int(let i)? = args.first { return i } else { return 0 } }()
            let scale = pow(10.0, Double(digits))
            if case .int = value { return .double(Double(value.text)!) }
            if case .double(let d) = value { return .double((d * scale).rounded(.toNearestOrEven) / scale) }
            throw fail("round needs a number")
        case "wordcount":
            return .int(value.text.split(whereSeparator: \.isWhitespace).count)
        case "indent":
            let width: Int = {
                if case .int(let i)? = args.first ?? kwargs["width"] { return i } else { return 4 }
            }()
            let first = (args.count > 1 ? args[1] : kwargs["first"] ?? .bool(false)).isTruthy
            guard width <= 10_000 else { throw fail("indent width \(width) is past 10000") }
            let pad = String(repeating: " ", count: max(width, 0))
            let lines = value.text.components(separatedBy: "\n")
            return .string(
                lines.enumerated().map { k, line in
                    (k == 0 && !first) || line.isEmpty ? line : pad + line
                }.joined(separator: "\n"))
        default:
            throw fail("unknown filter '\(name)'")
        }
    }

    func applyTest(_ name: String, _ value: Value, _ args: [Value]) throws -> Bool {
        switch name {
        case "defined": return value.isDefined
        case "undefined": return !value.isDefined
        case "none": return { if case .none = value { true } else { false } }()
        case "string": return { if case .string = value { true } else { false } }()
        case "mapping": return { if case .object = value { true } else { false } }()
        case "iterable", "sequence":
            switch value {
            case .array, .object, .string: return true
            default: return false
            }
        case "number":
            switch value {
            case .int, .double: return true
            default: return false
            }
        case "integer": return { if case .int = value { true } else { false } }()
        case "float": return { if case .double = value { true } else { false } }()
        case "boolean": return { if case .bool = value { true } else { false } }()
        case "true": return { if case .bool(true) = value { true } else { false } }()
        case "false": return { if case .bool(false) = value { true } else { false } }()
        case "callable":
            switch value {
            case .macro, .function: return true
            default: return false
            }
        case "equalto", "eq", "==", "sameas": return equal(value, args.first ?? .undefined)
        case "ne", "!=": return !equal(value, args.first ?? .undefined)
        case "in": return try binary("in", value, args.first ?? .undefined).isTruthy
        case "odd", "even":
            guard case .int(let i) = value else { throw fail("\(name) needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "lower": return value.text == value.text.lowercased()
        case "upper": return value.text == value.text.uppercased()
        default: throw fail("unknown test '\(name)'")
        }
    }
}
