import Foundation
import Tokenizers

/// Runs each completion's program against the line's tests, sandboxed: the fraction of tests passed.
///
/// The program is the completion's last fenced code block tagged python (or untagged), or the whole
/// completion when it has none. Two kinds of test, as the line holds them:
/// - MBPP's: `test_list`, Python asserts (with `test_setup_code`, run first). One run per completion
///   executes the setup, the program, then each assert on its own; the score is the fraction that
///   passed. An assert that hangs ends the run at the timeout: those before it still count.
/// - APPS' and open-r1's: `inputs` and `outputs`, lists of standard input texts and the standard output
///   expected for each. One run per case; output matches when its lines, trailing spaces and trailing
///   empty lines dropped, equal the expected ones.
///
/// Every run goes through a `Sandbox` (bubblewrap unless `sandbox: none`), runs spread across
/// `workers` runs at once. The harness reports each assert's result tagged with a random token it
/// reads from standard input and the program is not given (stdin is closed before the program runs,
/// and its file is outside the sandbox), so a program that prints results of its own, exits early or
/// kills its interpreter scores for nothing it did not pass. (A program that searched the
/// interpreter's memory for the token could forge it: the harness shares its process.)
///
///     rewards: [{name: code, timeout: 5}]
///     {"prompt": "Write is_even(n).", "test_list": ["assert is_even(2)", "assert not is_even(3)"]}
public final class CodeReward: Reward, Sendable {
    public let name: String
    public let requiredFields: [String] = []
    public let sandbox: Sandbox
    public let python: String
    public let workers: Int
    /// When true a completion scores 1 only when it passes every test, else 0.
    public let binary: Bool
    public let testsField: String
    public let setupField: String
    public let inputsField: String
    public let outputsField: String
    public var runsAlongside: Bool { true }

    public init(
        name: String = "code", sandbox: Sandbox, python: String = "python3", workers: Int? = nil,
        binary: Bool = false, testsField: String = "test_list", setupField: String = "test_setup_code",
        inputsField: String = "inputs", outputsField: String = "outputs"
    ) {
        self.name = name
        self.sandbox = sandbox
        self.python = python
        self.workers = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
        self.binary = binary
        self.testsField = testsField
        self.setupField = setupField
        self.inputsField = inputsField
        self.outputsField = outputsField
    }

    /// A line's tests.
    enum Tests: Sendable {
        case asserts(setup: String, tests: [String])
        case cases(inputs: [String], outputs: [String])

        var count: Int {
            switch self {
            case .asserts(_, let tests): tests.count
            case .cases(let inputs, _): inputs.count
            }
        }
    }

    func texts(_ value: Value?) -> [String]? {
        guard case .array(let items) = value else { return nil }
        let texts = items.compactMap(\.fieldText)
        return texts.count == items.count ? texts : nil
    }

    /// The line's tests, or what is wrong with them.
    func tests(_ fields: [String: Value]) -> Result<Tests, RewardError> {
        func problem(_ text: String) -> Result<Tests, RewardError> { .failure(.code(text)) }
        if let value = fields[testsField], !(value.isNone) {
            guard let tests = texts(value), !tests.isEmpty else {
                return problem("field \"\(testsField)\" must be a non-empty list of assert statements (text)")
            }
            var setup = ""
            if let value = fields[setupField], !value.isNone {
                guard let text = value.fieldText else {
                    return problem("field \"\(setupField)\" must be Python code (text)")
                }
                setup = text
            }
            return .success(.asserts(setup: setup, tests: tests))
        }
        if fields[inputsField] != nil || fields[outputsField] != nil {
            guard let inputs = texts(fields[inputsField]), let outputs = texts(fields[outputsField]),
                !inputs.isEmpty, inputs.count == outputs.count
            else {
                return problem(
                    "fields \"\(inputsField)\" and \"\(outputsField)\" must be lists of texts of one length"
                        + " (standard input and the expected output of each case)")
            }
            return .success(.cases(inputs: inputs, outputs: outputs))
        }
        return problem(
            "needs the field \"\(testsField)\" (assert statements) or \"\(inputsField)\" and \"\(outputsField)\""
                + " (standard input / output cases)")
    }

    public func lineProblem(_ fields: [String: Value]) -> String? {
        if case .failure(let error) = tests(fields), case .code(let text) = error { return text }
        return nil
    }

    /// One sandboxed run: a completion, and for input/output tests the case.
    private struct Job: Sendable {
        var input: Int
        var testCase: Int?
    }

    public func score(_ batch: [RewardInput]) throws -> [Double?] {
        var allTests: [Tests] = []
        var allJobs: [Job] = []
        for (index, input) in batch.enumerated() {
            switch tests(input.fields) {
            case .failure(let error): throw error
            case .success(let tests):
                allTests.append(tests)
                switch tests {
                case .asserts: allJobs.append(Job(input: index, testCase: nil))
                case .cases(let inputs, _): allJobs += inputs.indices.map { Job(input: index, testCase: $0) }
                }
            }
        }
        let (jobs, lineTests) = (allJobs, allTests)
        let programs = batch.map { Self.program(in: $0.completion) }
        let passed = Locked(Array(repeating: Set<Int>(), count: batch.count))
        let failure = Locked<Error?>(nil)
        let next = Locked(0)
        DispatchQueue.concurrentPerform(iterations: min(workers, max(jobs.count, 1))) { _ in
            while true {
                let index = next.update { value -> Int in
                    defer { value += 1 }
                    return value
                }
                guard index < jobs.count, failure.value == nil else { return }
                let job = jobs[index]
                do {
                    let tests = try run(
                        program: programs[job.input], tests: lineTests[job.input], job.testCase)
                    passed.update { $0[job.input].formUnion(tests) }
                } catch {
                    failure.update { $0 = $0 ?? error }
                }
            }
        }
        if let error = failure.value {
            throw RewardError.code(String(describing: error))
        }
        return zip(lineTests, passed.value).map { tests, passed in
            let fraction = Double(passed.count) / Double(tests.count)
            return binary ? (passed.count == tests.count ? 1 : 0) : fraction
        }
    }

    /// The indices of the tests one run passed.
    private func run(program: String, tests: Tests, _ testCase: Int?) throws -> Set<Int> {
        let folder = sandbox.kind == .none ? "." : sandbox.filesFolder
        switch tests {
        case .asserts(let setup, let asserts):
            var nonceBytes = [UInt8](repeating: 0, count: 16)
            for i in nonceBytes.indices { nonceBytes[i] = UInt8.random(in: 0...255) }
            let nonce = nonceBytes.map { String(format: "%02x", $0) }.joined()
            let spec = Value.object(
                Object([
                    ("setup", .string(setup)), ("solution", .string(program)),
                    ("tests", .array(asserts.map { .string($0) })),
                ]))
            let outcome = try sandbox.run(
                files: ["harness.py": Array(Self.harness.utf8), "tests.json": Array(spec.jsonText.utf8)],
                command: [python, "-I", folder + "/harness.py", folder + "/tests.json"],
                stdin: Array((nonce + "\n").utf8))
            var passed = Set<Int>()
            let prefix = nonce + " "
            for line in String(decoding: outcome.stdout, as: UTF8.self).split(separator: "\n")
            where line.hasPrefix(prefix) {
                let parts = line.dropFirst(prefix.count).split(separator: " ")
                if parts.count == 2, parts[1] == "1", let index = Int(parts[0]),
                    asserts.indices.contains(index)
                {
                    passed.insert(index)
                }
            }
            return passed
        case .cases(let inputs, let outputs):
            let index = testCase!
            let outcome = try sandbox.run(
                files: ["solution.py": Array(program.utf8)], command: [python, folder + "/solution.py"],
                stdin: Array(inputs[index].utf8))
            guard outcome.succeeded else { return [] }
            let output = String(decoding: outcome.stdout, as: UTF8.self)
            return Self.outputMatches(output, outputs[index]) ? [index] : []
        }
    }

    /// Output equals the expected text line by line, trailing spaces and trailing empty lines aside.
    static func outputMatches(_ output: String, _ expected: String) -> Bool {
        func lines(_ text: String) -> [String] {
            let blank: Set<Unicode.Scalar> = [" ", "\t", "\r"]
            var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map {
                var line = String.UnicodeScalarView($0)
                while let last = line.last, blank.contains(last) { line.removeLast() }
                return String(line)
            }
            while lines.last?.isEmpty == true { lines.removeLast() }
            return lines
        }
        return lines(output) == lines(expected)
    }

    /// The completion's last fenced block tagged python (py, python3) or untagged; else the whole text.
    public static func program(in completion: String) -> String {
        let fence = /```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```/.dotMatchesNewlines()
        let blocks = completion.matches(of: fence).filter {
            ["", "python", "py", "python3"].contains($0.output.1.lowercased())
        }
        if let last = blocks.last { return String(last.output.2) }
        return completion
    }

    /// Runs the setup, the program and each assert, reporting each assert's result with the token read
    /// from standard input (which is then closed: the program cannot read it).
    static let harness = #"""
        import json, os, sys
        nonce = sys.stdin.readline().strip()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        report = os.dup(1)
        with open(sys.argv[1], encoding="utf-8") as f:
            spec = json.load(f)
        del f
        sys.argv = ["solution.py"]

        def tell(text, write=os.write, fd=report, token=nonce):
            try:
                write(fd, (token + " " + text + "\n").encode())
            except OSError:
                pass

        del nonce
        scope = {"__name__": "solution", "__builtins__": __builtins__}
        try:
            if spec["setup"]:
                exec(compile(spec["setup"], "test_setup_code", "exec"), scope)
            exec(compile(spec["solution"], "solution.py", "exec"), scope)
        except BaseException:
            os._exit(0)
        for index, test in enumerate(spec["tests"]):
            try:
                exec(compile(test, "test %d" % index, "exec"), scope)
                passed = 1
            except BaseException:
                passed = 0
            tell("%d %d" % (index, passed))
        """#
}
