import Foundation
import SafeTensors
import Tokenizers
import Training

/// A problem with an input file, naming the file and the 1-based line.
struct InputError: Error, CustomStringConvertible {
    let path: String
    let line: Int?
    let reason: String
    var description: String { line.map { "\(path):\($0): \(reason)" } ?? "\(path): \(reason)" }
}

/// Reads a JSON Lines file: one JSON object per non-blank line, with the line number of each.
///
/// Lines are read by `readJSONLObjects` (every scalar kept, key order kept, depth bounded); its
/// errors name the file and line.
func readJSONLines(_ path: String) throws -> [(line: Int, object: Object)] {
    do {
        return try readJSONLObjects(path)
    } catch let error as DatasetError {
        throw InputError(path: error.path, line: error.line, reason: error.reason)
    }
}

extension Value {
    /// The text of a JSON string.
    var stringValue: String? { if case .string(let text) = self { text } else { nil } }

    /// The items of a JSON list.
    var listValue: [Value]? { if case .array(let items) = self { items } else { nil } }

    /// A JSON number that is a whole number (3 or 3.0), not true or false.
    var wholeNumber: Int? {
        switch self {
        case .int(let number): number
        case .double(let number) where number == number.rounded() && abs(number) < 1e18: Int(number)
        default: nil
        }
    }

    /// A token id: a whole number in 0..<limit.
    func tokenID(below limit: Int) -> Int32? {
        guard let id = wholeNumber, id >= 0, id < limit, id <= Int(Int32.max) else { return nil }
        return Int32(id)
    }
}

/// A JSON number for `value`; `null` for NaN and infinity, which JSON cannot write.
func jsonNumber(_ value: Float) -> String { value.isFinite ? "\(value)" : "null" }

/// A JSON string for `text` (quotes and escapes included), keeping non-ASCII text as it is.
func jsonString(_ text: String) -> String { Value.string(text).jsonText }

/// Writes lines to `path` atomically, or to standard output when `path` is nil.
func writeLines(_ lines: [String], to path: String?) throws {
    let text = lines.map { $0 + "\n" }.joined()
    if let path {
        try atomicWrite(Data(text.utf8), to: path)
    } else {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
