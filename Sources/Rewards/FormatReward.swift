import Foundation

/// 1.0 when the whole completion matches a regular expression, else 0.0.
///
/// The default is DeepSeek-R1's form, reasoning in `<think>` then the answer in `<answer>`:
/// `^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$`, with `.` matching newlines.
public final class FormatReward: Reward {
    public static let r1Pattern = #"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$"#
    public let name = "format"
    public let requiredFields: [String] = []
    public let pattern: String
    private let regex: NSRegularExpression

    public init(pattern: String = FormatReward.r1Pattern) throws {
        self.pattern = pattern
        do {
            regex = try NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
        } catch {
            throw RewardError.badOption(
                reward: name, option: "pattern", expected: "a valid regular expression")
        }
    }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        batch.map { input in
            let range = NSRange(input.completion.startIndex..., in: input.completion)
            return regex.firstMatch(in: input.completion, options: [.anchored], range: range).map {
                $0.range.length == range.length ? 1.0 : 0.0
            } ?? 0
        }
    }
}
