import Foundation
import Tokenizers

/// A reward computed by a user's program: how rewards are written in Python or anything else.
///
/// The program is started once and kept running. For each batch it reads one JSON object per line on
/// standard input, `{"prompt": ..., "completion": ..., "completion_length": ..., FIELDS...}`, and must
/// write one line per input, in order, on standard output: `{"reward": x}` (x a number, or null for
/// "not applicable"). Its standard error passes through.
///
/// A batch must be answered within `timeout` seconds, with exactly one line per input: a line too
/// many (seen within a short grace after the last one, or before the next batch) is an error, never
/// a reward moved onto another completion. When the program exits, hangs or answers with anything
/// else, scoring throws an error naming what happened, unless `fallback` is set: then the affected
/// completions get the fallback value, `failures` counts them, the program is restarted if it died
/// or hung, and `warn` is told.
///
/// The program leads a process group of its own (Foundation's `Process` starts children so), and
/// stopping it (timeout, error, the trainer's exit) signals the whole group: SIGTERM, then SIGKILL
/// after a second, so neither a shell's children nor a program that ignores SIGTERM outlive the
/// trainer.
///
///     # reward.py
///     import json, sys
///     for line in sys.stdin:
///         item = json.loads(line)
///         print(json.dumps({"reward": float(item["answer"] in item["completion"])}), flush=True)
public final class ExternalReward: Reward {
    public let name: String
    public let requiredFields: [String] = []
    public let command: [String]
    /// True when `command` is one string run by `/bin/sh -c`; false when it is an argv.
    public let shell: Bool
    public let timeout: Double
    public let fallback: Double?
    /// Completions scored with the fallback value so far.
    public private(set) var failures = 0
    private let warn: (String) -> Void
    private var process: ChildProcess?
    public var runsAlongside: Bool { true }

    /// Starts `command`: an argv run as it is (no shell: spaces and `$(...)` in arguments stay
    /// literal), or with `shell` one string run through `/bin/sh -c`.
    public init(
        name: String = "external", command: [String], shell: Bool = false, timeout: Double = 60,
        fallback: Double? = nil, warn: @escaping (String) -> Void = { _ in }
    ) throws {
        guard !command.isEmpty, !command[0].isEmpty, !shell || command.count == 1 else {
            throw RewardError.badOption(
                reward: name, option: "command",
                expected: shell ? "one shell command" : "a program to run, then its arguments")
        }
        guard timeout > 0, timeout <= 86_400 else {
            throw RewardError.badOption(
                reward: name, option: "timeout",
                expected: "a positive number of seconds, at most 86400 (a day)")
        }
        self.name = name
        self.command = command
        self.shell = shell
        self.timeout = timeout
        self.fallback = fallback
        self.warn = warn
        process = try ChildProcess(command: command, shell: shell)
    }

    deinit { process?.stop() }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        if process == nil { process = try ChildProcess(command: command, shell: shell) }
        let child = process!
        var text = ""
        for input in batch {
            var object = Object([
                ("prompt", .string(input.prompt)), ("completion", .string(input.completion)),
                ("completion_length", .int(input.completionLength)),
            ])
            for key in input.fields.keys.sorted() where object[key] == nil { object[key] = input.fields[key] }
            text += Value.object(object).jsonText + "\n"
        }
        let lines: [String]
        do {
            lines = try child.exchange(text, expecting: batch.count, timeout: timeout)
        } catch let failure as RewardError {
            child.stop()
            process = nil
            guard let fallback else { throw failure }
            failures += batch.count
            warn("\(failure); scoring \(batch.count) completions \(fallback) (\(failures) so far)")
            return Array(repeating: fallback, count: batch.count)
        }
        var scores: [Double?] = []
        for (index, line) in lines.enumerated() {
            if let score = parseReply(line) {
                scores.append(score)
                continue
            }
            let problem = RewardError.external(
                "line \(index + 1) of the reply to a batch of \(batch.count) is not {\"reward\": number}: "
                    + String(line.prefix(200)))
            guard let fallback else { throw problem }
            failures += 1
            warn("\(problem); scoring it \(fallback) (\(failures) so far)")
            scores.append(fallback)
        }
        return scores
    }

    /// The reply's reward: `.some(nil)` for null, nil when the line is malformed.
    private func parseReply(_ line: String) -> Double?? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let value = json["reward"]
        else { return nil }
        if value is NSNull { return .some(nil) }
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
            number.doubleValue.isFinite
        else { return nil }
        return .some(number.doubleValue)
    }
}

/// A child process with line-oriented pipes, read on a thread of its own so that waits can time out.
final class ChildProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let condition = NSCondition()
    private var lines: [String] = []
    private var pending = Data()
    private var closed = false
    private var writeFailure: String?
    private var overflow = false
    private let description: String

    /// Most bytes of reply held without a newline: a program that writes without end is an error.
    static let maxPendingBytes = 16 << 20
    /// How long after the last expected line a line too many is still caught within the batch.
    static let extraLineGrace = 0.05

    init(command: [String], shell: Bool) throws {
        signal(SIGPIPE, SIG_IGN)  // a dead child must surface as an error, not kill the trainer
        description = command.joined(separator: " ")
        var argv = shell ? ["/bin/sh", "-c", command[0]] : command
        if !argv[0].contains("/") { argv.insert("/usr/bin/env", at: 0) }  // looked up in PATH
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardInput = input
        process.standardOutput = output
        do {
            try process.run()
        } catch {
            throw RewardError.external("cannot start '\(description)': \(error.localizedDescription)")
        }
        let handle = output.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.availableData
                condition.lock()
                if data.isEmpty {
                    closed = true
                } else {
                    pending.append(data)
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                        pending = Data(pending[(newline + 1)...])
                    }
                    if pending.count > Self.maxPendingBytes { overflow = true }
                }
                condition.broadcast()
                condition.unlock()
                if data.isEmpty { return }
            }
        }
    }

    /// Writes `text` and waits for `count` reply lines.
    func exchange(_ text: String, expecting count: Int, timeout: Double) throws -> [String] {
        // Lines left from the previous batch are checked before this batch is written: checked
        // after, a fast child's answers to this batch could already be there.
        condition.lock()
        let leftover = lines.count
        condition.unlock()
        if leftover > 0 {
            throw RewardError.external(
                "'\(description)' wrote \(leftover) lines more than the inputs of the previous batch")
        }
        let writer = input.fileHandleForWriting
        let data = Data(text.utf8)
        // Written from another thread: a child that does not read would otherwise block us forever.
        Thread.detachNewThread { [self] in
            do { try writer.write(contentsOf: data) } catch {
                condition.lock()
                writeFailure = "\(error)"
                condition.broadcast()
                condition.unlock()
            }
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while lines.count < count {
            if overflow {
                throw RewardError.external(
                    "'\(description)' wrote more than \(Self.maxPendingBytes >> 20) MiB without a newline")
            }
            if let writeFailure {
                throw RewardError.external("cannot write to '\(description)': \(writeFailure)")
            }
            if closed {
                process.waitUntilExit()
                throw RewardError.external(
                    "'\(description)' exited (status \(process.terminationStatus)) after answering "
                        + "\(lines.count) of \(count) lines")
            }
            if !condition.wait(until: deadline) {
                throw RewardError.external(
                    "'\(description)' answered \(lines.count) of \(count) lines within \(timeout) s")
            }
        }
        // A program that answers an input with two lines is caught here, not one batch later.
        _ = condition.wait(until: Date(timeIntervalSinceNow: Self.extraLineGrace))
        if lines.count > count {
            throw RewardError.external(
                "'\(description)' wrote \(lines.count) lines for \(count) inputs (one line per input)")
        }
        let reply = lines
        lines.removeAll()
        return reply
    }

    /// Ends the program and everything it started: SIGTERM to its process group, SIGKILL a second
    /// later if anything is still running.
    func stop() {
        try? input.fileHandleForWriting.close()
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        // The whole group when the child leads one, else the child alone.
        let target = getpgid(pid) == pid ? -pid : pid
        if process.isRunning {
            kill(target, SIGTERM)
            let deadline = Date(timeIntervalSinceNow: 1)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        }
        kill(target, SIGKILL)  // the group may outlive its leader: a shell's children
    }
}
