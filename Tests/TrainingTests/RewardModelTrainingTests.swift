import Foundation
import Rewards
import Testing

@testable import Training

/// A reward model as a training reward: the rollout's rewards are its scores of prompt + completion.
struct RewardModelTrainingTests {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("RewardsTests/Fixtures/qwen2-rm").path

    @Test func theRolloutIsScoredByTheRewardModel() throws {
        let w = try Workspace()
        let trainer = try GRPOTrainer(
            config: try w.config(["rewards": [["name": "reward_model", "model": folder, "batch_tokens": 40]]])
        )
        let round = try trainer.rollout()
        let reward = try RewardModel(folder: folder)
        let inputs = zip(round.sequences, round.promptLengths).map { sequence, length in
            RewardInput(
                prompt: trainer.tokenizer.decode(Array(sequence[..<length])),
                completion: trainer.tokenizer.decode(Array(sequence[length...]), skipSpecialTokens: true))
        }
        let expected = try reward.score(inputs)
        #expect(round.rewards.count == 8 && Set(round.rewards).count > 1)
        for (got, want) in zip(round.rewards, expected) {
            #expect(
                abs(got - (want ?? .nan)) < 1e-5,
                "reward \(got) against the model's \(String(describing: want))")
        }
        #expect(round.metrics["rewards/qwen2-rm/mean"] != nil)
    }
}
