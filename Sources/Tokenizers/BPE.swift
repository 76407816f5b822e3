import Foundation

/// Byte-pair encoding (Sennrich and others, 2016) as tokenizers' `models.BPE` applies it.
///
/// A piece starts as one symbol per Unicode scalar (its vocabulary id; with `byteFallback`, the
/// `<0xXX>` ids of its UTF-8 bytes when the scalar is not in the vocabulary; else `unk`), then the
/// adjacent pair with the lowest merge rank is merged, leftmost first, until no pair has a merge.
final class BPE {
    /// Token -> id, keyed by exact scalars (see `ExactString`).
    let vocab: [ExactString: Int32]
    let idToToken: [Int32: String]
    /// Ids of the one-scalar tokens, the symbols a piece starts from.
    private let scalarIDs: [UInt32: Int32]
    /// Merges keyed by (left id, right id), giving (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    let unkID: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    private let byteIDs: [Int32?]
    private var cache: [ExactString: [Int32]] = [:]
    private let cacheLock = NSLock()

    init(_ node: JSONNode) throws {
        let type = node["type"].isNull ? "BPE" : try node.type()
        guard type == "BPE" else {
            throw TokenizerError.unsupported(
                path: node.file, at: node.path + ".type", type: type, supported: ["BPE"])
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] where !node[key].isNull {
            if let value = node[key].stringValue, value.isEmpty { continue }
            throw node[key].error("null (subword prefixes and suffixes are not supported)")
        }
        guard case .object(let vocabObject) = node["vocab"].value else {
            throw node["vocab"].error("an object of token -> id")
        }
        var vocab: [ExactString: Int32] = [:]
        var idToToken: [Int32: String] = [:]
        var scalarIDs: [UInt32: Int32] = [:]
        vocab.reserveCapacity(vocabObject.count)
        idToToken.reserveCapacity(vocabObject.count)
        for (token, _) in vocabObject.pairs {
            let id = try node["vocab"][token].tokenID()
            vocab[ExactString(token)] = id
            if idToToken[id] == nil { idToToken[id] = token }
            var scalars = token.unicodeScalars.makeIterator()
            if let first = scalars.next(), scalars.next() == nil { scalarIDs[first.value] = id }
        }
        self.vocab = vocab
        self.idToToken = idToToken
        self.scalarIDs = scalarIDs
        var merges: [UInt64: (Int32, Int32)] = [:]
        for (rank, entry) in try node["merges"].array().enumerated() {
            let pair: [String]
            if let text = entry.stringValue {
                // Split on space scalars: a space can begin a grapheme cluster with what follows it
                // ("\u{200D} \u{200D}"), so splitting on characters would miss it.
                let parts = text.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw entry.error("two tokens separated by one space, got \(text.debugDescription)")
                }
                pair = parts.map { String(String.UnicodeScalarView($0)) }
            } else if case .array(let items) = entry.value, items.count == 2,
                case .string(let left) = items[0], case .string(let right) = items[1]
            {
                pair = [left, right]
            } else {
                throw entry.error("\"left right\" or [\"left\", \"right\"]")
            }
            guard let left = vocab[ExactString(pair[0])], let right = vocab[ExactString(pair[1])] else {
                throw entry.error("tokens that are in the vocabulary, got \(pair)")
            }
            guard let merged = vocab[ExactString(pair[0] + pair[1])] else {
                throw entry.error("a merge whose result '\(pair[0] + pair[1])' is in the vocabulary")
            }
            merges[Self.key(left, right)] = (Int32(rank), merged)  // a repeated merge: the last wins
        }
        self.merges = merges
        let unk = try node["unk_token"].optionalString()
        unkID = unk.flatMap { vocab[ExactString($0)] }
        fuseUnk = try node["fuse_unk"].bool(default: false)
        byteFallback = try node["byte_fallback"].bool(default: false)
        ignoreMerges = try node["ignore_merges"].bool(default: false)
        byteIDs = (0..<256).map { vocab[ExactString(String(format: "<0x%02X>", $0))] }
    }

    @inline(__always)
    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// The ids of one pre-tokenized piece.
    func encode(_ piece: String) -> [Int32] {
        let key = ExactString(piece)
        if ignoreMerges, let id = vocab[key] { return [id] }
        cacheLock.lock()
        let cached = cache[key]
        cacheLock.unlock()
        if let cached { return cached }
        var symbols = initialSymbols(piece)
        mergeAll(&symbols)
        if piece.utf8.count < 256 {
            cacheLock.lock()
            if cache.count > 200_000 { cache.removeAll(keepingCapacity: true) }
            cache[key] = symbols
            cacheLock.unlock()
        }
        return symbols
    }

    private func initialSymbols(_ piece: String) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(piece.unicodeScalars.count)
        var lastWasUnk = false
        for scalar in piece.unicodeScalars {
            if let id = scalarIDs[scalar.value] {
                symbols.append(id)
                lastWasUnk = false
                continue
            }
            if byteFallback {
                let bytes = Array(String(scalar).utf8)
                let ids = bytes.compactMap { byteIDs[Int($0)] }
                if ids.count == bytes.count {
                    symbols += ids
                    lastWasUnk = false
                    continue
                }
            }
            guard let unkID else { continue }  // no unk token: the character is dropped, as tokenizers does
            if !(fuseUnk && lastWasUnk) { symbols.append(unkID) }
            lastWasUnk = true
        }
        return symbols
    }

    /// The symbols of `piece` merged by the heap path or by the scan path (for tests: they must agree).
    func merged(_ piece: String, heap: Bool) -> [Int32] {
        var symbols = initialSymbols(piece)
        if heap { mergeWithHeap(&symbols) } else { mergeAll(&symbols, scanOnly: true) }
        return symbols
    }

    private func mergeAll(_ symbols: inout [Int32], scanOnly: Bool = false) {
        if symbols.count > 32 && !scanOnly {
            mergeWithHeap(&symbols)
            return
        }
        // Short pieces (nearly all): a scan for the lowest-ranked pair beats a heap's bookkeeping.
        while symbols.count > 1 {
            var best: (rank: Int32, index: Int, id: Int32)?
            for i in 0..<(symbols.count - 1) {
                if let merge = merges[Self.key(symbols[i], symbols[i + 1])], merge.rank < (best?.rank ?? .max)
                {
                    best = (merge.rank, i, merge.id)
                }
            }
            guard let best else { return }
            symbols[best.index] = best.id
            symbols.remove(at: best.index + 1)
        }
    }

    /// The same merges in O(n log n), for long pieces.
    ///
    /// Symbols sit in a linked list and candidate pairs in a min-heap keyed by (rank, left position).
    /// A popped pair is stale when its left symbol is gone or the pair at that position now has
    /// another rank (every pair has its own rank).
    private func mergeWithHeap(_ symbols: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else { return }
        var next = Array(1...n)
        var previous = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        func push(_ left: Int) {
            let right = next[left]
            guard left >= 0, right < n, let merge = merges[Self.key(symbols[left], symbols[right])] else {
                return
            }
            heap.push(UInt64(merge.rank) << 32 | UInt64(left))
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop() {
            let left = Int(top & 0xFFFF_FFFF)
            let right = next[left]
            guard alive[left], right < n,
                let merge = merges[Self.key(symbols[left], symbols[right])], UInt64(merge.rank) == top >> 32
            else { continue }
            symbols[left] = merge.id
            alive[right] = false
            next[left] = next[right]
            if next[right] < n { previous[next[right]] = left }
            if previous[left] >= 0 { push(previous[left]) }
            push(left)
        }
        symbols = (0..<n).filter { alive[$0] }.map { symbols[$0] }
    }
}

/// A binary min-heap of UInt64 keys.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ key: UInt64) {
        items.append(key)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[parent] > items[i] else { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let (l, r) = (2 * i + 1, 2 * i + 2)
                var smallest = i
                if l < items.count && items[l] < items[smallest] { smallest = l }
                if r < items.count && items[r] < items[smallest] { smallest = r }
                if smallest == i { break }
                items.swapAt(i, smallest)
                i = smallest
            }
        }
        return first
    }
}
