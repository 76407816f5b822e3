import ArgumentParser
import Foundation
import Models
import Rewards
import Tokenizers
import Training

struct RewardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reward",
        abstract: "Score prompt + completion lines with a run's rewards, to test them before training.",
        discussion: """
            Reads the rewards from --config (a training config's `rewards` or `reward_funcs`, with \
            `reward_weights` and `max_completion_length`; its other keys are ignored) or from flags \
            (--rewards accuracy,format --reward_weights 1,0.5). Each input line is {"prompt": text or \
            chat messages, "completion": text (or [{"role": "assistant", "content": text}]), ...the \
            fields the rewards read}; an optional "completion_length" gives the length in tokens, \
            otherwise the tokenizer of --model (or the config's model_name_or_path) counts it. Prints \
            one line per input: {"reward": weighted total, "rewards": {"NAME": score or null}}. \
            Completions of the same prompt form a group (the length reward compares within one).

            """ + RewardRegistry.help + """


                Example: grpo reward --config grpo.yaml --input samples.jsonl
                """)

    @Option(help: "A YAML file with rewards (a training config will do).") var config: String?
    @Option(help: "JSONL lines of prompt, completion and fields.") var input: String
    @Option(help: "A model folder whose tokenizer counts completion tokens and renders chat prompts.")
    var model: String?
    @Argument(parsing: .allUnrecognized, help: "Reward keys as flags: --rewards accuracy,format.")
    var overrides: [String] = []

    func run() throws {
        let values = try configValues(file: config, flags: overrides)
        values.use(ConfigTable.grpo)
        let settings = try RewardSettings(values)
        let maxCompletionLength = try values.int("max_completion_length")
        let modelFolder =
            try model ?? values.optionalString("model_name_or_path") ?? values.optionalString("model")
        var tokenizer: Tokenizer?
        var tokenizerConfig: TokenizerConfig?
        if let modelFolder {
            let folder = try HubCache.resolve(modelFolder)
            tokenizer = try Tokenizer(path: folder)
            tokenizerConfig = try TokenizerConfig.load(folder: folder)
        }
        let rewards = try settings.make(maxCompletionLength: maxCompletionLength) {
            FileHandle.standardError.write(Data("warning: \($0)\n".utf8))
        }
        let lines = try readJSONLines(input)
        // The length rewards read completion_length: given on the line, or counted by a tokenizer.
        let needsLength = rewards.contains { $0 is SoftOverlongPunishment || $0 is LengthReward }
        let inputs = try lines.map {
            try rewardInput(line: $0.line, $0.object, tokenizer, tokenizerConfig, needsLength: needsLength)
        }
        let needed = requiredFields(of: rewards)
        for (line, item) in zip(lines, inputs) {
            if let problem = fieldProblem(item.fields, needed) {
                throw InputError(path: input, line: line.line, reason: problem)
            }
        }
        var groups: [String: Int] = [:]
        let grouped = inputs.map { item in
            var item = item
            let key = item.messages?.jsonText ?? item.prompt
            item.group = groups[key] ?? groups.count
            groups[key] = item.group
            return item
        }
        // Scored a few hundred lines at a time, each reward over the whole chunk (a reward model
        // batches it), printed as each chunk finishes.
        var start = 0
        while start < grouped.count {
            let chunk = Array(grouped[start..<min(start + 256, grouped.count)])
            let scores = try rewards.map { reward in
                let scores = try reward.score(chunk)
                precondition(
                    scores.count == chunk.count, "reward \(reward.name) returned \(scores.count) scores")
                return scores
            }
            let totals = combineRewards(scores, weights: settings.weights)
            for (row, total) in totals.enumerated() {
                let each = Object(
                    rewards.indices.map { (rewards[$0].name, scores[$0][row].map(Value.double) ?? .none) })
                print(
                    Value.object(Object([("reward", .double(total)), ("rewards", .object(each))])).jsonText)
            }
            start += chunk.count
        }
    }

    /// What the rewards see of one input line.
    private func rewardInput(
        line: Int, _ object: Object, _ tokenizer: Tokenizer?, _ config: TokenizerConfig?, needsLength: Bool
    ) throws -> RewardInput {
        func fail(_ reason: String) -> InputError { InputError(path: input, line: line, reason: reason) }
        let completion: String
        switch object["completion"] {
        case .string(let text)?: completion = text
        case .array(let turns)?:
            guard turns.count == 1, case .object(let turn) = turns[0],
                case .string(let text)? = turn["content"]
            else {
                throw fail(
                    "\"completion\" as a list must be one message, [{\"role\": \"assistant\", \"content\": text}]"
                )
            }
            completion = text
        default: throw fail("expected a \"completion\" field holding text")
        }
        var prompt = ""
        var messages: Value?
        switch object["prompt"] {
        case .string(let text)?: prompt = text
        case .array(let list)?:
            messages = .array(list)
            if let config, config.chatTemplate != nil {
                do {
                    prompt = try config.renderChat(messages: .array(list), addGenerationPrompt: true)
                } catch {
                    throw fail("chat template of --model: \(error)")
                }
            }
        case nil: prompt = ""
        default: throw fail("\"prompt\" must be text or a list of chat messages")
        }
        let length: Int
        if let given = object["completion_length"] {
            guard let count = given.wholeNumber, count >= 0 else {
                throw fail("\"completion_length\" must be a whole number of tokens, got \(given.jsonText)")
            }
            length = count
        } else if let tokenizer {
            length = tokenizer.encode(completion, addSpecialTokens: false).count
        } else if needsLength {
            throw fail(
                "a length reward needs \"completion_length\" on each line, or --model for its tokenizer")
        } else {
            length = 0
        }
        var fields: [String: Value] = [:]
        for key in object.keys where !["prompt", "completion", "completion_length"].contains(key) {
            fields[key] = object[key]
        }
        return RewardInput(
            prompt: prompt, completion: completion, completionLength: length, fields: fields,
            messages: messages)
    }
}
