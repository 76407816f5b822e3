import Foundation
import Generation
import Models
import Rewards
import Tensors
import Testing
import Tokenizers

@testable import Training

/// A toy model and dataset files under a fresh temporary folder.
private final class SFTWorkspace {
    let root = NSTemporaryDirectory() + "grpo-sft-\(UUID().uuidString)"
    var model: String { root + "/model" }

    init() throws {
        try ToyModel.write(to: model, layers: 2, hiddenSize: 32, heads: 4, keyValueHeads: 2, seed: 9)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func file(_ name: String, _ lines: [String]) throws -> String {
        let path = root + "/" + name
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func config(_ dataset: String, _ extra: [String: Any] = [:], output: String = "out") throws -> SFTConfig {
        let values = ConfigValues()
        values.merge(
            [
                "model": model, "dataset": dataset, "output_dir": root + "/" + output, "learning_rate": 3e-3,
                "per_device_train_batch_size": 2, "max_steps": 4, "save_steps": 2, "seed": 5,
                "logging_steps": 1,
            ], source: "test")
        values.merge(extra, source: "test")
        return try SFTConfig(values)
    }

    func load(_ path: String, completionOnly: Bool = true, maxLength: Int? = nil) throws -> [SFTExample] {
        try loadSFTDataset(
            path: path, tokenizer: try Tokenizer(path: model),
            config: try TokenizerConfig.load(folder: model),
            eosTokenID: 256, maxLength: maxLength, completionOnlyLoss: completionOnly)
    }
}

private let arithmetic = (1...6).map { #"{"prompt": "\#($0)+\#($0)=", "completion": "\#($0 + $0)"}"# }

struct SFTTests {
    @Test func promptCompletionLearnsTheCompletionAndEOS() throws {
        let w = try SFTWorkspace()
        let examples = try w.load(try w.file("d.jsonl", [#"{"prompt": "2+2=", "completion": "4", "id": 7}"#]))
        // Bytes of "2+2=" are ids 50 43 50 61; "4" is 52; EOS 256 is appended and learned.
        #expect(examples[0].tokens == [50, 43, 50, 61, 52, 256])
        #expect(examples[0].trained == [false, false, false, false, true, true])
        let all = try w.load(
            try w.file("d.jsonl", [#"{"prompt": "2+2=", "completion": "4"}"#]), completionOnly: false)
        #expect(all[0].trained == [false, true, true, true, true, true])
    }

    @Test func chatsLearnAssistantTurnsOnly() throws {
        let w = try SFTWorkspace()
        let line =
            #"{"messages": [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}, "#
            + #"{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}]}"#
        let example = try w.load(try w.file("chat.jsonl", [line]))[0]
        let tokenizer = try Tokenizer(path: w.model)
        let trainedText = tokenizer.decode(
            zip(example.tokens, example.trained).filter(\.1).map(\.0), skipSpecialTokens: false)
        #expect(trainedText == "2<|im_end|>\n4<|im_end|>\n")
        let whole = tokenizer.decode(example.tokens, skipSpecialTokens: false)
        guard case .object(let object) = try parseOrderedJSON(line), let messages = object["messages"] else {
            Issue.record("the test line is not an object")
            return
        }
        let rendered = try TokenizerConfig.load(folder: w.model).renderChat(
            messages: messages, addGenerationPrompt: false)
        #expect(whole == rendered)
        // The prompt/completion form with message lists learns only the completion's turns.
        let split =
            #"{"prompt": [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}], "#
            + #""completion": [{"role": "assistant", "content": "3"}]}"#
        let splitExample = try w.load(try w.file("split.jsonl", [split]))[0]
        #expect(
            tokenizer.decode(
                zip(splitExample.tokens, splitExample.trained).filter(\.1).map(\.0), skipSpecialTokens: false)
                == "3<|im_end|>\n")
    }

    @Test func badLinesNameFileAndLine() throws {
        let w = try SFTWorkspace()
        let cases: [(String, String)] = [
            (#"{"prompt": "a"}"#, "without \"completion\""),
            (#"{"completion": "a"}"#, "without \"prompt\""),
            (#"{"answer": 3}"#, "expected \"prompt\" and \"completion\""),
            (#"{"prompt": "a", "completion": ["x"]}"#, "expected one form"),
            (#"{"messages": [{"content": "hi"}]}"#, "needs a \"role\""),
            (#"{"prompt": "abcdefgh", "completion": "x"}"#, "nothing to learn within max_length 4"),
        ]
        for (line, message) in cases {
            let path = try w.file("bad.jsonl", [#"{"text": "fine"}"#, line])
            #expect {
                _ = try w.load(path, maxLength: 4)
            } throws: { error in
                "\(error)".contains("bad.jsonl:2:") && "\(error)".contains(message)
            }
        }
    }

    @Test func lossFallsAndMatchesTheModelsLogProbabilities() throws {
        let w = try SFTWorkspace()
        let path = try w.file("d.jsonl", arithmetic)
        var config = try w.config(
            path,
            [
                "max_steps": 30, "per_device_train_batch_size": 6, "shuffle_dataset": false,
                "learning_rate": 1e-2, "lr_scheduler_type": "constant",
            ])
        config.schedule.saveSteps = 100
        let trainer = try SFTTrainer(config: config)
        // The first step's loss is the mean negative log-likelihood of the learned tokens.
        let base = try ModelLoader.load(folder: w.model)
        let examples = trainer.examples
        let logp = base.logProbabilities(
            TokenBatch(sequences: examples.map(\.tokens), scored: examples.map(\.trained)), temperature: 1)
        let expected = -logp.reduce(0, +) / Float(logp.count)
        try trainer.train()
        let lines = try String(contentsOfFile: config.outputDir + "/metrics.jsonl", encoding: .utf8)
            .split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
        let losses = lines.map { $0["loss"] as! Double }
        #expect(abs(losses[0] - Double(expected)) < 1e-4 * Double(expected))
        #expect(losses.last! < 0.5 * losses[0], "loss \(losses[0]) -> \(losses.last!)")
        #expect(
            lines.last!["num_tokens"] as! Double == Double(30 * examples.reduce(0) { $0 + $1.trainedCount }))
        #expect(FileManager.default.fileExists(atPath: config.outputDir + "/model.safetensors"))
    }

    @Test func resumeContinuesExactly() throws {
        let w = try SFTWorkspace()
        let path = try w.file("d.jsonl", arithmetic)
        let straight = try SFTTrainer(config: try w.config(path, output: "a"))
        try straight.train()
        let config = try w.config(path, output: "b")
        let first = try SFTTrainer(config: config)
        first.shouldStop = stopAfter(2)
        try first.train()
        let resumed = try SFTTrainer(config: config, resumeFrom: Checkpoint.latest(in: w.root + "/b"))
        #expect(resumed.state.step == 2)
        try resumed.train()
        let a = straight.model.parameters.values
        let b = resumed.model.parameters.values
        #expect((0..<a.count).allSatisfy { a.pointer[$0] == b.pointer[$0] })
        // Every counter resumes, the tokens learned from (num_tokens) included.
        #expect(resumed.state == straight.state)
        let lastTokens = { (folder: String) throws -> Double? in
            let lines = try String(contentsOfFile: folder + "/metrics.jsonl", encoding: .utf8).split(
                separator: "\n")
            let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any]
            return (last?["num_tokens"] as? NSNumber)?.doubleValue
        }
        let straightTokens = try #require(try lastTokens(w.root + "/a"))
        #expect(straightTokens > 0)
        #expect(try lastTokens(w.root + "/b") == straightTokens)
    }

    @Test func epochsSetTheRunLength() throws {
        let values = ConfigValues()
        values.merge(
            [
                "model": NSTemporaryDirectory(), "dataset": "d", "num_train_epochs": 2,
                "per_device_train_batch_size": 4,
                "gradient_accumulation_steps": 2,
            ], source: "test")
        let config = try SFTConfig(values)
        #expect(config.totalSteps(examples: 20) == 5)
        #expect(config.optimizer.learningRate(step: 0, totalSteps: 5) == 2e-5)
        let bad = ConfigValues()
        bad.merge(
            ["model": NSTemporaryDirectory(), "dataset": "d", "num_train_epoch": 2], source: "sft.yaml")
        #expect { _ = try SFTConfig(bad) } throws: {
            "\($0)" == "sft.yaml: num_train_epoch: unknown option; did you mean 'num_train_epochs'?"
        }
    }
}

struct RejectionSamplingTests {
    @Test func keepsPassingCompletionsAsSFTData() throws {
        let w = try SFTWorkspace()
        let chat = try w.file(
            "chat.jsonl",
            (1...3).map {
                #"{"messages": [{"role": "user", "content": "\#($0)+1="}], "answer": "\#($0 + 1)"}"#
            })
        let text = try w.file("text.jsonl", [#"{"prompt": "5+5=", "answer": "10", "id": 4}"#])
        let model = try ModelLoader.load(folder: w.model)
        let tokenizer = try Tokenizer(path: w.model)
        let config = try TokenizerConfig.load(folder: w.model)
        var sampling = SamplingParameters()
        sampling.numGenerations = 4
        sampling.maxNewTokens = 5
        sampling.seed = 3
        sampling.stopTokenIDs = [256, 258]
        let everything = try FormatReward(pattern: ".*")
        func run(_ path: String, _ threshold: Double, _ rule: KeepRule) throws -> RejectionSampleReport {
            try rejectionSample(
                model: model, tokenizer: tokenizer, tokenizerConfig: config, datasetPath: path,
                rewards: [everything], weights: [1], sampling: sampling, threshold: threshold, rule: rule)
        }
        let best = try run(chat, 1, .best)
        #expect(best.lines.count == 3 && best.promptsKept == 3 && best.sampled == 12)
        let all = try run(chat, 1, .all)
        #expect(all.lines.count > 3 && all.lines.count <= 12)
        #expect(try run(chat, 1.5, .all).lines.isEmpty)
        // The kept lines are SFT data: the assistant reply appended, the other fields kept.
        let output = try w.file("kept.jsonl", all.lines)
        let examples = try w.load(output)
        #expect(examples.count == all.lines.count)
        #expect(
            all.lines[0].hasPrefix(
                #"{"messages": [{"role": "user", "content": "1+1="}, {"role": "assistant""#))
        #expect(all.lines[0].contains(#""answer": "2", "reward": 1.0}"#))
        let plain = try run(text, 1, .best)
        #expect(plain.lines[0].hasPrefix(#"{"prompt": "5+5=", "completion": "#))
        #expect(plain.lines[0].hasSuffix(#""answer": "10", "id": 4, "reward": 1.0}"#))
        _ = try w.load(try w.file("plain.jsonl", plain.lines))
    }
}
