import Foundation
import Rewards
import Testing

@testable import Training

/// An LLM judge on a toy causal model: what it answers is noise, but the reward must be exactly what
/// its pattern reads from each answer, batched or not.
struct JudgeRewardTests {
    @Test func scoresAreWhatThePatternReadsFromEachAnswer() throws {
        let w = try Workspace()
        let inputs = (0..<5).map {
            RewardInput(
                prompt: "What is \($0) + \($0)? ", completion: "\($0 + $0)", fields: ["answer": .int($0 * 2)])
        }
        let judge = try JudgeReward(
            folder: w.model, template: "Grade {completion} against {answer}: ", pattern: "([0-9])", scale: 2,
            fallback: nil, maxNewTokens: 12)
        #expect(judge.requiredFields == ["answer"])
        #expect(try judge.request(inputs[3]).contains("Grade 6 against 6: "))
        let scores = try judge.score(inputs)
        let answers = judge.lastAnswers
        #expect(answers.count == 5)
        for (score, answer) in zip(scores, answers) {
            #expect(score == judge.parse(answer).map { $0 / 2 }, "answer \(answer.debugDescription)")
        }
        // Greedy answers do not depend on the batch: one at a time gives the same.
        for (input, answer) in zip(inputs, answers) {
            _ = try judge.score([input])
            #expect(judge.lastAnswers == [answer])
        }
        #expect(judge.parse("Score: 7/10") == 7)
        #expect(judge.parse("no number") == nil)
    }

    @Test func registryRefusesBadJudges() throws {
        let w = try Workspace()
        let cases: [([String: String], String)] = [
            (["model": w.model, "template": "no completion here"], "{completion}"),
            (["model": w.model, "pattern": "("], "a regular expression"),
            (["model": w.model, "scale": "0"], "other than 0"),
            (["model": w.root + "/missing"], "tokenizer.json"),
            (["model": w.model, "max_new_tokens": "0"], "at least 1"),
        ]
        for (options, expected) in cases {
            do {
                _ = try RewardRegistry.make(
                    RewardSpec(name: "judge", options: options), maxCompletionLength: 8)
                Issue.record("judge options \(options) were taken")
            } catch let error as RewardError {
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }

    @Test func aJudgeRewardsTrainingRollouts() throws {
        let w = try Workspace()
        let trainer = try GRPOTrainer(
            config: try w.config([
                "rewards": [["name": "judge", "model": w.model, "pattern": "([0-9])", "max_new_tokens": 6]]
            ]))
        let round = try trainer.rollout()
        #expect(round.rewards.count == 8 && round.rewards.allSatisfy { $0 >= 0 && $0 <= 0.9 })
        #expect(round.metrics["rewards/judge/mean"] != nil)
    }
}
