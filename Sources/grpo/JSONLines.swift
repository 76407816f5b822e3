import Foundation
import SafeTensors

/// A problem with an input file, naming the file and the 1-based line.
struct InputError: Error, CustomStringConvertible {
    let path: String
    let line: Int?
    let reason: String
    var description: String { line.map { "\(path):\($0): \(reason)" } ?? "\(path): \(reason)" }
}

/// Reads a JSON Lines file: one JSON object per non-blank line, with the line number of each.
///
/// Each line's UTF-8 is checked on its own, so invalid bytes are reported with their line number
/// instead of being replaced.
func readJSONLines(_ path: String) throws -> [(line: Int, object: [String: Any])] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw InputError(path: path, line: nil, reason: "cannot read the file")
    }
    var result: [(Int, [String: Any])] = []
    for (index, bytes) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        .enumerated()
    {
        guard let line = String(validating: bytes, as: UTF8.self) else {
            throw InputError(path: path, line: index + 1, reason: "invalid UTF-8")
        }
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { continue }
        guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any]
        else {
            throw InputError(path: path, line: index + 1, reason: "not a JSON object")
        }
        result.append((index + 1, object))
    }
    return result
}

/// A JSON number for `value`; `null` for NaN and infinity, which JSON cannot write.
func jsonNumber(_ value: Float) -> String { value.isFinite ? "\(value)" : "null" }

/// A JSON string for `text` (quotes and escapes included), keeping non-ASCII text as it is.
func jsonString(_ text: String) -> String {
    let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
    let array = String(decoding: data, as: UTF8.self)
    return String(array.dropFirst().dropLast())
}

/// Writes lines to `path` atomically, or to standard output when `path` is nil.
func writeLines(_ lines: [String], to path: String?) throws {
    let text = lines.map { $0 + "\n" }.joined()
    if let path {
        try atomicWrite(Data(text.utf8), to: path)
    } else {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
