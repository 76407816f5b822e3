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

/// A JSON value read with JSONSerialization, remembering its path for error messages.
struct JSONNode {
    let value: Any?
    let path: String
    let file: String

    init(_ value: Any?, path: String = "", file: String) {
        self.value = value
        self.path = path
        self.file = file
    }

    subscript(key: String) -> JSONNode {
        JSONNode((value as? [String: Any])?[key], path: path.isEmpty ? key : path + "." + key, file: file)
    }

    var isNull: Bool { value == nil || value is NSNull }

    func error(_ expected: String) -> TokenizerError {
        .badField(path: file, at: path.isEmpty ? "(root)" : path, expected: expected)
    }

    func string() throws -> String {
        guard let s = value as? String else { throw error("a string") }
        return s
    }

    func optionalString() throws -> String? { isNull ? nil : try string() }

    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        guard let number = value as? NSNumber, String(cString: number.objCType) == "c" else {
            throw error("true or false")
        }
        return number.boolValue
    }

    func int() throws -> Int {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
            number.doubleValue == number.doubleValue.rounded()
        else { throw error("an integer") }
        return number.intValue
    }

    func array() throws -> [JSONNode] {
        guard let items = value as? [Any] else { throw error("a list") }
        return items.enumerated().map { JSONNode($1, path: "\(path)[\($0)]", file: file) }
    }

    func object() throws -> [String: Any] {
        guard let dict = value as? [String: Any] else { throw error("an object") }
        return dict
    }

    /// The "type" field of a component.
    func type() throws -> String { try self["type"].string() }
}
