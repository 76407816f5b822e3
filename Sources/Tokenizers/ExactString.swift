import Foundation

/// A string compared and hashed by its UTF-8 bytes, that is by its exact Unicode scalars.
///
/// Swift's `String ==` is canonical equivalence, so as dictionary keys U+03AC (ά) and U+1F71 (ά)
/// are one key: in the Llama-2 vocabulary they are two tokens (ids 30216 and 31042). Vocabularies,
/// added tokens, caches and JSON object keys use this type, as the Rust `tokenizers` and Python's
/// dict compare code points.
public struct ExactString: Hashable, Sendable, CustomStringConvertible {
    public let string: String

    public init(_ string: String) { self.string = string }

    public var description: String { string }

    public static func == (a: ExactString, b: ExactString) -> Bool {
        let (x, y) = (a.string.utf8, b.string.utf8)
        guard x.count == y.count else { return false }
        if x.isEmpty { return true }
        let compared: Bool? =
            x.withContiguousStorageIfAvailable { p in
                y.withContiguousStorageIfAvailable { q in memcmp(p.baseAddress!, q.baseAddress!, p.count) == 0
                }
            } ?? nil
        return compared ?? x.elementsEqual(y)
    }

    public func hash(into hasher: inout Hasher) {
        let utf8 = string.utf8
        hasher.combine(utf8.count)
        let hashed: Void? = utf8.withContiguousStorageIfAvailable {
            hasher.combine(bytes: UnsafeRawBufferPointer($0))
        }
        if hashed == nil { for byte in utf8 { hasher.combine(byte) } }
    }
}

extension String {
    /// Whether the string's scalars start with `prefix`'s (`hasPrefix` compares characters, and
    /// " \u{301}" does not start with " ").
    func startsWithScalars(_ prefix: String) -> Bool { unicodeScalars.starts(with: prefix.unicodeScalars) }

    /// Every occurrence of `target`'s scalars replaced by `replacement`, scanning left to right
    /// (Foundation's `replacingOccurrences` compares composed characters).
    func replacingScalars(_ target: String, with replacement: String) -> String {
        let pattern = Array(target.unicodeScalars)
        guard !pattern.isEmpty else { return self }
        let scalars = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == pattern[0], i + pattern.count <= scalars.count,
                scalars[i..<(i + pattern.count)].elementsEqual(pattern)
            {
                out.append(contentsOf: replacement.unicodeScalars)
                i += pattern.count
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    /// Scalar-aligned ranges of the non-overlapping occurrences of `target`, left to right.
    func scalarRanges(of target: String) -> [Range<String.Index>] {
        let pattern = Array(target.unicodeScalars)
        guard !pattern.isEmpty else { return [] }
        let view = unicodeScalars
        var ranges: [Range<String.Index>] = []
        var index = view.startIndex
        while index < view.endIndex {
            var end = index
            var matched = true
            for scalar in pattern {
                guard end < view.endIndex, view[end] == scalar else {
                    matched = false
                    break
                }
                end = view.index(after: end)
            }
            if matched {
                ranges.append(index..<end)
                index = end
            } else {
                index = view.index(after: index)
            }
        }
        return ranges
    }
}
