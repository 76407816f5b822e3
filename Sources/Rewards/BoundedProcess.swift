import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Running one program to its end under a wall-clock deadline and an output cap: the mechanism
// under `Sandbox`, which decides what the program is wrapped in.

/// Starts `argv` in `workFolder` with standard input from `stdinPath` and nothing else of this
/// process's descriptors, collects its output up to `outputBytes` and kills it (its process group
/// too) past `wallSeconds` or the cap.
func runBounded(
    _ argv: [String], stdinPath: String, workFolder: String, wallSeconds: Double, outputBytes: Int
) throws -> SandboxOutcome {
    // glibc's closefrom and chdir file actions (2.34, 2.29), looked up at run time: no other
    // descriptor of the trainer reaches the program, and it starts in its folder.
    guard let closeFrom = spawnCloseFrom, let changeFolder = spawnChangeFolder else {
        throw SandboxError.launch(
            "this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34+)")
    }
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
    let deadline = start.addingTimeInterval(wallSeconds)
    var buffer = [UInt8](repeating: 0, count: 65536)
    var killed = false
    func stop(_ why: (inout SandboxOutcome) -> Void) {
        why(&outcome)
        if !killed {
            killed = true
            _ = kill(pid, SIGKILL)
            _ = kill(-pid, SIGKILL)
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
            if outcome.stdout.count + outcome.stderr.count + count > outputBytes {
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
    if !killed { _ = kill(-pid, SIGKILL) }
    if exitedNormally(status) {
        outcome.status = exitCode(status)
    } else {
        outcome.signal = status & 0x7f
    }
    outcome.seconds = Date().timeIntervalSince(start)
    return outcome
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

/// Calls `body` with `strings` as a NULL-terminated C array.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
