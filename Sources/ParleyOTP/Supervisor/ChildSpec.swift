import Parley

/// How a supervisor starts, restarts and stops one child (OTP's `child_spec()`).
///
/// ```swift
/// let worker = ChildSpec(id: "cache", restart: .permanent, shutdown: .timeout(.seconds(2))) { me in
///     try Cache().startLink(me).pid
/// }
/// ```
///
/// `start` runs in the supervisor's process and gets it as `me`: link the child to it
/// (`startLink(me)`, `me.spawnLink`); the supervisor links again anyway. Return `nil` to
/// ignore (OTP's `ignore`: the child is kept as not running).
public struct ChildSpec: Sendable {
    /// When a child is restarted, by OTP's rules.
    public enum Restart: Sendable, Hashable {
        /// Always restarted.
        case permanent
        /// Restarted only after an abnormal exit: not after `normal`, `shutdown` or `{shutdown, _}`.
        case transient
        /// Never restarted, not even when a sibling's restart (one_for_all, rest_for_one)
        /// terminated it; its spec is removed when it exits.
        case temporary
    }

    /// How the child is stopped.
    public enum Shutdown: Sendable, Hashable {
        /// `exit(Child, kill)`: no chance to clean up.
        case brutalKill
        /// `exit(Child, shutdown)`, then `kill` if it has not exited after the duration
        /// (default for workers: 5000 ms).
        case timeout(Duration)
        /// `exit(Child, shutdown)` and wait as long as it takes (default for supervisors).
        case infinity
    }

    /// Whether the child is a worker or a supervisor.
    public enum Kind: String, Sendable, Hashable {
        case worker
        case supervisor
    }

    public var id: String
    public var restart: Restart
    public var shutdown: Shutdown
    public var type: Kind
    /// Starts the child; gets the supervisor's process and the supervisor's extra arguments
    /// (``DynamicSupervisor``'s `extraArguments`; empty for ``Supervisor``).
    public var start: @Sendable @concurrent (Process, [any Sendable]) async throws -> Pid?

    /// A child spec. `shutdown` defaults to 5000 ms for workers and `infinity` for supervisors.
    public init(
        id: String, restart: Restart = .permanent, shutdown: Shutdown? = nil, type: Kind = .worker,
        start: @escaping @Sendable @concurrent (Process) async throws -> Pid?
    ) {
        self.init(id: id, restart: restart, shutdown: shutdown, type: type, startWithArguments: { me, _ in try await start(me) })
    }

    /// A child spec whose start function also gets the supervisor's extra arguments.
    public init(
        id: String, restart: Restart = .permanent, shutdown: Shutdown? = nil, type: Kind = .worker,
        startWithArguments start: @escaping @Sendable @concurrent (Process, [any Sendable]) async throws -> Pid?
    ) {
        self.id = id
        self.restart = restart
        self.shutdown = shutdown ?? (type == .supervisor ? .infinity : .timeout(.milliseconds(5000)))
        self.type = type
        self.start = start
    }
}

/// A child as ``Supervisor/whichChildren()`` reports it: `{Id, Child, Type, Modules}`.
public struct ChildInfo: Sendable, CustomStringConvertible {
    public let id: String
    /// `nil` when not running (OTP's `undefined`).
    public let pid: Pid?
    public let type: ChildSpec.Kind
    public let restart: ChildSpec.Restart
    /// Times the supervisor has restarted this child (a dynamic supervisor never restarts a
    /// child under the same entry: 0).
    public let restarts: Int
    /// The reason of the child's last abnormal exit, rendered, if it had one.
    public let lastExitReason: String?
    public var description: String { "{\(id), \(pid.map { "\($0)" } ?? "undefined"), \(type.rawValue)}" }

    init(id: String, pid: Pid?, type: ChildSpec.Kind, restart: ChildSpec.Restart, restarts: Int = 0, lastExitReason: String? = nil) {
        self.id = id
        self.pid = pid
        self.type = type
        self.restart = restart
        self.restarts = restarts
        self.lastExitReason = lastExitReason
    }
    /// The child as a ``Supervisor``, when it is a running supervisor (type `.supervisor`).
    public var supervisor: Supervisor? { type == .supervisor ? pid.map(Supervisor.init) : nil }
}

/// ``Supervisor/countChildren()``: `[{specs, _}, {active, _}, {supervisors, _}, {workers, _}]`.
public struct ChildCounts: Sendable, Hashable {
    public let specs: Int
    public let active: Int
    public let supervisors: Int
    public let workers: Int
    public init(specs: Int, active: Int, supervisors: Int, workers: Int) {
        self.specs = specs
        self.active = active
        self.supervisors = supervisors
        self.workers = workers
    }
}

/// Errors from supervisor operations.
public enum SupervisorError: Error, Sendable, CustomStringConvertible {
    /// No child with this id (`{error, not_found}`).
    case notFound(String)
    /// The child is running, so it cannot be restarted or deleted (`{error, running}`).
    case running(String)
    /// A child with this id exists, not running (`{error, already_present}`).
    case alreadyPresent(String)
    /// A child with this id is running (`{error, {already_started, Pid}}`).
    case alreadyStarted(String, Pid)
    /// The child's start function threw or returned a failed start (`{error, Reason}`).
    case startFailed(String, ExitReason)
    /// A DynamicSupervisor has `maxChildren` children (`{error, max_children}`).
    case maxChildren(Int)
    /// The supervisor could not be called.
    case call(Gen.CallError)

    public var description: String {
        switch self {
        case .notFound(let id): return "no child \(id)"
        case .running(let id): return "child \(id) is running"
        case .alreadyPresent(let id): return "child \(id) is already present"
        case .alreadyStarted(let id, let p): return "child \(id) is already started as \(p)"
        case .startFailed(let id, let r): return "child \(id) failed to start: \(r)"
        case .maxChildren(let n): return "max_children: the supervisor already has \(n) children"
        case .call(let e): return e.description
        }
    }
}
