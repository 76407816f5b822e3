/// A post-processor from tokenizer.json's "post_processor": adds special tokens around a sequence.
enum PostProcessor {
    /// Pieces of the single-sequence template: a special token's ids, or the sequence itself.
    case template([TemplatePiece])
    /// Offsets only; ids are unchanged.
    case byteLevel
    case sequence([PostProcessor])

    enum TemplatePiece {
        case special([Int32])
        case sequence
    }

    static let supported = ["TemplateProcessing", "ByteLevel", "Sequence"]

    init(_ node: JSONNode) throws {
        switch try node.type() {
        case "TemplateProcessing":
            let specials = node["special_tokens"]
            self = .template(
                try node["single"].array().map { item in
                    if !item["Sequence"].isNull { return .sequence }
                    let name = try item["SpecialToken"]["id"].string()
                    guard specials[name]["ids"].isArray else {
                        throw specials[name].error("an entry for '\(name)' with \"ids\"")
                    }
                    return .special(try specials[name]["ids"].array().map { try $0.tokenID() })
                })
        case "ByteLevel": self = .byteLevel
        case "Sequence": self = .sequence(try node["processors"].array().map(PostProcessor.init))
        case let other:
            throw TokenizerError.unsupported(
                path: node.file, at: node.path + ".type", type: other, supported: Self.supported)
        }
    }

    func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .template(let pieces):
            return pieces.flatMap { piece -> [Int32] in
                switch piece {
                case .special(let special): special
                case .sequence: ids
                }
            }
        case .byteLevel:
            return ids
        case .sequence(let steps):
            return steps.reduce(ids) { $1.process($0) }
        }
    }
}
