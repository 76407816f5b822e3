import Foundation

/// A Hugging Face `tokenizer.json` tokenizer: added tokens, normalizer, pre-tokenizer, BPE model,
/// post-processor and decoder, applied as the Rust `tokenizers` library applies them.
///
///     let tokenizer = try Tokenizer(path: "model/tokenizer.json")
///     let ids = tokenizer.encode("Hello world")            // with the post-processor's BOS, if any
///     let text = tokenizer.decode(ids, skipSpecialTokens: true)
public final class Tokenizer: @unchecked Sendable {
    public let path: String
    public let addedTokens: [AddedToken]
    let model: BPE
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let postProcessor: PostProcessor?
    private let decoder: Decoder?
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedByID: [Int32: AddedToken]
    private let addedByContent: [ExactString: AddedToken]

    /// Loads `tokenizer.json` (a file, or a model folder holding one).
    public init(path: String) throws {
        var file = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            file = path + "/tokenizer.json"
        }
        self.path = file
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TokenizerError.unreadable(path: file, reason: "no such file")
        }
        let root = try JSONNode(parsing: Array(data), file: file)
        _ = try root.object()
        guard !root["model"].isNull else {
            throw root["model"].error("the tokenizer model (an object with \"type\")")
        }
        // Older files have no model type; tokenizers then reads the model by its fields.
        if root["model"]["type"].isNull && root["model"]["merges"].isNull {
            throw root["model"]["type"].error(
                "the model's type: the model has neither \"type\" nor \"merges\", so it is not BPE "
                    + "(supported: BPE; WordPiece, WordLevel and Unigram models are not)")
        }
        model = try BPE(root["model"])
        normalizer = root["normalizer"].isNull ? nil : try Normalizer(root["normalizer"])
        preTokenizer = root["pre_tokenizer"].isNull ? nil : try PreTokenizer(root["pre_tokenizer"])
        postProcessor = root["post_processor"].isNull ? nil : try PostProcessor(root["post_processor"])
        decoder = root["decoder"].isNull ? nil : try Decoder(root["decoder"])
        addedTokens = root["added_tokens"].isNull ? [] : try root["added_tokens"].array().map(AddedToken.init)
        addedByID = Dictionary(addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { _, b in b })
        addedByContent = Dictionary(
            addedTokens.map { (ExactString($0.content), $0) }, uniquingKeysWith: { _, b in b })
        // Special tokens first, then the others, as tokenizers orders its matchers.
        let ordered = addedTokens.filter(\.special) + addedTokens.filter { !$0.special }
        let normalizer = self.normalizer
        rawMatcher = AddedTokenMatcher(ordered.filter { !$0.normalized }.map { ($0.content, $0) })
        normalizedMatcher = AddedTokenMatcher(
            ordered.filter(\.normalized).map { (normalizer?.apply($0.content) ?? $0.content, $0) })
    }

    /// The number of ids: the model's vocabulary and the added tokens.
    public var vocabularySize: Int {
        max(
            model.vocab.count, Int((addedTokens.map(\.id).max() ?? -1) + 1),
            Int((model.idToToken.keys.max() ?? -1) + 1))
    }

    public func tokenID(_ token: String) -> Int32? {
        let key = ExactString(token)
        return addedByContent[key]?.id ?? model.vocab[key]
    }

    public func token(for id: Int32) -> String? { addedByID[id]?.content ?? model.idToToken[id] }

    public func isSpecial(_ id: Int32) -> Bool { addedByID[id]?.special ?? false }

    /// Token ids of `text`, as `AutoTokenizer(text)["input_ids"]` (`addSpecialTokens: false` as
    /// `add_special_tokens=False`).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var ids: [Int32] = []
        var atStart = true
        for (segment, token) in rawMatcher.split(text) {
            defer { atStart = false }
            if let token {
                ids.append(token.id)
                continue
            }
            let normalized = normalizer?.apply(segment) ?? segment
            var first = true
            for (part, inner) in normalizedMatcher.split(normalized) {
                defer { first = false }
                if let inner {
                    ids.append(inner.id)
                    continue
                }
                encodePlain(Piece(text: part, atStart: atStart && first), into: &ids)
            }
        }
        if addSpecialTokens, let postProcessor { return postProcessor.process(ids) }
        return ids
    }

    /// `encode` of each text, spread across the cores.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true) -> [[Int32]] {
        var results = [[Int32]](repeating: [], count: texts.count)
        let tasks = min(ProcessInfo.processInfo.activeProcessorCount, texts.count)
        results.withUnsafeMutableBufferPointer { buffer in
            let output = UncheckedBuffer(buffer)
            DispatchQueue.concurrentPerform(iterations: tasks) { t in
                for i in stride(from: t, to: texts.count, by: tasks) {
                    output.buffer[i] = encode(texts[i], addSpecialTokens: addSpecialTokens)
                }
            }
        }
        return results
    }

    private func encodePlain(_ piece: Piece, into ids: inout [Int32]) {
        guard !piece.text.isEmpty else { return }
        let pieces = preTokenizer?.apply([piece]) ?? [piece]
        for piece in pieces where !piece.text.isEmpty { ids += model.encode(piece.text) }
    }

    /// Text of `ids`; unknown ids are skipped.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        let tokens = ids.compactMap { id -> String? in
            if skipSpecialTokens && isSpecial(id) { return nil }
            return token(for: id)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }
}

/// Each task of `encodeBatch` writes only its own elements of the buffer.
private struct UncheckedBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<[Int32]>
    init(_ buffer: UnsafeMutableBufferPointer<[Int32]>) { self.buffer = buffer }
}
