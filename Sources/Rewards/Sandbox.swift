import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What one sandboxed run may use.
public struct SandboxLimits: Sendable, Equatable {
    /// Wall-clock seconds before the whole run (every process in it) is killed.
    public var wallSeconds: Double = 5
    /// CPU seconds each process may use (RLIMIT_CPU).
    public var cpuSeconds: Int = 5
    /// Address space of each process, in bytes (RLIMIT_AS).
    public var memoryBytes: Int = 512 << 20
    /// Largest file a process may write, in bytes (RLIMIT_FSIZE).
    public var fileBytes: Int = 16 << 20
    /// Open files per process (RLIMIT_NOFILE).
    public var openFiles: Int = 64
    /// Processes and threads the run may have at once (RLIMIT_NPROC, counted for its own user).
    public var processes: Int = 16
    /// Standard output and error together, in bytes; a run that writes more is killed.
    public var outputBytes: Int = 1 << 20
    /// Size of the private, writable /tmp (a tmpfs), in bytes.
    public var temporaryBytes: Int = 64 << 20

    public init() {}
}

/// How programs are isolated.
public enum SandboxKind: String, Sendable, CaseIterable {
    /// bubblewrap: new user, pid, network, IPC, UTS and mount namespaces, system folders read-only.
    case bubblewrap
    /// No isolation: the program runs as this user, with the rlimits and the timeout only.
    case none
}

/// How a sandboxed run ended.
public struct SandboxOutcome: Sendable {
    /// The exit status, when the program exited.
    public var status: Int32?
    /// The signal that ended it, when one did.
    public var signal: Int32?
    /// True when the wall-clock timeout killed it.
    public var timedOut = false
    /// True when it wrote more than `outputBytes` and was killed for it.
    public var outputCapped = false
    public var stdout: [UInt8] = []
    public var stderr: [UInt8] = []
    public var seconds = 0.0

    /// Exited with status 0, in time and within the output cap.
    public var succeeded: Bool { status == 0 && !timedOut && !outputCapped }
}

/// Why a sandbox cannot run.
public enum SandboxError: Error, CustomStringConvertible, Equatable {
    case unavailable(String)
    case launch(String)

    public var description: String {
        switch self {
        case .unavailable(let why): "sandbox unavailable: \(why)"
        case .launch(let why): "sandbox: could not start a run: \(why)"
        }
    }
}

/// Runs untrusted programs (model completions) isolated and bounded.
///
/// With `.bubblewrap` every run gets new user, pid, network, IPC and UTS namespaces and a mount
/// namespace in which /usr (and the /bin, /lib links) are read-only, /tmp is a private tmpfs of
/// `temporaryBytes`, /proc and /dev are the sandbox's own and the run's files are a read-only
/// /sandbox; the environment is scrubbed; every process gets RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE,
/// RLIMIT_NOFILE and RLIMIT_NPROC. Started by root, the run's real uid is an unprivileged one of its
/// own (one of a block of uids the sandbox reserves): root is not bound by RLIMIT_NPROC, and a slot's uid has no other processes
/// to count. bubblewrap's `--die-with-parent` ties the namespace to the runner: killing the run (its
/// timeout, its output cap) or the trainer's own death kills the namespace's pid 1, and with it every
/// process inside, daemons included.
///
/// Construction checks that a sandbox can start here (bwrap installed, namespaces permitted) and
/// refuses with an error that says what to do otherwise.
///
///     let sandbox = try Sandbox(kind: .bubblewrap, limits: SandboxLimits())
///     let outcome = try sandbox.run(files: ["main.py": Array("print(6*7)".utf8)],
///                                   command: ["python3", "/sandbox/main.py"])
///     String(decoding: outcome.stdout, as: UTF8.self)   // "42\n"
public final class Sandbox: Sendable {
    public let kind: SandboxKind
    public let limits: SandboxLimits
    /// The folder the run's files appear in, inside the sandbox.
    public let filesFolder: String
    private let bwrap: String?
    private let prlimit: String?
    private let setpriv: String?
    private let runAsRoot: Bool
    /// The uid of slot 0 when started by root: slot k runs as `firstUID + k`.
    ///
    /// Each sandbox has a block of `slotCount` uids of its own (by process id and instance), so runs
    /// of two rewards, or of two trainers, never share a uid: a uid's processes are the run's alone,
    /// to count and to kill.
    public let firstUID: UInt32
    /// Runs at once, at most.
    public static let slotCount = 64
    private let freeSlots = Locked(Array((0..<Sandbox.slotCount).reversed()))
    private let slotsLeft = DispatchSemaphore(value: Sandbox.slotCount)
    private static let instances = Locked(0)

    /// Checks that sandboxes start here by running `probe` in one; `bubblewrap` overrides the bwrap
    /// found on PATH.
    public init(
        kind: SandboxKind, limits: SandboxLimits, probe: [String] = ["/bin/sh", "-c", ":"],
        bubblewrap: String? = nil
    ) throws {
        self.kind = kind
        self.limits = limits
        runAsRoot = geteuid() == 0
        let instance = Self.instances.update { count -> Int in
            defer { count += 1 }
            return count
        }
        firstUID = 61000 + UInt32(((Int(getpid()) % 512) * 32 + instance % 32) * Self.slotCount)
        prlimit = Self.find("prlimit")
        switch kind {
        case .bubblewrap:
            #if os(Linux)
                guard let bwrap = bubblewrap ?? Self.find("bwrap") else {
                    throw SandboxError.unavailable(
                        "bubblewrap (bwrap) is not installed; run scripts/setup.sh (or apt-get install bubblewrap),"
                            + " or set `sandbox: none` to run completions without isolation (unsafe)")
                }
                guard prlimit != nil else {
                    throw SandboxError.unavailable("prlimit (util-linux) is not installed")
                }
                self.bwrap = bwrap
                setpriv = runAsRoot ? Self.find("setpriv") : nil
                if runAsRoot && setpriv == nil {
                    throw SandboxError.unavailable(
                        "setpriv (util-linux) is not installed: runs started by root need it to drop to an"
                            + " unprivileged uid")
                }
                filesFolder = "/sandbox"
            #else
                throw SandboxError.unavailable(
                    "bubblewrap needs Linux namespaces; set `sandbox: none` to run completions without isolation"
                        + " (unsafe)")
            #endif
        case .none:
            bwrap = nil
            setpriv = nil
            filesFolder = ""
        }
        if kind == .bubblewrap {
            let outcome = try run(files: [:], command: probe)
            guard outcome.succeeded else {
                let message = String(decoding: outcome.stderr.prefix(400), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                throw SandboxError.unavailable(
                    "bubblewrap could not start a sandbox here (\(message.isEmpty ? "exit \(outcome.status ?? -1)" : message));"
                        + " unprivileged user namespaces may be off (sysctl kernel.unprivileged_userns_clone=1,"
                        + " user.max_user_namespaces > 0) or this container forbids them;"
                        + " `sandbox: none` runs completions without isolation (unsafe)")
            }
        }
    }

    private static func find(_ program: String) -> String? {
        let folders =
            (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        for folder in folders where !folder.isEmpty {
            let path = folder + "/" + program
            if access(path, X_OK) == 0 { return path }
        }
        return nil
    }

    /// Runs `command` with `files` (name to contents) in a new sandbox and `stdin` as its input.
    ///
    /// With `.bubblewrap` the files are read-only under /sandbox and the working folder is the
    /// private /tmp; with `.none` they are in a new temporary folder that is also the working
    /// folder, and `command` may name them relatively. Safe to call from many threads at once (each
    /// run takes a slot, with a uid of its own, for its duration).
    public func run(files: [String: [UInt8]], command: [String], stdin: [UInt8] = []) throws -> SandboxOutcome
    {
        precondition(!command.isEmpty)
        slotsLeft.wait()
        let slot = freeSlots.update { $0.removeLast() }
        defer {
            freeSlots.update { $0.append(slot) }
            slotsLeft.signal()
        }
        let fileManager = FileManager.default
        let scratch = NSTemporaryDirectory() + scratchPrefix + UUID().uuidString
        let bound = scratch + "/files"
        try fileManager.createDirectory(atPath: bound, withIntermediateDirectories: true)
        defer { try? fileManager.removeItem(atPath: scratch) }
        chmod(scratch, 0o755)
        chmod(bound, 0o755)
        for (name, contents) in files {
            precondition(!name.contains("/") && !name.hasPrefix("."), "a sandbox file name: \(name)")
            guard fileManager.createFile(atPath: bound + "/" + name, contents: Data(contents)) else {
                throw SandboxError.launch("cannot write \(bound)/\(name)")
            }
            chmod(bound + "/" + name, 0o644)
        }
        // Standard input is a file outside the bound folder: the program cannot read it again by name.
        let inputPath = scratch + "/stdin"
        guard fileManager.createFile(atPath: inputPath, contents: Data(stdin)) else {
            throw SandboxError.launch("cannot write \(inputPath)")
        }
        let uid = firstUID + UInt32(slot)
        let argv = arguments(command: command, bound: bound, uid: uid)
        let workFolder = kind == .none ? bound : "/"
        let outcome = try spawnAndWait(argv, stdinPath: inputPath, workFolder: workFolder)
        if kind == .bubblewrap && runAsRoot {
            // The namespace dies with its pid 1; make sure nothing of the slot's user lingers (the
            // next run in this slot counts its processes against RLIMIT_NPROC).
            Self.killProcesses(ofUser: uid)
        }
        return outcome
    }

    /// The full argv: rlimits, the uid drop, bubblewrap, the command.
    func arguments(command: [String], bound: String, uid: UInt32) -> [String] {
        var argv: [String] = []
        if kind == .bubblewrap && runAsRoot, let setpriv {
            argv += [setpriv, "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--inh-caps=-all"]
        }
        if let prlimit {
            argv += [
                prlimit, "--cpu=\(limits.cpuSeconds)", "--as=\(limits.memoryBytes)",
                "--fsize=\(limits.fileBytes)",
                "--nofile=\(limits.openFiles)", "--core=0",
            ]
            // RLIMIT_NPROC counts every process of the real uid: only a uid of the run's own is bounded
            // by the run's limit alone.
            if kind == .bubblewrap && runAsRoot { argv.append("--nproc=\(limits.processes)") }
            argv.append("--")
        }
        guard kind == .bubblewrap, let bwrap else { return argv + command }
        argv += [
            bwrap, "--unshare-all", "--unshare-user", "--as-pid-1", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL",
            "--disable-userns", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox", "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv",
            "LANG",
            "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--ro-bind", "/usr", "/usr",
        ]
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let path = "/" + top
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                argv += ["--symlink", target, path]
            } else if FileManager.default.fileExists(atPath: path) {
                argv += ["--ro-bind", path, path]
            }
        }
        for path in ["/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/ssl"] {
            argv += ["--ro-bind-try", path, path]
        }
        argv += [
            "--proc", "/proc", "--dev", "/dev", "--size", "\(limits.temporaryBytes)", "--tmpfs", "/tmp",
            "--ro-bind", bound, filesFolder, "--chdir", "/tmp", "--",
        ]
        return argv + command
    }

    /// Starts `argv` with standard input from `stdinPath`, collects its output under the cap and
    /// kills it at the timeout.
    private func spawnAndWait(_ argv: [String], stdinPath: String, workFolder: String) throws
        -> SandboxOutcome
    {
        let start = Date()
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else {
            throw SandboxError.launch("pipe: \(String(cString: strerror(errno)))")
        }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0])
            close(outPipe[1])
            throw SandboxError.launch("pipe: \(String(cString: strerror(errno)))")
        }
        var readEnds = [outPipe[0], errPipe[0]]
        defer { for fd in readEnds where fd >= 0 { close(fd) } }
        let input = open(stdinPath, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            close(outPipe[1])
            close(errPipe[1])
            throw SandboxError.launch("cannot open \(stdinPath)")
        }

        #if os(Linux)
            var actions = posix_spawn_file_actions_t()
        #else
            var actions: posix_spawn_file_actions_t? = nil
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        // glibc's closefrom and chdir file actions (2.34, 2.29), looked up at run time: no other
        // descriptor of the trainer reaches the program, and it starts in its folder.
        guard let closeFrom = spawnCloseFrom, let changeFolder = spawnChangeFolder else {
            throw SandboxError.launch(
                "this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34+)")
        }
        _ = closeFrom(&actions, 3)
        _ = changeFolder(&actions, workFolder)
        #if os(Linux)
            var attributes = posix_spawnattr_t()
        #else
            var attributes: posix_spawnattr_t? = nil
        #endif
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A process group of its own (a terminal's Ctrl-C reaches the trainer, which ends the runs),
        // default signal handling and an empty mask.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let environment = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
        var pid: pid_t = 0
        let spawned = withCStrings(argv) { cArgv in
            withCStrings(environment) { cEnvironment in
                posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnvironment)
            }
        }
        close(input)
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            throw SandboxError.launch("\(argv[0]): \(String(cString: strerror(spawned)))")
        }

        var outcome = SandboxOutcome()
        let deadline = start.addingTimeInterval(limits.wallSeconds)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var killed = false
        func stop(_ why: (inout SandboxOutcome) -> Void) {
            why(&outcome)
            if !killed {
                killed = true
                _ = sendSignal(pid, SIGKILL)
                _ = sendSignal(-pid, SIGKILL)
            }
        }
        while readEnds.contains(where: { $0 >= 0 }) && !killed {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                stop { $0.timedOut = true }
                break
            }
            var polls = readEnds.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polls, nfds_t(polls.count), Int32(min(remaining * 1000, 1000).rounded(.up)))
            if ready < 0 {
                if errno == EINTR { continue }
                stop { _ in }
                break
            }
            for entry in polls where entry.revents != 0 {
                let count = read(entry.fd, &buffer, buffer.count)
                let index = readEnds.firstIndex(of: entry.fd)!
                if count <= 0 {
                    close(entry.fd)
                    readEnds[index] = -1
                    continue
                }
                if outcome.stdout.count + outcome.stderr.count + count > limits.outputBytes {
                    stop { $0.outputCapped = true }
                    break
                }
                if index == 0 {
                    outcome.stdout += buffer[0..<count]
                } else {
                    outcome.stderr += buffer[0..<count]
                }
            }
        }
        // Output closed (or the run was killed): wait for the exit, still bounded by the deadline.
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, killed ? 0 : WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { break }
            if result == 0 {
                if deadline.timeIntervalSinceNow <= 0 {
                    stop { $0.timedOut = true }
                } else {
                    usleep(2000)
                }
            }
        }
        if !killed { _ = sendSignal(-pid, SIGKILL) }
        if exitedNormally(status) {
            outcome.status = exitCode(status)
        } else {
            outcome.signal = status & 0x7f
        }
        outcome.seconds = Date().timeIntervalSince(start)
        return outcome
    }

    /// The start of this sandbox's scratch folders' names, in the temporary folder.
    public var scratchPrefix: String { "grpo-sandbox-\(firstUID)-" }

    /// Live processes of this sandbox's users: none once its runs have returned.
    public func leftoverProcesses() -> [pid_t] {
        (0..<UInt32(Self.slotCount)).flatMap { Self.processes(ofUser: firstUID + $0) }
    }

    /// SIGKILLs every process whose real uid is `uid`, until none is left (a second at most).
    static func killProcesses(ofUser uid: UInt32) {
        #if os(Linux)
            for _ in 0..<100 {
                let pids = processes(ofUser: uid)
                if pids.isEmpty { return }
                for pid in pids { _ = sendSignal(pid, SIGKILL) }
                usleep(10_000)
            }
        #endif
    }

    /// The live processes whose real uid is `uid` (from /proc; zombies, already dead, are left to
    /// their reaper).
    static func processes(ofUser uid: UInt32) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var result: [pid_t] = []
        for entry in entries {
            guard let pid = pid_t(entry),
                let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
                !status.contains("\nState:\tZ")
            else { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count > 1, UInt32(fields[1]) == uid { result.append(pid) }
        }
        return result
    }
}

#if os(Linux)
    private typealias FileActions = UnsafeMutablePointer<posix_spawn_file_actions_t>
#else
    private typealias FileActions = UnsafeMutablePointer<posix_spawn_file_actions_t?>
#endif

// RTLD_DEFAULT: glibc's is a null handle, Darwin's -2.
private var defaultLibraries: UnsafeMutableRawPointer? {
    #if os(Linux)
        nil
    #else
        UnsafeMutableRawPointer(bitPattern: -2)
    #endif
}

private let spawnCloseFrom: (@convention(c) (FileActions, Int32) -> Int32)? = {
    guard let symbol = dlsym(defaultLibraries, "posix_spawn_file_actions_addclosefrom_np")
    else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (FileActions, Int32) -> Int32).self)
}()

private let spawnChangeFolder: (@convention(c) (FileActions, UnsafePointer<CChar>) -> Int32)? = {
    guard let symbol = dlsym(defaultLibraries, "posix_spawn_file_actions_addchdir_np")
    else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (FileActions, UnsafePointer<CChar>) -> Int32).self)
}()

private func exitedNormally(_ status: Int32) -> Bool { status & 0x7f == 0 }
private func exitCode(_ status: Int32) -> Int32 { (status >> 8) & 0xff }

private func sendSignal(_ pid: pid_t, _ signal: Int32) -> Int32 { kill(pid, signal) }

/// Calls `body` with `strings` as a NULL-terminated C array.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}

/// A value behind a lock, shared by concurrent runs.
final class Locked<T>: @unchecked Sendable {
    private var stored: T
    private let lock = NSLock()

    init(_ value: T) { stored = value }

    var value: T { lock.withLock { stored } }

    @discardableResult func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&stored) } }
}
