/// Parses JSON into template values keeping object key order, as Python's json module does
/// (the order shows in `tojson` output, so it must survive).
public func parseOrderedJSON(_ text: String) throws -> Value {
    var parser = OrderedJSONParser(Array(text.utf8))
    parser.skipWhitespace()
    let value = try parser.parseValue()
    parser.skipWhitespace()
    guard parser.index == parser.bytes.count else {
        throw parser.error("unexpected text after the JSON value")
    }
    return value
}

/// A JSON syntax error with its 1-based line and column.
public struct JSONSyntaxError: Error, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

private struct OrderedJSONParser {
    /// Deepest nesting of arrays and objects accepted: a recursive parser must not overflow its stack
    /// on a hostile line (Python's json stops near 1,000 levels, at its recursion limit).
    static let maxDepth = 512

    let bytes: [UInt8]
    var index = 0
    var depth = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func error(_ message: String) -> JSONSyntaxError {
        let before = bytes[0..<min(index, bytes.count)]
        let line = before.filter { $0 == 10 }.count + 1
        let column = index - (before.lastIndex(of: 10).map { $0 + 1 } ?? 0) + 1
        return JSONSyntaxError(line: line, column: column, message: message)
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [9, 10, 13, 32].contains(bytes[index]) { index += 1 }
    }

    mutating func expect(_ literal: String) throws {
        let chars = Array(literal.utf8)
        guard index + chars.count <= bytes.count, Array(bytes[index..<(index + chars.count)]) == chars else {
            throw error("expected \(literal)")
        }
        index += chars.count
    }

    static let notAValue = "not JSON here (expected an object, list, string, number, true, false or null)"

    /// A literal value: a word that is not one is "not JSON", not "expected null".
    mutating func expectValue(_ literal: String) throws {
        do { try expect(literal) } catch { throw self.error(Self.notAValue) }
    }

    mutating func parseValue() throws -> Value {
        guard index < bytes.count else { throw error("unexpected end of JSON") }
        let opens = bytes[index] == UInt8(ascii: "{") || bytes[index] == UInt8(ascii: "[")
        if opens {
            guard depth < Self.maxDepth else {
                throw error("nested more than \(Self.maxDepth) levels deep")
            }
            depth += 1
        }
        defer { if opens { depth -= 1 } }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var object = Object()
            skipWhitespace()
            if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(object)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw error("expected a string key")
                }
                let key = try parseString()
                skipWhitespace()
                try expect(":")
                skipWhitespace()
                object[key] = try parseValue()
                skipWhitespace()
                if index < bytes.count && bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect("}")
                return .object(object)
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [Value] = []
            skipWhitespace()
            if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try parseValue())
                skipWhitespace()
                if index < bytes.count && bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect("]")
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectValue("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectValue("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectValue("null")
            return .none
        default:
            let start = index
            while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
            let literal = String(decoding: bytes[start..<index], as: UTF8.self)
            if let int = Int(literal) { return .int(int) }
            if let double = Double(literal), !literal.isEmpty { return .double(double) }
            index = start
            throw error(Self.notAValue)
        }
    }

    mutating func parseString() throws -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flushRaw() throws {
            guard !raw.isEmpty else { return }
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw error("invalid UTF-8 in a string")
            }
            scalars.append(contentsOf: text.unicodeScalars)
            raw.removeAll()
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                try flushRaw()
                return String(scalars)
            }
            if byte == UInt8(ascii: "\\") {
                try flushRaw()
                index += 1
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    // A surrogate pair is one scalar; a lone surrogate (Python keeps it, a Swift
                    // string cannot) becomes U+FFFD, and the escape after it is read on its own.
                    if (0xD800..<0xDC00).contains(code), index + 5 < bytes.count,
                        bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    {
                        let mark = index
                        index += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            index = mark
                        }
                    }
                    scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default: scalars.append(Unicode.Scalar(escape))
                }
                continue
            }
            raw.append(byte)
            index += 1
        }
        throw error("unterminated string")
    }

    mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count,
            let code = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16)
        else { throw error("bad \\u escape") }
        index += 4
        return code
    }
}
