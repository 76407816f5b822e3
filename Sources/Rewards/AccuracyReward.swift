/// 1.0 when the completion's final answer equals the reference field, else 0.0.
///
/// The answer is found by `extractAnswer` and compared by `answersMatch`; the reference may be a
/// GSM8K solution (`... #### 72`), a `\boxed{}` solution, or the bare answer (text or number).
public final class AccuracyReward: Reward {
    public let name = "accuracy"
    /// The dataset field holding the reference answer.
    public let field: String
    public var requiredFields: [String] { [field] }

    public init(field: String = "answer") { self.field = field }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        try batch.map { input in
            guard let reference = input.fields[field]?.fieldText else {
                throw RewardError.missingField(reward: name, field: field, line: nil)
            }
            guard let answer = extractAnswer(input.completion) else { return 0 }
            return answersMatch(answer, referenceAnswer(reference)) ? 1 : 0
        }
    }
}
