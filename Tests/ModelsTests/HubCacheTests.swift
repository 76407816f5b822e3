import Foundation
import Models
import Testing

/// A Hugging Face cache laid out as `huggingface_hub` writes it: `models--Org--Tiny` with refs
/// `main` and `v1` and a snapshot for each, plus a snapshot that lost its config.json.
private func fakeCache() throws -> (root: String, main: String, tagged: String) {
    let root = NSTemporaryDirectory() + "hub-cache-\(UUID().uuidString)"
    let repository = root + "/models--Org--Tiny"
    let (mainCommit, tagCommit, brokenCommit) = (
        String(repeating: "a", count: 40), "b0" + String(repeating: "c", count: 38),
        String(repeating: "d", count: 40)
    )
    let manager = FileManager.default
    for commit in [mainCommit, tagCommit, brokenCommit] {
        try manager.createDirectory(
            atPath: repository + "/snapshots/" + commit, withIntermediateDirectories: true)
    }
    try manager.createDirectory(atPath: repository + "/refs", withIntermediateDirectories: true)
    for commit in [mainCommit, tagCommit] {
        try "{}".write(
            toFile: repository + "/snapshots/\(commit)/config.json", atomically: true, encoding: .utf8)
    }
    // refs hold the commit without a newline, as huggingface_hub writes them.
    try mainCommit.write(toFile: repository + "/refs/main", atomically: true, encoding: .utf8)
    try tagCommit.write(toFile: repository + "/refs/v1", atomically: true, encoding: .utf8)
    try brokenCommit.write(toFile: repository + "/refs/broken", atomically: true, encoding: .utf8)
    return (root, repository + "/snapshots/" + mainCommit, repository + "/snapshots/" + tagCommit)
}

@Test func cacheFolderFollowsHuggingFaceHubsVariables() {
    #expect(HubCache.folder(environment: ["HF_HUB_CACHE": "/c", "HF_HOME": "/h"]) == "/c")
    #expect(HubCache.folder(environment: ["HUGGINGFACE_HUB_CACHE": "/old", "HF_HOME": "/h"]) == "/old")
    #expect(HubCache.folder(environment: ["HF_HOME": "/h", "XDG_CACHE_HOME": "/x"]) == "/h/hub")
    #expect(HubCache.folder(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/u"]) == "/x/huggingface/hub")
    #expect(HubCache.folder(environment: ["HOME": "/u"]) == "/u/.cache/huggingface/hub")
    #expect(HubCache.folder(environment: ["HF_HUB_CACHE": "", "HOME": "/u"]) == "/u/.cache/huggingface/hub")
}

@Test func hubIDsResolveToTheirCachedSnapshots() throws {
    let cache = try fakeCache()
    let environment = ["HF_HUB_CACHE": cache.root]
    #expect(try HubCache.resolve("Org/Tiny", environment: environment) == cache.main)
    #expect(try HubCache.resolve("Org/Tiny", revision: "v1", environment: environment) == cache.tagged)
    // A commit, in full or by a unique prefix.
    let commit = (cache.tagged as NSString).lastPathComponent
    #expect(try HubCache.resolve("Org/Tiny", revision: commit, environment: environment) == cache.tagged)
    #expect(try HubCache.resolve("Org/Tiny", revision: "b0ccccc", environment: environment) == cache.tagged)
    // Through HF_HOME too.
    let home = NSTemporaryDirectory() + "hf-home-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: home + "/hub", withDestinationPath: cache.root)
    #expect(
        try HubCache.resolve("Org/Tiny", environment: ["HF_HOME": home]) == home + "/hub/"
            + cache.main.dropFirst(cache.root.count + 1))
}

@Test func foldersAndPathsAreTakenAsTheyAre() throws {
    let cache = try fakeCache()
    let environment = ["HF_HUB_CACHE": cache.root]
    // An existing folder wins over a cache entry of the same name; a path is never an id.
    #expect(try HubCache.resolve(cache.main, environment: environment) == cache.main)
    #expect(try HubCache.resolve("./missing/model", environment: environment) == "./missing/model")
    #expect(try HubCache.resolve("/no/such/folder", environment: environment) == "/no/such/folder")
    #expect(HubCache.isRepositoryID("Qwen/Qwen2.5-0.5B-Instruct"))
    #expect(HubCache.isRepositoryID("gpt2"))
    #expect(!HubCache.isRepositoryID("a/b/c"))
    #expect(!HubCache.isRepositoryID("../model"))
    #expect(!HubCache.isRepositoryID("~/model"))
}

@Test func aModelTheCacheLacksNamesWhereItLooked() throws {
    let cache = try fakeCache()
    let environment = ["HF_HUB_CACHE": cache.root]
    func failure(_ model: String, _ revision: String? = nil) -> String {
        do {
            _ = try HubCache.resolve(model, revision: revision, environment: environment)
            return "resolved"
        } catch {
            return "\(error)"
        }
    }
    let missing = failure("Org/Other")
    #expect(missing.contains(cache.root + "/models--Org--Other: not there"))
    #expect(missing.contains("Nothing is downloaded"))
    #expect(failure("Org/Tiny", "v2").contains("refs/v2: no such ref"))
    #expect(failure("Org/Tiny", "broken").contains("no config.json (an incomplete download?)"))
}
