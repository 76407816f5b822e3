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
        let outcome = try runBounded(
            argv, stdinPath: inputPath, workFolder: workFolder, wallSeconds: limits.wallSeconds,
            outputBytes: limits.outputBytes)
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
                for pid in pids { _ = kill(pid, SIGKILL) }
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

/// A value behind a lock, shared by concurrent runs.
final class Locked<T>: @unchecked Sendable {
    private var stored: T
    private let lock = NSLock()

    init(_ value: T) { stored = value }

    var value: T { lock.withLock { stored } }

    @discardableResult func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&stored) } }
}
