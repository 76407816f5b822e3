import Foundation

/// A Hub id (`Qwen/Qwen2.5-0.5B-Instruct`) the local Hugging Face cache lacks.
///
/// Also thrown for a cached snapshot that is incomplete. Nothing is ever downloaded.
public struct HubCacheError: Error, CustomStringConvertible, Equatable {
    public let model: String
    public let revision: String
    /// Each place looked, with what was (not) found there.
    public let looked: [String]

    public var description: String {
        "model '\(model)' (revision \(revision)) is not a folder here and not in the Hugging Face cache."
            + " Looked at:\n" + looked.map { "  " + $0 }.joined(separator: "\n")
            + "\nNothing is downloaded: copy the model folder here, or fetch it on a machine with a network"
            + " (`hf download \(model)`) and point HF_HUB_CACHE or HF_HOME at that cache."
    }
}

/// Finds models in the Hugging Face Hub cache, the way `huggingface_hub` lays it out offline.
///
/// The cache folder is `HF_HUB_CACHE`, else the older `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`,
/// else `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. A repository
/// `org/name` lives in `models--org--name`: `refs/REVISION` holds the commit a branch or tag
/// points at, and `snapshots/COMMIT/` holds its files.
///
///     let folder = try HubCache.resolve("Qwen/Qwen2.5-0.5B-Instruct")  // .../snapshots/<commit>
public enum HubCache {
    /// The cache folder the environment names.
    public static func folder(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        func nonEmpty(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : $0 } }
        if let cache = nonEmpty("HF_HUB_CACHE") ?? nonEmpty("HUGGINGFACE_HUB_CACHE") { return expand(cache) }
        if let home = nonEmpty("HF_HOME") { return expand(home) + "/hub" }
        if let xdg = nonEmpty("XDG_CACHE_HOME") { return expand(xdg) + "/huggingface/hub" }
        let home = nonEmpty("HOME") ?? NSHomeDirectory()
        return home + "/.cache/huggingface/hub"
    }

    /// Whether `model` reads as a Hub id (`name` or `org/name`) rather than a path.
    public static func isRepositoryID(_ model: String) -> Bool {
        let parts = model.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !model.hasPrefix("."), !model.hasPrefix("~") else {
            return false
        }
        return parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".."
                && part.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) }
        }
    }

    /// A model folder: `model` itself when it exists on disk, else its snapshot in the Hub cache at
    /// `revision` (a branch, tag or commit; `main` when nil).
    ///
    /// - Throws: `HubCacheError` listing where it looked, when `model` is an id the cache lacks (or
    ///   whose snapshot has no `config.json`).
    public static func resolve(
        _ model: String, revision: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String {
        // Anything on disk (a folder, or a tokenizer.json file), or a path: the loader names what
        // is missing.
        guard !FileManager.default.fileExists(atPath: model), isRepositoryID(model) else { return model }
        let revision = revision ?? "main"
        let cache = folder(environment: environment)
        let repository = cache + "/models--" + model.replacingOccurrences(of: "/", with: "--")
        let manager = FileManager.default
        var looked = ["\(model) as a folder: no such folder"]
        guard manager.fileExists(atPath: repository) else {
            looked.append("\(repository): not there (cache folder \(cache))")
            throw HubCacheError(model: model, revision: revision, looked: looked)
        }
        var commits: [String] = []
        let reference = repository + "/refs/" + revision
        if let text = try? String(contentsOfFile: reference, encoding: .utf8) {
            commits.append(text.trimmingCharacters(in: .whitespacesAndNewlines))
        } else {
            looked.append("\(reference): no such ref")
        }
        // A commit named directly (full hash, or a unique prefix of a cached one).
        let snapshots = repository + "/snapshots"
        let cached = ((try? manager.contentsOfDirectory(atPath: snapshots)) ?? []).sorted()
        if commits.isEmpty, revision.count >= 7, revision.allSatisfy(\.isHexDigit) {
            let matches = cached.filter { $0.hasPrefix(revision.lowercased()) }
            if matches.count == 1 { commits = matches }
            if matches.count > 1 {
                looked.append("\(snapshots): \(matches.count) snapshots start with \(revision)")
            }
        }
        for commit in commits {
            let snapshot = snapshots + "/" + commit
            if manager.fileExists(atPath: snapshot + "/config.json") { return snapshot }
            looked.append(
                manager.fileExists(atPath: snapshot)
                    ? "\(snapshot): no config.json (an incomplete download?)"
                    : "\(snapshot): no such snapshot")
        }
        if commits.isEmpty {
            looked.append(
                "\(snapshots): "
                    + (cached.isEmpty
                        ? "no snapshots" : "snapshots \(cached.joined(separator: ", ")), none at \(revision)")
            )
        }
        throw HubCacheError(model: model, revision: revision, looked: looked)
    }

    private static func expand(_ path: String) -> String { (path as NSString).expandingTildeInPath }
}
