import Foundation

/// Runs `body` on a thread of its own and awaits its result: blocking work (waiting for a
/// child process, a socket read) must not hold one of the cooperative pool's threads, which
/// every test shares (two of them on two cores).
public func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        Thread.detachNewThread { c.resume(with: Result { try body() }) }
    }
}

/// What a program printed (standard output and error, interleaved) and how it ended.
public struct ChildResult: Sendable {
    /// The exit status (`WEXITSTATUS`), or 128 + the signal that ended it.
    public var status: Int32
    public var output: String
}

public enum ChildError: Error, CustomStringConvertible {
    case spawnFailed(String, Int32)
    public var description: String {
        switch self {
        case .spawnFailed(let path, let errno): "cannot start \(path): \(String(cString: strerror(errno)))"
        }
    }
}

/// Runs a program to its end, waited for off the cooperative pool (posix_spawn and waitpid:
/// Foundation's Process reaps from one shared handler and spins a run loop in
/// `waitUntilExit`). Killed (SIGKILL) if it runs past `timeout`.
public func runChild(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)) async throws -> ChildResult {
    try await offThread { try runChildBlocking(arguments, environment: environment, timeout: timeout) }
}

/// Starts a program with posix_spawnp: standard input from /dev/null, standard output and
/// error into `output` (appended to with `append`, else created or truncated), the default
/// signal mask (a child spawned from a Swift concurrency thread would inherit one that
/// blocks SIGTERM and SIGHUP), and the environment with `environment` laid over it and the
/// variables in `removing` taken out.
/// Returns its pid; the caller reaps it.
public func spawnChild(_ arguments: [String], output: String = "/dev/null", append: Bool = false,
                       environment: [String: String] = [:], removing: Set<String> = []) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    for k in removing { env[k] = nil }
    let cArgs = arguments.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in cArgs + cEnv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, cArgs, cEnv)
    guard rc == 0 else { throw ChildError.spawnFailed(arguments[0], rc) }
    return pid
}

/// Waits for `pid` to end (retrying on EINTR); returns its raw wait status.
@discardableResult
public func reap(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return status
}

/// ``runChild(_:environment:timeout:)`` on the calling thread (for one that may block).
public func runChildBlocking(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)) throws -> ChildResult {
    let file = NSTemporaryDirectory() + "parley-child-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).out"
    defer { unlink(file) }
    let pid = try spawnChild(arguments, output: file, environment: environment)
    let deadline = ContinuousClock.now + timeout
    var status: Int32 = 0
    while true {
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { break }
        if r < 0 && errno != EINTR { break }
        if ContinuousClock.now > deadline { kill(pid, SIGKILL) }
        usleep(5_000)
    }
    let output = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ChildResult(status: code, output: output)
}
