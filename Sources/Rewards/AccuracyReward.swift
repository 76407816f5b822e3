import Tokenizers

/// 1.0 when the completion's final answer equals the reference field, else 0.0.
///
/// The answer is found by `extractAnswer` and compared by `answersMatch`; the reference may be a
/// GSM8K solution (`... #### 72`), a `\boxed{}` solution, or the bare answer (text or number), or a
/// list of such answers, any of which is right.
public final class AccuracyReward: Reward {
    public let name = "accuracy"
    /// The dataset field holding the reference answer.
    public let field: String
    public var requiredFields: [String] { [field] }

    public init(field: String = "answer") { self.field = field }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        try batch.map { input in
            guard let value = input.fields[field], let references = Self.references(value) else {
                throw RewardError.missingField(reward: name, field: field, line: nil)
            }
            guard let answer = extractAnswer(input.completion) else { return 0 }
            return references.contains { answersMatch(answer, referenceAnswer($0)) } ? 1 : 0
        }
    }

    public func fieldProblem(_ field: String, _ value: Value) -> String? {
        Self.references(value) == nil ? "text, a number, or a non-empty list of them (any one is right)" : nil
    }

    /// The acceptable answers of a reference field; nil when it holds none.
    private static func references(_ value: Value) -> [String]? {
        if let text = value.fieldText { return [text] }
        guard case .array(let items) = value, !items.isEmpty else { return nil }
        let texts = items.compactMap(\.fieldText)
        return texts.count == items.count ? texts : nil
    }
}
