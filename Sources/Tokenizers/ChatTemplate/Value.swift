import Foundation

/// A value inside a chat template, with Python's semantics (templates are written for jinja2).
public indirect enum Value: Sendable {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([Value])
    case object(Object)
    case namespace(Namespace)
    case macro(Macro)
    /// A method of a value (`text.strip`, `message.items`) or a global function, waiting for its call.
    case function(name: String, receiver: Value?)

    /// Converts JSON-like Swift values (from JSONSerialization or literals) to template values.
    public init(_ any: Any?) {
        switch any {
        case nil, is NSNull: self = .none
        case let value as Value: self = value
        case let text as String: self = .string(text)
        case let number as NSNumber:
            if String(cString: number.objCType) == "c" {
                self = .bool(number.boolValue)
            } else if ["d", "f"].contains(String(cString: number.objCType)) {
                self = .double(number.doubleValue)
            } else {
                self = .int(number.intValue)
            }
        case let flag as Bool: self = .bool(flag)
        case let number as Int: self = .int(number)
        case let number as Double: self = .double(number)
        case let list as [Any]: self = .array(list.map(Value.init))
        case let dict as [String: Any]:
            // JSONSerialization loses key order; callers that care pass `Object`s.
            self = .object(Object(dict.keys.sorted().map { ($0, Value(dict[$0])) }))
        default: self = .string("\(any!)")
        }
    }

    var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s): !s.isEmpty
        case .array(let a): !a.isEmpty
        case .object(let o): !o.keys.isEmpty
        default: true
        }
    }

    var isDefined: Bool { if case .undefined = self { false } else { true } }

    /// Python's `str(value)`: what `{{ value }}` prints (undefined prints nothing).
    public var text: String {
        switch self {
        case .undefined: ""
        case .string(let s): s
        default: repr
        }
    }

    /// Python's `repr(value)`.
    var repr: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): pythonFloat(d)
        case .string(let s): pythonStringRepr(s)
        case .array(let a): "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case .object(let o):
            "{" + o.pairs.map { pythonStringRepr($0.key) + ": " + $0.value.repr }.joined(separator: ", ")
                + "}"
        case .namespace: "<Namespace>"
        case .macro(let m): "<Macro '\(m.name)'>"
        case .function(let name, _): "<function \(name)>"
        }
    }
}

/// A dictionary that keeps insertion order, as Python's dict does, with keys compared by their
/// scalars as Python compares them (not by canonical equivalence, as Swift's `String` does).
public struct Object: Sendable {
    public private(set) var keys: [String] = []
    private var storage: [ExactString: Value] = [:]

    public init(_ pairs: [(String, Value)] = []) {
        for (key, value) in pairs { self[key] = value }
    }

    public var count: Int { keys.count }

    public subscript(key: String) -> Value? {
        get { storage[ExactString(key)] }
        set {
            let exact = ExactString(key)
            if storage[exact] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { ExactString($0) == exact } }
            storage[exact] = newValue
        }
    }

    /// The (key, value) pairs in insertion order.
    public var pairs: [(key: String, value: Value)] { keys.map { ($0, storage[ExactString($0)]!) } }
}

/// jinja2's `namespace()`: a mutable object, so loops can carry state out (`ns.found = true`).
public final class Namespace: @unchecked Sendable {
    var values: Object
    init(_ values: Object) { self.values = values }
}

/// A `{% macro %}`: its parameters (with defaults) and body.
public struct Macro: @unchecked Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expression?)]
    let body: [Node]
}

/// Python's repr of a float: shortest round-trip digits, always with a '.' or exponent.
func pythonFloat(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d > 0 ? "inf" : "-inf" }
    var s = "\(d)"
    if let e = s.firstIndex(of: "e") {
        // Swift writes 1e-05 and 1e+16 as Python does; only a missing sign needs care.
        let exponent = s[s.index(after: e)...]
        if !exponent.hasPrefix("-") && !exponent.hasPrefix("+") { s.insert("+", at: s.index(after: e)) }
        return s
    }
    return s
}

/// Python's repr of a string: single quotes unless the text has ' and no ".
func pythonStringRepr(_ s: String) -> String {
    let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
    var out = String(quote)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(scalar) == quote {
                out += "\\" + String(quote)
            } else if scalar.value < 0x20 || scalar.value == 0x7F {
                out += String(format: "\\x%02x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + String(quote)
}

extension Value {
    /// Compact JSON text (Python's `json.dumps(value, ensure_ascii=False)`).
    public var jsonText: String { pythonJSON(self, indent: nil) }

    /// Python's type name, for error messages ("NoneType", "int", ...).
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .array: "list"
        case .object: "dict"
        case .namespace: "Namespace"
        case .macro: "Macro"
        case .function: "function"
        }
    }

    public var isNone: Bool { if case .none = self { true } else { false } }
}

/// Python's `json.dumps(value, ensure_ascii=, indent=, separators=, sort_keys=)`, the `tojson`
/// filter transformers installs in its chat-template environment (`indent` is the text of one level).
func pythonJSON(
    _ value: Value, indent: String?, separators: (item: String, key: String)? = nil, sortKeys: Bool = false,
    ensureASCII: Bool = false, level: Int = 0
) -> String {
    let itemSeparator = separators?.item ?? (indent == nil ? ", " : ",")
    let keySeparator = separators?.key ?? ": "
    func newline(_ depth: Int) -> String {
        indent.map { "\n" + String(repeating: $0, count: depth) } ?? ""
    }
    func nested(_ item: Value) -> String {
        pythonJSON(
            item, indent: indent, separators: separators, sortKeys: sortKeys, ensureASCII: ensureASCII,
            level: level + 1)
    }
    switch value {
    case .undefined, .none: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .double(let d):
        return d.isNaN ? "NaN" : d.isInfinite ? (d > 0 ? "Infinity" : "-Infinity") : pythonFloat(d)
    case .string(let s): return jsonEscaped(s, ensureASCII: ensureASCII)
    case .array(let items):
        if items.isEmpty { return "[]" }
        let body = items.map { newline(level + 1) + nested($0) }
        return "[" + body.joined(separator: itemSeparator) + newline(level) + "]"
    case .object(let object):
        if object.keys.isEmpty { return "{}" }
        let keys =
            sortKeys
            ? object.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
            : object.keys
        let body = keys.map {
            newline(level + 1) + jsonEscaped($0, ensureASCII: ensureASCII) + keySeparator
                + nested(object[$0]!)
        }
        return "{" + body.joined(separator: itemSeparator) + newline(level) + "}"
    case .namespace(let ns):
        return pythonJSON(
            .object(ns.values), indent: indent, separators: separators, sortKeys: sortKeys,
            ensureASCII: ensureASCII, level: level)
    default: return jsonEscaped(value.repr, ensureASCII: ensureASCII)
    }
}

private func jsonEscaped(_ s: String, ensureASCII: Bool = false) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if scalar.value < 0x20 || (ensureASCII && scalar.value == 0x7F) {
                out += String(format: "\\u%04x", scalar.value)
            } else if ensureASCII && scalar.value > 0x7F {
                for unit in String(scalar).utf16 { out += String(format: "\\u%04x", unit) }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
