import Foundation
import Testing
import Tokenizers

@testable import Rewards

struct FormatAndLengthTests {
    @Test func r1Format() throws {
        let reward = try FormatReward()
        let texts = [
            "<think>\nstep 1\nstep 2\n</think>\n<answer>\n4\n</answer>",
            "<think>x</think><answer>4</answer>\n",
            "<answer>4</answer>", "<think>x</think><answer>4</answer> trailing", "<think>x</think>",
        ]
        #expect(try reward.score(texts.map { RewardInput(prompt: "", completion: $0) }) == [1, 1, 0, 0, 0])
    }

    @Test func customPatternAndBadPattern() throws {
        let reward = try FormatReward(pattern: "[0-9]+")
        #expect(
            try reward.score([
                RewardInput(prompt: "", completion: "123"), .init(prompt: "", completion: "12a"),
            ]) == [1, 0])
        #expect(throws: RewardError.self) { try FormatReward(pattern: "(unclosed") }
    }

    @Test func softOverlongPunishmentMatchesDAPO() throws {
        // L_max 100, L_cache 20: no penalty to 80, linear to -1 at 100, -1 beyond.
        let reward = try SoftOverlongPunishment(maxCompletionLength: 100, softPunishCache: 20)
        let lengths = [10, 80, 81, 90, 100, 101]
        let scores = try reward.score(
            lengths.map { RewardInput(prompt: "", completion: "", completionLength: $0) })
        #expect(scores == [0, 0, -0.05, -0.5, -1, -1])
        #expect(throws: RewardError.self) {
            try SoftOverlongPunishment(maxCompletionLength: 10, softPunishCache: 11)
        }
    }

    @Test func kimiLengthRewardWithinGroups() throws {
        let answer: [String: Value] = ["answer": .int(5)]
        let inputs = [
            RewardInput(prompt: "", completion: "5", completionLength: 10, group: 0, fields: answer),
            RewardInput(prompt: "", completion: "5", completionLength: 30, group: 0, fields: answer),
            RewardInput(prompt: "", completion: "4", completionLength: 20, group: 0, fields: answer),
            RewardInput(prompt: "", completion: "4", completionLength: 10, group: 0, fields: answer),
            RewardInput(prompt: "", completion: "5", completionLength: 7, group: 1, fields: answer),
            RewardInput(prompt: "", completion: "5", completionLength: 7, group: 1, fields: answer),
        ]
        // group 0: min 10, max 30; λ = 0.5, -0.5, 0, 0.5; wrong ones get min(0, λ).
        #expect(try LengthReward().score(inputs) == [0.5, -0.5, 0, 0, 0, 0])
    }

    @Test func countdownFollowsTinyZero() throws {
        let fields: [String: Value] = ["target": .int(24), "nums": .array([.int(3), .int(8), .int(1)])]
        let completions = [
            "<think>try</think><answer>3 * 8 * 1</answer>",  // right
            "<answer>(8 - 1 + 3) * 1</answer>",  // uses 1 twice
            "<answer>3 * 8</answer>",  // misses 1
            "<answer>8 / (1 - 1) + 3</answer>",  // wrong numbers and division by zero
            "<answer>3 * 8 + 1</answer>",  // 25
            "<answer>import os</answer>",  // not arithmetic
            "24",  // no answer tag
            "<answer>(3 - 1) * (8 + 4) / 1</answer>",  // 4 not given
            "<answer>8 * 3 / 1</answer>",
        ]
        let scores = try CountdownReward().score(
            completions.map { RewardInput(prompt: "", completion: $0, fields: fields) })
        #expect(scores == [1, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0.1, 1])
    }

    @Test func arithmetic() {
        #expect(evaluateArithmetic("(1 + 2) * -3 / 4") == -2.25)
        #expect(evaluateArithmetic("2 * (3") == nil)
        #expect(evaluateArithmetic("1 / 0") == nil)
        #expect(evaluateArithmetic("1 +") == nil)
        #expect(evaluateArithmetic(String(repeating: "(", count: 10_000)) == nil)
    }

    @Test func registryRefusesUnknownNamesAndOptions() throws {
        #expect(throws: RewardError.unknownReward("acuracy", known: RewardRegistry.names)) {
            try RewardRegistry.make(RewardSpec(name: "acuracy"), maxCompletionLength: 10)
        }
        #expect(throws: RewardError.self) {
            try RewardRegistry.make(
                RewardSpec(name: "accuracy", options: ["feild": "x"]), maxCompletionLength: 10)
        }
        let accuracy = try RewardRegistry.make(
            RewardSpec(name: "accuracy", options: ["field": "solution"]), maxCompletionLength: 10)
        #expect(accuracy.requiredFields == ["solution"])
    }
}

struct ExternalRewardTests {
    let inputs = [
        RewardInput(prompt: "p", completion: "abc", fields: ["answer": .string("b")]),
        RewardInput(prompt: "p", completion: "xyz", fields: ["answer": .string("b")]),
    ]

    @Test func scoresThroughAChildProcess() throws {
        // A reward program in the shell: 1 when the completion contains the answer.
        let script =
            #"while IFS= read -r line; do case "$line" in *'"completion": "abc"'*) echo '{"reward": 1}';; *) echo '{"reward": null}';; esac; done"#
        let reward = try ExternalReward(command: [script], shell: true, timeout: 10)
        #expect(try reward.score(inputs) == [1, nil])
        #expect(try reward.score(inputs) == [1, nil])  // the same process answers again
    }

    @Test func crashIsAnErrorOrTheFallback() throws {
        let reward = try ExternalReward(command: ["read line; exit 3"], shell: true, timeout: 10)
        #expect(throws: RewardError.self) { try reward.score(inputs) }
        var warnings: [String] = []
        let tolerant = try ExternalReward(
            command: ["read line; exit 3"], shell: true, timeout: 10, fallback: 0
        ) {
            warnings.append($0)
        }
        #expect(try tolerant.score(inputs) == [0, 0])
        #expect(try tolerant.score(inputs) == [0, 0])  // restarted, fails again
        #expect(tolerant.failures == 4)
        #expect(warnings.count == 2 && warnings[0].contains("exited"))
    }

    @Test func hangTimesOut() throws {
        let reward = try ExternalReward(command: ["sleep 30"], shell: true, timeout: 0.5)
        let start = Date()
        #expect(throws: RewardError.self) { try reward.score(inputs) }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func garbageIsAnErrorOrTheFallback() throws {
        let script = #"while read -r line; do echo 'oops'; done"#
        let reward = try ExternalReward(command: [script], shell: true, timeout: 10)
        #expect(throws: RewardError.self) { try reward.score(inputs) }
        let tolerant = try ExternalReward(command: [script], shell: true, timeout: 10, fallback: -1)
        #expect(try tolerant.score(inputs) == [-1, -1])
        #expect(tolerant.failures == 2)
    }

    /// A list is an argv: no shell, so a space or `$(...)` in an argument stays literal.
    @Test func argvRunsWithoutAShell() throws {
        let folder = NSTemporaryDirectory() + "grpo reward \(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let script = folder + "/reward.sh"
        // Answers each input with 1 when its first argument is literally "$(echo 5)".
        try """
        #!/bin/sh
        while IFS= read -r line; do
          if [ "$1" = '$(echo 5)' ]; then echo '{"reward": 1}'; else echo '{"reward": 0}'; fi
        done
        """.write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let spec = RewardSpec(name: "external", lists: ["command": [script, "$(echo 5)"]])
        let reward = try RewardRegistry.make(spec, maxCompletionLength: 8)
        #expect(try reward.score(inputs) == [1, 1])
    }

    /// Two lines for one input would move every later reward onto the wrong completion.
    @Test func aLineTooManyIsAnErrorNotAShift() throws {
        let script = #"while read -r line; do echo '{"reward": 1}'; echo '{"reward": 2}'; done"#
        let reward = try ExternalReward(command: [script], shell: true, timeout: 10)
        #expect(throws: RewardError.self) { try reward.score(inputs) }
    }

    /// A line that comes after the batch was answered is caught at the next batch, before it is
    /// written (so that a fast answer to the next batch is never taken for a leftover).
    @Test func aLateLineIsCaughtAtTheNextBatch() throws {
        let script =
            #"read -r a; read -r b; echo '{"reward": 1}'; echo '{"reward": 1}'; sleep 0.3; "#
            + #"echo '{"reward": 9}'; while read -r line; do echo '{"reward": 1}'; done"#
        let reward = try ExternalReward(command: [script], shell: true, timeout: 10)
        #expect(try reward.score(inputs) == [1, 1])
        Thread.sleep(forTimeInterval: 1)
        #expect(
            throws: RewardError.external(
                "'\(script)' wrote 1 lines more than the inputs of the previous batch")
        ) {
            try reward.score(inputs)
        }
    }

    /// On a timeout the whole process group ends, a program that ignores SIGTERM included.
    @Test func aTimeoutEndsTheProgramAndItsChildren() throws {
        let marker = NSTemporaryDirectory() + "grpo-reward-alive-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: marker) }
        // A shell whose child ignores SIGTERM and would touch the marker after 3 s.
        let script = "trap '' TERM; (trap '' TERM; sleep 3; touch \(marker)) & wait"
        let reward = try ExternalReward(command: [script], shell: true, timeout: 0.3)
        #expect(throws: RewardError.self) { try reward.score(inputs) }
        Thread.sleep(forTimeInterval: 4)
        #expect(!FileManager.default.fileExists(atPath: marker), "a child of the reward program outlived it")
    }

    @Test func missingProgramIsAnError() {
        #expect(throws: RewardError.self) { try ExternalReward(command: ["/nonexistent/reward", "x"]) }
    }
}
