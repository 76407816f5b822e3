import Testing
import Tokenizers

@testable import Rewards

struct AccuracyRewardTests {
    @Test(
        arguments: [
            ("The answer is \\boxed{\\frac{1}{2}} indeed", "\\frac{1}{2}"),
            ("nested \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
            ("first \\boxed{1} then \\boxed{2}", "2"),
            ("<think>7 maybe</think><answer> 42 </answer>", "42"),
            ("<answer>so \\boxed{9}</answer>", "9"),
            ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
            ("3 apples and 5 pears make 8", "8"),
            ("it was -1,234.50 dollars", "-1,234.50"),
            ("half is \\dfrac{3}{4}", "\\dfrac{3}{4}"),
            ("no numbers here", nil),
        ] as [(String, String?)])
    func extraction(text: String, expected: String?) {
        #expect(extractAnswer(text) == expected)
    }

    @Test(arguments: [
        ("42", "42", true), ("42.0", "42", true), ("42.50", "42.5", true), ("1,234", "1234", true),
        ("-3", "-3", true), ("+3", "3", true), ("3", "-3", false), ("1/2", "0.5", true),
        ("\\frac{1}{2}", "0.5", true), ("\\dfrac{2}{4}", "1/2", true), ("-\\frac{3}{4}", "-0.75", true),
        ("50%", "50", true), ("50\\%", "0.5", true), ("0.5", "50%", true), ("$18", "18", true),
        ("18 \\text{ dollars}", "18", true), ("0.333", "1/3", false), ("12,34", "1234", false),
        ("x = 7", "7", true), ("\\pi", "\\pi", true), ("\\pi", "\\tau", false), ("7.", "7", true),
        ("1e3", "1000", false),
    ])
    func comparison(answer: String, reference: String, expected: Bool) {
        #expect(answersMatch(answer, reference) == expected, "\(answer) vs \(reference)")
    }

    @Test func scoresAgainstTheReferenceField() throws {
        let reward = AccuracyReward()
        let inputs = [
            RewardInput(
                prompt: "p", completion: "so \\boxed{72}", fields: ["answer": .string("... #### 72")]),
            RewardInput(prompt: "p", completion: "<answer>71</answer>", fields: ["answer": .int(72)]),
            RewardInput(prompt: "p", completion: "nothing", fields: ["answer": .int(72)]),
            RewardInput(prompt: "p", completion: "it is 0.5", fields: ["answer": .double(0.5)]),
        ]
        #expect(try reward.score(inputs) == [1, 0, 0, 1])
    }

    @Test func aListOfReferencesAcceptsAnyOfThem() throws {
        let reward = AccuracyReward()
        let answers = Value.array([.string("\\frac{1}{2}"), .double(0.5), .string("one half")])
        let inputs = ["\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{one half}", "\\boxed{2}"].map {
            RewardInput(prompt: "p", completion: $0, fields: ["answer": answers])
        }
        #expect(try reward.score(inputs) == [1, 1, 1, 0])
        #expect(reward.fieldProblem("answer", answers) == nil)
        #expect(reward.fieldProblem("answer", .array([])) != nil)
        #expect(reward.fieldProblem("answer", .array([.string("1"), .array([])])) != nil)
        #expect(reward.fieldProblem("answer", .object(Object())) != nil)
    }

    @Test func missingReferenceIsAnError() {
        #expect(throws: RewardError.missingField(reward: "accuracy", field: "answer", line: nil)) {
            try AccuracyReward().score([RewardInput(prompt: "p", completion: "1")])
        }
    }
}
