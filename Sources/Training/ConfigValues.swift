import Foundation
import Models
import Rewards
import Tokenizers

/// A problem with a configuration key, naming where the value came from.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let source: String
    public let message: String

    public init(key: String, source: String, message: String) {
        self.key = key
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(key): \(message)" }
}

/// The value of a command-line flag given without one (`--mask_truncated_completions`): true for a
/// boolean key, an error naming the flag for any other.
public struct BareFlag: CustomStringConvertible {
    public init() {}
    public var description: String { "nothing" }
}

/// Keys and values from a YAML file and command-line flags, flags winning, read with type checks.
///
/// Every read marks its key as known; `checkAllKnown` then refuses keys nothing read (typos).
public final class ConfigValues {
    private var values: [String: (value: Any, source: String)] = [:]
    private var read: Set<String> = []

    public init() {}

    /// Adds `entries` from `source`, replacing earlier values of the same keys.
    public func merge(_ entries: [String: Any], source: String) {
        for (key, value) in entries { values[key.replacingOccurrences(of: "-", with: "_")] = (value, source) }
    }

    public func has(_ key: String) -> Bool {
        read.insert(key)
        return values[key] != nil
    }

    public func source(_ key: String) -> String { values[key]?.source ?? "defaults" }

    public func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError(key: key, source: source(key), message: message)
    }

    private func needsValue(_ key: String) -> ConfigError {
        error(key, "needs a value (--\(key) VALUE or --\(key)=VALUE)")
    }

    public func string(_ key: String) throws -> String? {
        read.insert(key)
        guard let (value, _) = values[key] else { return nil }
        if value is BareFlag { throw needsValue(key) }
        if let text = value as? String { return text }
        if let number = value as? NSNumber { return number.stringValue }
        throw error(key, "expected text, got \(value)")
    }

    public func string(_ key: String, default fallback: String) throws -> String {
        try string(key) ?? fallback
    }

    public func double(_ key: String) throws -> Double? {
        read.insert(key)
        guard let (value, _) = values[key] else { return nil }
        if value is BareFlag { throw needsValue(key) }
        var number: Double?
        if let n = value as? NSNumber, !(value is Bool) { number = n.doubleValue }
        if let text = value as? String { number = Double(text.trimmingCharacters(in: .whitespaces)) }
        guard let number else { throw error(key, "expected a number, got '\(value)'") }
        guard number.isFinite else { throw error(key, "expected a finite number, got \(number)") }
        return number
    }

    public func double(_ key: String, default fallback: Double) throws -> Double {
        try double(key) ?? fallback
    }

    public func int(_ key: String) throws -> Int? {
        guard let number = try double(key) else { return nil }
        guard number == number.rounded(), abs(number) < 1e15 else {
            throw error(key, "expected a whole number, got \(number)")
        }
        return Int(number)
    }

    public func int(_ key: String, default fallback: Int) throws -> Int { try int(key) ?? fallback }

    public func bool(_ key: String, default fallback: Bool) throws -> Bool {
        read.insert(key)
        guard let (value, _) = values[key] else { return fallback }
        if let flag = value as? Bool { return flag }
        if value is BareFlag { return true }
        if let text = value as? String {
            switch text.lowercased() {
            case "true", "yes", "1", "": return true
            case "false", "no", "0": return false
            default: break
            }
        }
        throw error(key, "expected true or false, got '\(value)'")
    }

    public func choice<T: RawRepresentable & CaseIterable>(_ key: String, default fallback: T) throws -> T
    where T.RawValue == String {
        guard let text = try string(key) else { return fallback }
        guard let value = T(rawValue: text) else {
            throw error(
                key, "expected one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
        }
        return value
    }

    /// A list: a YAML sequence, or comma-separated text from a flag.
    public func list(_ key: String) -> [Any]? {
        read.insert(key)
        guard let (value, _) = values[key] else { return nil }
        if value is BareFlag { return [] }
        if let items = value as? [Any] { return items }
        if let text = value as? String {
            return text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        return [value]
    }

    /// Chat-template variables (TRL's `chat_template_kwargs`): a YAML mapping, or JSON object text
    /// from a flag.
    public func templateKwargs(_ key: String) throws -> [String: Value] {
        read.insert(key)
        guard let (value, _) = values[key] else { return [:] }
        if value is BareFlag { throw needsValue(key) }
        do {
            if let text = value as? String {
                return try TokenizerConfig.templateKwargs(json: text, source: key)
            }
            guard let mapping = value as? [String: Any] else {
                throw error(key, "expected a mapping of template variables (or JSON object text)")
            }
            return try TokenizerConfig.templateKwargs(Value(mapping), source: key)
        } catch let problem as TokenizerError {
            throw error(key, "expected a JSON object of template variables (\(problem))")
        }
    }

    /// Refuses keys that no reader asked for, suggesting the nearest known key for a typo.
    public func checkAllKnown() throws {
        if let unknown = values.keys.sorted().first(where: { !read.contains($0) }) {
            var message = "unknown option"
            if let near = Self.nearest(unknown, among: read) { message += "; did you mean '\(near)'?" }
            throw ConfigError(key: unknown, source: source(unknown), message: message)
        }
    }

    /// The key of `known` fewest single-character edits from `key` (Levenshtein distance), if it
    /// is close enough to be a typo: at most 2 edits, or a third of the key's length.
    static func nearest(_ key: String, among known: Set<String>) -> String? {
        let limit = max(2, key.count / 3)
        let scored = known.map { ($0, editDistance(Array(key), Array($0))) }.filter { $0.1 <= limit }
        return scored.min { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }?.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// The keys every run has: `model` (or TRL's `model_name_or_path`, a folder or a cached Hub id
    /// at `model_revision`; returned as its folder) and `dataset` (required), `output_dir`, and a
    /// non-negative `seed`.
    public func runBasics(defaultOutputDir: String) throws -> (
        model: String, dataset: String, outputDir: String, seed: UInt64
    ) {
        // TRL's ModelConfig calls it model_name_or_path; either name, not two different values.
        let given = try string("model")
        let trlName = try string("model_name_or_path")
        if let given, let trlName, given != trlName {
            throw error("model_name_or_path", "is '\(trlName)' but model is '\(given)': give one of them")
        }
        guard let model = given ?? trlName else {
            throw error("model", "is required (a model folder, or a Hub id in the local Hugging Face cache)")
        }
        let revision = try string("model_revision", default: "main")
        let folder: String
        do {
            folder = try HubCache.resolve(model, revision: revision)
        } catch let missing as HubCacheError {
            throw error(given == nil ? "model_name_or_path" : "model", missing.description)
        }
        guard let dataset = try string("dataset") else {
            throw error("dataset", "is required (a JSONL file)")
        }
        let seed = try int("seed", default: 42)
        guard seed >= 0 else { throw error("seed", "must not be negative") }
        let outputDir = try string("output_dir", default: defaultOutputDir)
        guard !outputDir.isEmpty else { throw error("output_dir", "must not be empty (a folder to write)") }
        return (folder, dataset, outputDir, UInt64(seed))
    }
}
