/// Why a process exited, with Erlang's reasons.
///
/// - `normal`: the body returned. Linked processes that don't trap exits ignore it.
/// - `shutdown`, `shutdownWith(_:)`: an orderly stop (`shutdown`, `{shutdown, Term}`).
/// - `kill`: only as a signal: `Process.exit(pid, .kill)` cannot be trapped and the target
///   exits with `killed`.
/// - `killed`: the reason of a process that received `kill`.
/// - `noproc`: the target did not exist (monitor, link).
/// - `noconnection`: the node of a linked or monitored process went away (distribution).
/// - `mailboxOverflow`: a bounded mailbox overflowed under the `.exit` policy.
/// - `error(_:)`: the body or handler threw a Swift error.
/// - `custom(_:)`: any other value, as `exit(Reason)`.
///
/// ```swift
/// let pid = Process.spawn { _ in throw ProcessExit(.custom("bad_input")) }
/// ```
public enum ExitReason: Sendable, CustomStringConvertible {
    case normal
    case shutdown
    case shutdownWith(any Sendable)
    case kill
    case killed
    case noproc
    case noconnection
    case mailboxOverflow
    case error(any Error)
    case custom(any Sendable)

    /// `normal`: the only reason a linked process that doesn't trap exits ignores.
    public var isNormal: Bool { if case .normal = self { return true } else { return false } }

    /// `shutdown` or `{shutdown, _}`.
    public var isShutdown: Bool {
        switch self {
        case .shutdown, .shutdownWith: return true
        default: return false
        }
    }

    /// Anything but `normal`, `shutdown` and `{shutdown, _}`: what OTP logs as a crash and what
    /// restarts a transient child.
    public var isAbnormal: Bool { !isNormal && !isShutdown }

    public var description: String {
        switch self {
        case .normal: return "normal"
        case .shutdown: return "shutdown"
        case .shutdownWith(let t): return "{shutdown, \(t)}"
        case .kill: return "kill"
        case .killed: return "killed"
        case .noproc: return "noproc"
        case .noconnection: return "noconnection"
        case .mailboxOverflow: return "mailbox_overflow"
        case .error(let e): return "error: \(e)"
        case .custom(let t): return "\(t)"
        }
    }

    /// Whether two reasons are the same kind with the same printed payload.
    public func matches(_ other: ExitReason) -> Bool { description == other.description && kind == other.kind }

    private var kind: Int {
        switch self {
        case .normal: 0
        case .shutdown: 1
        case .shutdownWith: 2
        case .kill: 3
        case .killed: 4
        case .noproc: 5
        case .noconnection: 6
        case .mailboxOverflow: 7
        case .error: 8
        case .custom: 9
        }
    }
}

/// Thrown to end a process with a reason (Elixir's `exit(reason)`), and thrown by
/// `receive` in a process that has been killed or has died from an exit signal, so that its
/// body unwinds at that suspension point.
///
/// ```swift
/// Process.spawn { me in
///     guard let job = try await me.receive(Job.self, after: .seconds(5)) else {
///         throw ProcessExit(.shutdownWith("idle"))
///     }
///     try job.run()
/// }
/// ```
public struct ProcessExit: Error, Sendable, CustomStringConvertible {
    public let reason: ExitReason
    public init(_ reason: ExitReason) { self.reason = reason }
    public var description: String { "exit(\(reason))" }
}

/// The message a process that traps exits receives for an exit signal:
/// Erlang's `{'EXIT', From, Reason}`.
public struct ExitMessage: Sendable, CustomStringConvertible {
    public let from: Pid
    public let reason: ExitReason
    public var description: String { "{'EXIT', \(from), \(reason)}" }
}

/// The message a monitor delivers when its process dies, or at once with `noproc` if it was
/// already dead: Erlang's `{'DOWN', Ref, process, Pid, Reason}`.
public struct DownMessage: Sendable, CustomStringConvertible {
    public let ref: Reference
    public let pid: Pid
    public let reason: ExitReason
    public var description: String { "{'DOWN', \(ref), process, \(pid), \(reason)}" }
}

/// Errors from process operations.
public enum ProcessError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The process does not exist (it has exited): `noproc`.
    case noproc(Pid)
    /// The name is registered to another process.
    case nameTaken(String, by: Pid)
    /// The process already has a registered name.
    case alreadyRegistered(Pid, as: String)
    /// No process is registered under the name (sending to it is Erlang's `badarg`).
    case notRegistered(String)
    /// The pid belongs to another node and distribution is not running.
    case notLocal(Pid)
    /// `SpawnOptions.link` outside any process: there is no process to link the new one to.
    case linkWithoutParent
    /// A select over the mailbox (`onMessage`) run by a task that is not the process itself
    /// (a child task): only the process may take messages from its mailbox.
    case notOwner(Pid)
    /// A ``LocalNode`` name that is not `name@host`.
    case badNodeName(String)
    /// Another ``LocalNode`` of this OS process already has the name.
    case nodeExists(String)

    public var description: String {
        switch self {
        case .noproc(let p): return "noproc: \(p) is not alive"
        case .nameTaken(let n, let p): return "name '\(n)' is already registered to \(p)"
        case .alreadyRegistered(let p, let n): return "\(p) is already registered as '\(n)'"
        case .notRegistered(let n): return "no process is registered as '\(n)'"
        case .notLocal(let p): return "\(p) lives on node \(p.nodeName), which this node is not connected to"
        case .notOwner(let p): return "only \(p) itself can select over its mailbox, not a child task"
        case .badNodeName(let n): return "'\(n)' is not a node name of the form name@host"
        case .nodeExists(let n): return "a node named '\(n)' already runs in this OS process"
        case .linkWithoutParent: return "spawn with link: true needs a spawning process; call spawn on a Process value"
        }
    }
}
