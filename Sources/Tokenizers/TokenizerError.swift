import Foundation

/// What can be wrong with a tokenizer file or its input; every case names the file and where.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    /// A field at JSON path `at` (for example `pre_tokenizer.pretokenizers[1].pattern`) is missing or wrong.
    case badField(path: String, at: String, expected: String)
    case unsupported(path: String, at: String, type: String, supported: [String])
    case invalidUTF8(path: String, line: Int)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
        case .badField(let path, let at, let expected): "\(path): at \(at): expected \(expected)"
        case .unsupported(let path, let at, let type, let supported):
            "\(path): at \(at): unsupported type '\(type)' (supported: \(supported.joined(separator: ", ")))"
        case .invalidUTF8(let path, let line): "\(path):\(line): invalid UTF-8"
        }
    }
}

/// A JSON value of a tokenizer file, remembering its path for error messages.
///
/// Files are parsed with `parseOrderedJSON`, which keeps every scalar of every string and key:
/// Foundation's parser merges canonically equivalent keys and drops a leading U+FEFF.
struct JSONNode {
    let value: Value
    let path: String
    let file: String

    init(_ value: Value, path: String = "", file: String) {
        self.value = value
        self.path = path
        self.file = file
    }

    /// Parses `data`, the contents of `file`.
    init(parsing data: [UInt8], file: String) throws {
        guard let text = String(validating: data, as: UTF8.self) else {
            throw TokenizerError.unreadable(path: file, reason: "not UTF-8 text")
        }
        do {
            self.init(try parseOrderedJSON(text), file: file)
        } catch let error as JSONSyntaxError {
            throw TokenizerError.unreadable(path: file, reason: "not valid JSON (\(error))")
        }
    }

    subscript(key: String) -> JSONNode {
        var child = Value.undefined
        if case .object(let object) = value { child = object[key] ?? .undefined }
        return JSONNode(child, path: path.isEmpty ? key : path + "." + key, file: file)
    }

    var isNull: Bool {
        switch value {
        case .undefined, .none: true
        default: false
        }
    }

    var stringValue: String? { if case .string(let s) = value { s } else { nil } }

    var isArray: Bool { if case .array = value { true } else { false } }

    func error(_ expected: String) -> TokenizerError {
        .badField(path: file, at: path.isEmpty ? "(root)" : path, expected: expected)
    }

    func string() throws -> String {
        guard let s = stringValue else { throw error("a string") }
        return s
    }

    func optionalString() throws -> String? { isNull ? nil : try string() }

    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        guard case .bool(let flag) = value else { throw error("true or false") }
        return flag
    }

    func int() throws -> Int {
        switch value {
        case .int(let number): return number
        case .double(let number) where number == number.rounded() && abs(number) < 1e18: return Int(number)
        default: throw error("an integer")
        }
    }

    /// A token id: an integer in 0..<2^31.
    func tokenID() throws -> Int32 {
        guard let id = try? int(), id >= 0, id <= Int(Int32.max) else {
            throw error("a token id (an integer from 0 to \(Int32.max))")
        }
        return Int32(id)
    }

    func array() throws -> [JSONNode] {
        guard case .array(let items) = value else { throw error("a list") }
        return items.enumerated().map { JSONNode($1, path: "\(path)[\($0)]", file: file) }
    }

    func object() throws -> Object {
        guard case .object(let object) = value else { throw error("an object") }
        return object
    }

    /// The "type" field of a component.
    func type() throws -> String {
        guard !self["type"].isNull else {
            throw self["type"].error("a component type (the field is missing)")
        }
        return try self["type"].string()
    }
}
