import Foundation
import Testing
import Tokenizers

@testable import Rewards

#if canImport(Glibc)
    import Glibc
#endif

/// MBPP-style asserts for `add(a, b)`.
private let addTests: [String: Value] = [
    "test_list": .array([
        .string("assert add(1, 2) == 3"), .string("assert add(-1, 1) == 0"), .string("assert add(2, 2) == 4"),
    ])
]

private func inputs(_ completions: [String], fields: [String: Value] = addTests) -> [RewardInput] {
    completions.map { RewardInput(prompt: "Write add(a, b).", completion: $0, fields: fields) }
}

private func codeReward(
    timeout: Double = 2, workers: Int = 2, sandbox kind: SandboxKind = .bubblewrap, binary: Bool = false
) throws -> CodeReward {
    var options = ["timeout": "\(timeout)", "workers": "\(workers)", "sandbox": kind.rawValue]
    if binary { options["binary"] = "true" }
    return try #require(
        try RewardRegistry.make(RewardSpec(name: "code", options: options), maxCompletionLength: 100)
            as? CodeReward)
}

struct CodeRewardTests {
    @Test func extractsTheLastPythonBlockOrTheWholeText() {
        let text =
            "Plan:\n```python\nx = 1\n```\nthen\n```bash\nls\n```\nfinally\n```py\ndef f():\n    return 2\n```\n"
        #expect(CodeReward.program(in: text) == "def f():\n    return 2\n")
        #expect(CodeReward.program(in: "```\nprint(1)\n```") == "print(1)\n")
        #expect(CodeReward.program(in: "print(1)") == "print(1)")
        // An unclosed block is not a block.
        #expect(CodeReward.program(in: "```python\nprint(1)") == "```python\nprint(1)")
    }

    @Test func outputComparisonIgnoresTrailingSpaceOnly() {
        #expect(CodeReward.outputMatches("3 \n4\n\n", "3\n4"))
        #expect(CodeReward.outputMatches("3\r\n", "3"))
        #expect(!CodeReward.outputMatches("3\n4", "3\n 4"))
        #expect(!CodeReward.outputMatches("", "3"))
    }

    @Test func scoresTheFractionOfAssertsPassed() throws {
        let reward = try codeReward()
        let scores = try reward.score(
            inputs([
                "```python\ndef add(a, b):\n    return a + b\n```",
                "def add(a, b):\n    return a * b if a > 0 else a + b",  // passes 2 of 3: (-1, 1) and (2, 2)
                "def add(a, b): return None",
                "this is not Python",
            ]))
        #expect(scores == [1, 2.0 / 3, 0, 0])
        let binary = try codeReward(binary: true)
        #expect(try binary.score(inputs(["def add(a, b): return a * b if a > 0 else a + b"])) == [0])
    }

    @Test func setupCodeRunsFirst() throws {
        let fields: [String: Value] = [
            "test_setup_code": .string("import math\nSCALE = 10"),
            "test_list": .array([.string("assert scaled(2) == 20"), .string("assert math.pi > 3")]),
        ]
        let scores = try codeReward().score(inputs(["def scaled(x):\n    return x * SCALE"], fields: fields))
        #expect(scores == [1])
    }

    @Test func standardInputOutputCases() throws {
        let fields: [String: Value] = [
            "inputs": .array([.string("1 2\n"), .string("5 7\n"), .string("0 0\n")]),
            "outputs": .array([.string("3\n"), .string("12"), .string("1\n")]),
        ]
        let program = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
        let scores = try codeReward().score(inputs([program, "print(input())"], fields: fields))
        #expect(scores == [2.0 / 3, 0])
    }

    @Test func linesWithoutTestsAreNamed() throws {
        let reward = try codeReward()
        #expect(reward.lineProblem(addTests) == nil)
        #expect(reward.lineProblem(["answer": .int(3)])?.contains("test_list") == true)
        #expect(
            reward.lineProblem(["inputs": .array([.string("1")]), "outputs": .array([])])?.contains(
                "one length")
                == true)
        #expect(throws: RewardError.self) { try reward.score([RewardInput(prompt: "", completion: "x")]) }
        #expect(throws: RewardError.self) {
            try RewardRegistry.make(
                RewardSpec(name: "code", options: ["sandbox": "docker"]), maxCompletionLength: 1)
        }
    }

    @Test func refusesWhenNoSandboxCanStart() {
        // A bwrap that cannot make namespaces (here: one that always fails) is refused up front, with
        // what to do; nothing runs unsandboxed.
        #expect {
            try Sandbox(kind: .bubblewrap, limits: SandboxLimits(), bubblewrap: "/bin/false")
        } throws: { error in
            let text = "\(error)"
            return text.contains("could not start a sandbox") && text.contains("sandbox: none")
        }
        #expect(throws: SandboxError.self) {
            try Sandbox(kind: .bubblewrap, limits: SandboxLimits(), bubblewrap: "/nonexistent/bwrap")
        }
    }

    @Test func unsandboxedRunsWhenAskedFor() throws {
        let reward = try codeReward(sandbox: .none)
        #expect(
            try reward.score(inputs(["def add(a, b): return a + b", "def add(a, b): return a"])) == [1, 0])
    }

    /// Hostile completions: each must score 0 (or what its honest part earns), within the timeout,
    /// and leave no process, no file and no connection behind.
    @Test func hostileCompletionsAreContained() throws {
        let scratch = NSTemporaryDirectory() + "grpo-hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let outside = scratch + "/pwned"

        // A listener on the host's loopback: no sandboxed program may reach it.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try #require(bind(listener, $0, length) == 0)
                try #require(getsockname(listener, $0, &length) == 0)
            }
        }
        #expect(listen(listener, 8) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        setenv("GRPO_HOSTILE_SECRET", "s3cret-value", 1)
        defer { unsetenv("GRPO_HOSTILE_SECRET") }

        let honest = "def add(a, b):\n    return a + b\n"
        // Each defines add correctly only if its attack worked; otherwise it fails or hangs.
        let hostile: [(String, String, Double)] = [
            ("infinite loop", "while True:\n    pass\n" + honest, 0),
            ("memory hog", "hog = bytearray(8 << 30)\n" + honest, 0),
            ("growing memory", "hog = []\nwhile True:\n    hog.append(b' ' * (1 << 24))\n", 0),
            (
                "fork storm",
                "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", 0
            ),
            (
                "daemon",  // double fork, new session, outlives its parent: its honest part passes
                "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                    + "        time.sleep(30)\n        open('/tmp/daemon-was-here', 'w').write('x')\n"
                    + "    os._exit(0)\n" + honest, 1
            ),
            (
                "network",
                "import socket\nsocket.create_connection(('127.0.0.1', \(port)), timeout=1)\n" + honest, 0
            ),
            (
                "writes outside",  // tries, fails quietly, then answers honestly
                "for path in ['\(outside)', '/usr/pwned', '/sandbox/pwned', '/etc/pwned']:\n"
                    + "    try:\n        open(path, 'w').write('x')\n    except OSError:\n        pass\n"
                    + honest, 1
            ),
            (
                "reads the parent's environment",
                "import os, glob\nfound = 'GRPO_HOSTILE_SECRET' in os.environ\n"
                    + "for path in glob.glob('/proc/*/environ'):\n    try:\n"
                    + "        found = found or b's3cret' in open(path, 'rb').read()\n    except OSError:\n        pass\n"
                    + "if found:\n"
                    + honest.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"), 0
            ),
            (
                "kills the parent",
                "import os, signal\nfor pid in [os.getppid(), 1, -1]:\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
                    + "    except OSError:\n        pass\n", 0
            ),
            ("gigabytes of output", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", 0),
            (
                "forged results",
                "import os, sys\nfor i in range(3):\n    print('0' * 32, i, 1)\nsys.stdout.flush()\nos._exit(0)\n",
                0
            ),
            ("exits early", "import sys\nsys.exit(0)\n", 0),
            (
                "reads the harness' input",
                "import os, re\nfor path in ['/proc/self/fd/0', '/proc/1/cmdline'] + ['/sandbox/' + n for n in"
                    + " os.listdir('/sandbox')]:\n    try:\n        for t in re.findall('[0-9a-f]{32}', open(path).read()):\n"
                    + "            for i in range(3):\n                print(t, i, 1, flush=True)\n    except OSError:\n"
                    + "        pass\n", 0
            ),
            ("fills the temporary folder", "open('/tmp/big', 'wb').write(b'x' * (200 << 20))\n" + honest, 0),
        ]
        let reward = try codeReward(timeout: 2, workers: 2)
        let start = Date()
        let scores = try reward.score(inputs(hostile.map(\.1)))
        let seconds = Date().timeIntervalSince(start)
        for (entry, score) in zip(hostile, scores) {
            #expect(score == entry.2, "\(entry.0): scored \(String(describing: score))")
        }
        // Never stalls: a handful of 2-second timeouts over two workers, with room for a loaded machine.
        #expect(seconds < 60, "hostile corpus took \(seconds) s")
        let processes = reward.sandbox.leftoverProcesses()
        #expect(processes.isEmpty, "processes left behind: \(processes)")
        #expect(!FileManager.default.fileExists(atPath: outside))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
        #expect(!leftovers.contains { $0.hasPrefix(reward.sandbox.scratchPrefix) })
        // Nobody connected to the listener.
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        let accepted = accept(listener, nil, nil)
        #expect(accepted < 0, "a sandboxed program reached the host's loopback")
        if accepted >= 0 { close(accepted) }
        // And the sandbox still works afterwards.
        #expect(try reward.score(inputs([honest])) == [1])

        // The control: without the sandbox the same probes do reach the listener and the host's files,
        // so the zeros above are the sandbox's doing.
        let probes = hostile.filter { ["network", "writes outside"].contains($0.0) }.map(\.1)
        #expect(try codeReward(sandbox: .none).score(inputs(probes)) == [1, 1])
        #expect(FileManager.default.fileExists(atPath: outside))
        let reached = accept(listener, nil, nil)
        #expect(reached >= 0, "the unsandboxed probe should have reached the listener")
        if reached >= 0 { close(reached) }
    }
}
