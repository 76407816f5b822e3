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
/// A trainer first names its table of keys (`use`); every read takes its default from there and
/// records what the key resolved to (`resolved`, the run's summary). `checkAllKnown` then refuses
/// keys outside the table (typos, with a did-you-mean) and notes the TRL keys that do not apply here.
public final class ConfigValues {
    private var values: [String: (value: Any, source: String)] = [:]
    private var table: [String: ConfigKey] = [:]
    /// Every key of the table something asked about (read or `has`), for the tests that keep the
    /// table and the readers in step.
    public private(set) var touched: Set<String> = []
    /// What each key read resolved to (given or default; NSNull for none), by name.
    public private(set) var resolved: [String: Any] = [:]
    /// One line per given key that TRL has and this project does not act on, with the reason.
    public private(set) var notes: [String] = []

    public init() {}

    /// Adds `entries` from `source`, replacing earlier values of the same keys.
    public func merge(_ entries: [String: Any], source: String) {
        for (key, value) in entries { values[key.replacingOccurrences(of: "-", with: "_")] = (value, source) }
    }

    /// Makes `keys` the keys this config reads: their defaults, types and help.
    public func use(_ keys: [ConfigKey]) {
        table = Dictionary(keys.map { ($0.name, $0) }) { first, _ in first }
    }

    /// The table entry of `name`; reading a key outside the table is a programming error.
    private func entry(_ name: String) -> ConfigKey {
        guard let key = table[name] else {
            preconditionFailure("config key '\(name)' is not in the key table")
        }
        touched.insert(name)
        return key
    }

    public func has(_ key: String) -> Bool {
        _ = entry(key)
        return values[key] != nil
    }

    public func source(_ key: String) -> String { values[key]?.source ?? "defaults" }

    public func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError(key: key, source: source(key), message: message)
    }

    private func needsValue(_ key: String) -> ConfigError {
        error(key, "needs a value (--\(key) VALUE or --\(key)=VALUE)")
    }

    private func record<T>(_ key: String, _ value: T?) -> T? {
        resolved[key] = value.map { $0 as Any } ?? NSNull()
        return value
    }

    /// The given value of `key`, nil when absent (a YAML null counts as absent).
    private func given(_ key: String) -> Any? {
        _ = entry(key)
        guard let value = values[key]?.value, !(value is NSNull) else { return nil }
        return value
    }

    private func parseText(_ key: String, _ value: Any) throws -> String {
        if value is BareFlag { throw needsValue(key) }
        if let text = value as? String { return text }
        if let number = value as? NSNumber {
            if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }
            return number.stringValue
        }
        throw error(key, "expected text, got \(value)")
    }

    private func parseNumber(_ key: String, _ value: Any) throws -> Double {
        if value is BareFlag { throw needsValue(key) }
        var number: Double?
        if let n = value as? NSNumber, String(cString: n.objCType) != "c" { number = n.doubleValue }
        if let text = value as? String { number = Double(text.trimmingCharacters(in: .whitespaces)) }
        guard let number else { throw error(key, "expected a number, got '\(value)'") }
        guard number.isFinite else { throw error(key, "expected a finite number, got \(number)") }
        return number
    }

    private func parseInt(_ key: String, _ value: Any) throws -> Int {
        let number = try parseNumber(key, value)
        guard number == number.rounded(), abs(number) < 1e15 else {
            throw error(key, "expected a whole number, got \(formatNumber(number))")
        }
        return Int(number)
    }

    private func parseBool(_ key: String, _ value: Any) throws -> Bool {
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

    /// Text: the given value, else the table's default (nil for none).
    public func optionalString(_ key: String) throws -> String? {
        guard let value = given(key) else {
            guard case .text(let fallback) = entry(key).kind else { return record(key, nil as String?) }
            return record(key, fallback)
        }
        return record(key, try parseText(key, value))
    }

    /// Text whose table default is not none.
    public func string(_ key: String) throws -> String {
        guard let text = try optionalString(key) else { preconditionFailure("'\(key)' has no default") }
        return text
    }

    /// A number: the given value, else the table's default (nil for none).
    public func optionalDouble(_ key: String) throws -> Double? {
        guard let value = given(key) else {
            switch entry(key).kind {
            case .number(let fallback): return record(key, fallback)
            case .int(let fallback): return record(key, fallback.map(Double.init))
            default: return record(key, nil as Double?)
            }
        }
        return record(key, try parseNumber(key, value))
    }

    /// A number whose table default is not none.
    public func double(_ key: String) throws -> Double {
        guard let number = try optionalDouble(key) else { preconditionFailure("'\(key)' has no default") }
        return number
    }

    /// A number whose default derives from other keys (`epsilon_high` is `epsilon`'s).
    public func double(_ key: String, default fallback: Double) throws -> Double {
        guard let value = given(key) else { return record(key, fallback)! }
        return record(key, try parseNumber(key, value))!
    }

    /// A whole number: the given value, else the table's default (nil for none).
    public func optionalInt(_ key: String) throws -> Int? {
        guard let value = given(key) else {
            guard case .int(let fallback) = entry(key).kind else { return record(key, nil as Int?) }
            return record(key, fallback)
        }
        return record(key, try parseInt(key, value))
    }

    /// A whole number whose table default is not none.
    public func int(_ key: String) throws -> Int {
        guard let number = try optionalInt(key) else { preconditionFailure("'\(key)' has no default") }
        return number
    }

    /// A whole number whose default derives from other keys.
    public func int(_ key: String, default fallback: Int) throws -> Int {
        guard let value = given(key) else { return record(key, fallback)! }
        return record(key, try parseInt(key, value))!
    }

    /// A switch: the given value, else the table's default.
    public func bool(_ key: String) throws -> Bool {
        guard let value = given(key) else {
            guard case .bool(let fallback) = entry(key).kind else {
                preconditionFailure("'\(key)' is not a bool")
            }
            return record(key, fallback)!
        }
        return record(key, try parseBool(key, value))!
    }

    /// A switch whose default derives from other keys.
    public func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = given(key) else { return record(key, fallback)! }
        return record(key, try parseBool(key, value))!
    }

    /// One of a fixed set of names: the given value, else the table's default.
    public func choice<T: RawRepresentable & CaseIterable>(_ key: String, as type: T.Type = T.self) throws
        -> T
    where T.RawValue == String {
        guard let value = given(key) else {
            guard case .choice(_, let fallback) = entry(key).kind, let choice = T(rawValue: fallback) else {
                preconditionFailure("'\(key)' has no default among \(T.self)")
            }
            resolved[key] = fallback
            return choice
        }
        let text = try parseText(key, value)
        guard let choice = T(rawValue: text) else {
            throw error(
                key, "expected one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
        }
        resolved[key] = text
        return choice
    }

    /// One of the table's names for `key` (a choice key with no Swift enum).
    public func choiceName(_ key: String) throws -> String {
        guard case .choice(let options, let fallback) = entry(key).kind else {
            preconditionFailure("'\(key)' is not a choice")
        }
        guard let value = given(key) else { return record(key, fallback)! }
        let text = try parseText(key, value)
        guard options.contains(text) else {
            throw error(key, "expected one of \(options.joined(separator: ", ")), got '\(text)'")
        }
        return record(key, text)!
    }

    /// A list: a YAML sequence, or comma-separated text from a flag; else the table's default.
    public func list(_ key: String) -> [Any]? {
        guard let value = given(key) else {
            guard case .list(let fallback) = entry(key).kind else { return nil }
            resolved[key] = fallback ?? NSNull()
            return fallback
        }
        let items: [Any]
        if value is BareFlag {
            items = []
        } else if let list = value as? [Any] {
            items = list
        } else if let text = value as? String {
            items = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        } else {
            items = [value]
        }
        resolved[key] = items
        return items
    }

    /// A mapping: a YAML mapping, or JSON object text from a flag; nil when not given.
    public func mapping(_ key: String) throws -> [String: Any]? {
        guard let value = given(key) else { return nil }
        if value is BareFlag { throw needsValue(key) }
        if let mapping = value as? [String: Any] {
            resolved[key] = mapping
            return mapping
        }
        if let text = value as? String, let data = text.data(using: .utf8),
            let mapping = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            resolved[key] = mapping
            return mapping
        }
        throw error(key, "expected a mapping (or JSON object text), got '\(value)'")
    }

    /// Chat-template variables (TRL's `chat_template_kwargs`): a YAML mapping, or JSON object text
    /// from a flag.
    public func templateKwargs(_ key: String) throws -> [String: Value] {
        guard let value = given(key) else { return [:] }
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

    /// Refuses keys outside the table, suggesting the nearest known key for a typo, and notes the
    /// TRL keys that do not apply here (refusing those given a value that asks for what is not here).
    public func checkAllKnown() throws {
        notes = []
        for key in values.keys.sorted() where table[key] == nil {
            let value = values[key]!.value
            if let noted = ConfigTable.noted.first(where: { $0.matches(key) }) {
                if let only = noted.onlyValue, Self.canonical(value) != only {
                    throw error(
                        key,
                        "\(Self.canonical(value)) is not offered here: \(noted.reason); remove the key or set it to \(only)"
                    )
                }
                // A key set to null asks for nothing: no note.
                if Self.canonical(value) != "none" {
                    notes.append("\(key) (\(source(key))): not used here: \(noted.reason)")
                }
                continue
            }
            var message = "unknown option"
            if let near = nearestName(key, among: table.keys) { message += "; did you mean '\(near)'?" }
            throw ConfigError(key: key, source: source(key), message: message)
        }
    }

    /// A value as text for comparing with a noted key's only value: none, true/false, numbers.
    static func canonical(_ value: Any) -> String {
        if value is NSNull { return "none" }
        if value is BareFlag { return "true" }
        if let number = value as? NSNumber {
            // JSON's and YAML's booleans are NSNumbers of type "c" (char) once bridged.
            if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }
            return formatNumber(number.doubleValue)
        }
        if let flag = value as? Bool { return flag ? "true" : "false" }
        if let list = value as? [Any] {
            return list.isEmpty ? "none" : list.map { canonical($0) }.joined(separator: ",")
        }
        if let mapping = value as? [String: Any] { return mapping.isEmpty ? "none" : "\(mapping)" }
        let text = "\(value)".trimmingCharacters(in: .whitespaces)
        switch text.lowercased() {
        case "", "none", "null", "~": return "none"
        case "true", "false": return text.lowercased()
        default: return Double(text).map { formatNumber($0) } ?? text
        }
    }

    /// The keys every run has: `model` (or TRL's `model_name_or_path`, a folder or a cached Hub id
    /// at `model_revision`; returned as its folder), `dataset` (or `dataset_name`: a file, or a folder
    /// holding `dataset_train_split`'s file; returned as the file), `output_dir`, and a non-negative
    /// `seed`.
    public func runBasics() throws -> (model: String, dataset: String, outputDir: String, seed: UInt64) {
        // TRL's ModelConfig calls it model_name_or_path; either name, not two different values.
        let model = try either("model", "model_name_or_path")
        guard let (modelKey, name) = model else {
            throw error("model", "is required (a model folder, or a Hub id in the local Hugging Face cache)")
        }
        let revision = try string("model_revision")
        let folder: String
        do {
            folder = try HubCache.resolve(name, revision: revision)
        } catch let missing as HubCacheError {
            throw error(modelKey, missing.description)
        }
        guard let (datasetKey, datasetPath) = try either("dataset", "dataset_name") else {
            throw error("dataset", "is required (a JSONL or JSON file, or a folder of them)")
        }
        let split = try string("dataset_train_split")
        let dataset: String
        do {
            dataset = try datasetFile(datasetPath, split: split)
        } catch let problem as DatasetError {
            throw error(datasetKey, problem.reason)
        }
        let seed = try int("seed")
        guard seed >= 0 else { throw error("seed", "must not be negative") }
        let outputDir = try string("output_dir")
        guard !outputDir.isEmpty else { throw error("output_dir", "must not be empty (a folder to write)") }
        resolved["model"] = folder
        resolved["dataset"] = dataset
        return (folder, dataset, outputDir, UInt64(seed))
    }

    /// The value of `key` or of its TRL name `other` (which must agree when both are given), and
    /// which key gave it.
    public func either(_ key: String, _ other: String) throws -> (key: String, value: String)? {
        let first = try optionalString(key)
        let second = try optionalString(other)
        if let first, let second, first != second {
            throw error(other, "is '\(second)' but \(key) is '\(first)': give one of them")
        }
        if let first { return (key, first) }
        return second.map { (other, $0) }
    }
}

/// The file a dataset key names: the path itself, or in a folder its `split` file (`SPLIT.jsonl`,
/// `SPLIT.json`, or the same under `data/`), as a Hugging Face dataset folder holds them.
public func datasetFile(_ path: String, split: String) throws -> String {
    // A file is read (and a missing one reported, with its line numbers) when the run loads it.
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
        return path
    }
    let candidates = ["\(split).jsonl", "\(split).json", "data/\(split).jsonl", "data/\(split).json"]
    for name in candidates where FileManager.default.fileExists(atPath: path + "/" + name) {
        return path + "/" + name
    }
    throw DatasetError(
        path: path, line: nil,
        reason: "is a folder without a '\(split)' split: looked for \(candidates.joined(separator: ", "))")
}
