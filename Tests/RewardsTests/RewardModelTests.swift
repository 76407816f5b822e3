import Foundation
import Models
import Testing
import Tokenizers

@testable import Rewards

/// Reward models made by scripts/make_reward_fixtures.py with transformers (see its docstring):
/// scores as TRL's GRPOTrainer computes them, batched with right padding.
let rewardFixtures = ["llama-rm", "qwen2-rm", "qwen3-rm", "mistral-rm"]

func rewardFixture(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
}

struct RewardFixtureCase {
    let input: RewardInput
    let score: Double
    let inputIDs: [Int32]
}

/// The plain and chat cases of a fixture's expected.json.
func rewardFixtureCases(_ folder: String) throws -> (plain: [RewardFixtureCase], chat: [RewardFixtureCase]) {
    let text = try String(contentsOfFile: folder + "/expected.json", encoding: .utf8)
    guard case .object(let root) = try parseOrderedJSON(text) else { throw RewardError.model("bad fixture") }
    func cases(_ key: String, chat: Bool) -> [RewardFixtureCase] {
        guard case .array(let items)? = root[key] else { return [] }
        return items.compactMap { item in
            guard case .object(let object) = item, case .string(let completion)? = object["completion"],
                case .double(let score)? = object["score"], case .array(let ids)? = object["input_ids"]
            else { return nil }
            let prompt: String
            if case .string(let text)? = object["prompt"] { prompt = text } else { prompt = "" }
            return RewardFixtureCase(
                input: RewardInput(
                    prompt: prompt, completion: completion, messages: chat ? object["prompt"] : nil),
                score: score,
                inputIDs: ids.compactMap { if case .int(let id) = $0 { Int32(id) } else { nil } })
        }
    }
    return (cases("cases", chat: false), cases("chat_cases", chat: true))
}

struct RewardModelTests {
    @Test(arguments: rewardFixtures) func matchesTransformers(name: String) throws {
        let folder = rewardFixture(name)
        let (plain, chat) = try rewardFixtureCases(folder)
        #expect(plain.count == 8)
        #expect(chat.count == (name.hasPrefix("qwen") ? 3 : 0))
        let reward = try RewardModel(folder: folder)
        #expect(reward.name == name)
        for item in plain + chat {
            let ids = reward.tokenizer.encode(try reward.text(item.input), addSpecialTokens: false)
            #expect(ids == item.inputIDs, "\(name): tokens of \(item.input.completion.debugDescription)")
        }
        // Every case in one batch, then one token budget per sequence: the same scores.
        for budget in [4096, 1] {
            let batched = try RewardModel(folder: folder, batchTokens: budget)
            let scores = try batched.score((plain + chat).map(\.input))
            for (item, score) in zip(plain + chat, scores) {
                let got = try #require(score)
                #expect(
                    abs(got - item.score) <= 1e-4, "\(name): \(got) against \(item.score) (budget \(budget))")
            }
        }
    }

    @Test func poolsAtTheLastTokenThatIsNotPadding() throws {
        let reward = try RewardModel(folder: rewardFixture("mistral-rm"))
        let pad = try #require(reward.padTokenID)
        #expect(reward.poolingRow([5, 6, 7]) == 2)
        #expect(reward.poolingRow([5, pad, 7, pad, pad]) == 2)
        #expect(reward.poolingRow([pad, pad]) == 0)  // transformers' argmax over an all-padding row
        #expect(try reward.score([RewardInput(prompt: "", completion: "")]) == [nil])
    }

    @Test func refusesWhatIsNotARewardModel() throws {
        let missing = "/nonexistent/reward-model"
        #expect(throws: RewardError.self) { try RewardModel(folder: missing) }
        // A folder without score.weight: the fixture's tokenizer and config, no weights of a head.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rm-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = rewardFixture("qwen2-rm")
        for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: folder + "/" + file)
        }
        let config = try ModelConfig.load(path: source + "/config.json")
        try ModelLoader.save(ModelLoader.randomModel(config: config, seed: 1), to: folder)
        do {
            _ = try RewardModel(folder: folder)
            Issue.record("a causal LM folder was taken for a reward model")
        } catch let error as RewardError {
            #expect(error.description.contains("score.weight"))
        }
        let three = ModelLoader.randomModel(config: config, seed: 1, head: .score(labels: 3))
        try ModelLoader.save(three, to: folder)
        do {
            _ = try RewardModel(folder: folder)
            Issue.record("a 3-label classifier was taken for a reward model")
        } catch let error as RewardError {
            #expect(error.description.contains("num_labels 1"))
        }
    }

    @Test func registryBuildsItWithItsOptions() throws {
        let folder = rewardFixture("llama-rm")
        let reward = try RewardRegistry.make(
            RewardSpec(
                name: "reward_model",
                options: ["model": folder, "metric_name": "helpful", "batch_tokens": "64"]),
            maxCompletionLength: 8)
        let model = try #require(reward as? RewardModel)
        #expect(model.name == "helpful" && model.batchTokens == 64)
        do {
            _ = try RewardRegistry.make(RewardSpec(name: "reward_model"), maxCompletionLength: 8)
            Issue.record("a reward model without its folder was built")
        } catch let error as RewardError {
            #expect(error.description.contains("option 'model' must be given"))
        }
        do {
            _ = try RewardRegistry.make(
                RewardSpec(name: "reward_model", options: ["modle": folder]), maxCompletionLength: 8)
            Issue.record("a misspelt option was taken")
        } catch let error as RewardError {
            #expect(error.description.contains("did you mean 'model'?"))
        }
        #expect(throws: RewardError.self) {
            try RewardRegistry.make(
                RewardSpec(name: "reward_model", options: ["model": folder, "batch_tokens": "0"]),
                maxCompletionLength: 8)
        }
    }

    @Test func everyKindIsDeclaredOnce() {
        #expect(Set(RewardRegistry.names).count == RewardRegistry.kinds.count)
        for kind in RewardRegistry.kinds {
            #expect(RewardRegistry.help.contains(kind.name + ": "))
            #expect(Set(kind.options.map(\.name)).count == kind.options.count)
        }
        let error = RewardError.unknownReward("reward_modl", known: RewardRegistry.names)
        #expect(error.description.contains("did you mean 'reward_model'?"))
    }
}
