import Logging
import Parley

/// A supervisor with OTP's semantics: it starts its children in order, restarts them by
/// its strategy when they exit, gives up when restarts come too fast, and stops them in
/// reverse order.
///
/// ```swift
/// let sup = try await Supervisor.start([
///     Counter().childSpec(id: "counter", name: .local("counter")),
///     ChildSpec(id: "ticker") { me in me.spawnLink { t in try await tick(t) } },
/// ], strategy: .oneForOne)
///
/// print(try await sup.whichChildren())
/// try await sup.stop()          // children stop in reverse start order
/// ```
///
/// The supervisor is a process that traps exits and answers calls with gen_server's wire
/// shapes, as `supervisor.erl` is a gen_server. While it stops a child it waits for it,
/// as OTP's does, and other requests wait in its mailbox.
public struct Supervisor: Sendable, Hashable, CustomStringConvertible {
    /// The supervisor's pid.
    public let pid: Pid

    /// Restart strategies.
    public enum Strategy: String, Sendable {
        /// Restart only the child that exited.
        case oneForOne = "one_for_one"
        /// Terminate all the other children (in reverse order), then restart all.
        case oneForAll = "one_for_all"
        /// Terminate the children started after the one that exited, then restart it and them.
        case restForOne = "rest_for_one"
    }

    /// Restart intensity and flags (`sup_flags()`): by default 3 restarts in 5 seconds, as
    /// Elixir's.
    public struct Flags: Sendable {
        public var strategy: Strategy
        public var intensity: Int
        public var period: Duration
        public init(strategy: Strategy, intensity: Int = 3, period: Duration = .seconds(5)) {
            self.strategy = strategy
            self.intensity = intensity
            self.period = period
        }
    }

    public init(_ pid: Pid) { self.pid = pid }

    public var description: String { "Supervisor\(pid)" }

    /// Starts a supervisor not linked to anyone. Returns once every child has started.
    /// - Throws: ``StartError/failed(_:)`` with `{shutdown, failed_to_start_child ...}` if a
    ///   child failed to start (those already started are stopped first).
    public static func start(
        _ children: [ChildSpec], strategy: Strategy, intensity: Int = 3, period: Duration = .seconds(5), name: ServerName? = nil
    ) async throws(StartError) -> Supervisor {
        try await start(children, flags: Flags(strategy: strategy, intensity: intensity, period: period), name: name, parent: nil)
    }

    /// Starts a supervisor linked to `parent` (`Supervisor.start_link/2`): for a child spec
    /// of another supervisor. See ``childSpec(id:_:strategy:intensity:period:name:)``.
    public static func startLink(
        _ parent: Process, _ children: [ChildSpec], strategy: Strategy, intensity: Int = 3, period: Duration = .seconds(5), name: ServerName? = nil
    ) async throws(StartError) -> Supervisor {
        try await start(children, flags: Flags(strategy: strategy, intensity: intensity, period: period), name: name, parent: parent)
    }

    /// A child spec for a nested supervisor (type `.supervisor`, shutdown `infinity`).
    public static func childSpec(
        id: String, _ children: [ChildSpec], strategy: Strategy, intensity: Int = 3, period: Duration = .seconds(5),
        name: ServerName? = nil, restart: ChildSpec.Restart = .permanent
    ) -> ChildSpec {
        ChildSpec(id: id, restart: restart, type: .supervisor) { me in
            try await Supervisor.startLink(me, children, strategy: strategy, intensity: intensity, period: period, name: name).pid
        }
    }

    static func start(_ children: [ChildSpec], flags: Flags, name: ServerName?, parent: Process?) async throws(StartError) -> Supervisor {
        Supervisor(try await SupervisorState(flags: flags, name: name, specs: children).startSupervisor(name: name, parent: parent))
    }

    // MARK: Operations (calls to the supervisor)

    /// The children, in start order (`which_children/1`).
    public func whichChildren() async throws(SupervisorError) -> [ChildInfo] {
        try await supervisorChildren(pid)
    }

    /// The child with this id, as ``whichChildren()`` reports it (`pid` is nil when it is not
    /// running). A nested supervisor's ``ChildInfo/supervisor`` reaches its own children.
    ///
    /// ```swift
    /// let rooms = try await sup.child("rooms").supervisor      // a nested supervisor
    /// let lobby = try await rooms?.child("lobby").pid
    /// ```
    /// - Throws: ``SupervisorError/notFound(_:)`` if the supervisor has no child `id`;
    ///   ``SupervisorError/call(_:)`` if the supervisor cannot be called.
    public func child(_ id: String) async throws(SupervisorError) -> ChildInfo {
        guard let info = try await whichChildren().first(where: { $0.id == id }) else { throw .notFound(id) }
        return info
    }

    /// Counts of specs, running children, supervisors and workers (`count_children/1`).
    public func countChildren() async throws(SupervisorError) -> ChildCounts {
        try await supervisorCounts(pid)
    }

    /// Adds a child at the end and starts it (`start_child/2`). Returns its pid (`nil` if its
    /// start ignored).
    @discardableResult
    public func startChild(_ spec: ChildSpec) async throws(SupervisorError) -> Pid? {
        try await supervisorStarted(pid, .startChild(spec))
    }

    /// Stops a child and keeps its spec (`terminate_child/2`); a temporary child's spec is removed.
    public func terminateChild(_ id: String) async throws(SupervisorError) {
        _ = try await supervisorReply(pid, .terminateChild(id))
    }

    /// Starts a stopped child again (`restart_child/2`).
    @discardableResult
    public func restartChild(_ id: String) async throws(SupervisorError) -> Pid? {
        try await supervisorStarted(pid, .restartChild(id))
    }

    /// Removes a stopped child's spec (`delete_child/2`).
    public func deleteChild(_ id: String) async throws(SupervisorError) {
        _ = try await supervisorReply(pid, .deleteChild(id))
    }

    /// Stops the supervisor: its children stop in reverse start order, then it exits with
    /// `reason` (`Supervisor.stop/3`).
    public func stop(_ reason: ExitReason = .normal, timeout: Duration? = nil) async throws(Gen.CallError) {
        try await stopProcess(pid, reason, timeout: timeout)
    }
}

/// The supervisor: supervisor.erl's state and callbacks, as an ``AsyncGenServer`` (in OTP
/// the supervisor is a gen_server; its callbacks wait for children to start and stop).
struct SupervisorState: SupervisorServer {
    struct Child {
        var spec: ChildSpec
        var pid: Pid?
        /// Times this supervisor has restarted this child (reports' `child_restarts`).
        var restarts = 0
        /// Its last abnormal exit reason, for introspection (``ChildInfo/lastExitReason``);
        /// rendered only when asked, so a restart does not format it.
        var lastExit: ExitReason?
    }

    let flags: Supervisor.Flags
    let serverName: ServerName?
    /// For reports: the registered name, or the pid once the process runs.
    var name = ""
    var children: [Child]
    var intensity: RestartIntensity

    init(flags: Supervisor.Flags, name: ServerName?, specs: [ChildSpec]) {
        self.flags = flags
        self.serverName = name
        self.children = specs.map { Child(spec: $0, pid: nil) }
        self.intensity = RestartIntensity(intensity: flags.intensity, period: flags.period)
    }

    /// Starts the children in order; a child that fails to start stops those already
    /// started and fails the supervisor's start.
    mutating func initialize(_ me: Process) async throws -> InitResult {
        name = serverName?.description ?? "\(me.pid)"
        me.label = "supervisor \(name) (\(flags.strategy.rawValue))"
        for i in children.indices {
            do {
                try await startChild(at: i, me)
            } catch {
                await terminateAll(me)
                return .stop(.shutdownWith("failed_to_start_child \(children[i].spec.id): \(error)"))
            }
        }
        return .ok
    }

    // MARK: Starting

    /// Starts child `i`; throws its failure reason.
    mutating func startChild(at i: Int, _ me: Process) async throws(SupervisorError) {
        let spec = children[i].spec
        let pid: Pid?
        do {
            pid = try await spec.start(me.lent(), [])
        } catch let e as StartError {
            if case .ignored = e { pid = nil } else {
                let reason: ExitReason
                if case .failed(let r) = e { reason = r } else { reason = .custom("\(e)") }
                SupervisorLog.report("start_error", supervisor: name, child: spec.id, pid: nil, reason: reason, childRestarts: children[i].restarts, supervisorRestarts: intensity.total)
                throw .startFailed(spec.id, reason)
            }
        } catch {
            let reason = (error as? ProcessExit)?.reason ?? .error(error)
            SupervisorLog.report("start_error", supervisor: name, child: spec.id, pid: nil, reason: reason, childRestarts: children[i].restarts, supervisorRestarts: intensity.total)
            throw .startFailed(spec.id, reason)
        }
        children[i].pid = pid
        if let pid { try? me.link(pid) }
    }

    // MARK: Restarting

    mutating func childExited(_ pid: Pid, reason: ExitReason, _ me: Process) async throws {
        guard let i = children.firstIndex(where: { $0.pid == pid }) else { return }
        let child = children[i]
        children[i].pid = nil
        if reason.isAbnormal {
            children[i].lastExit = reason
            SupervisorLog.report("child_terminated", supervisor: name, child: child.spec.id, pid: child.pid, reason: reason, childRestarts: child.restarts, supervisorRestarts: intensity.total)
        }
        switch child.spec.restart {
        case .temporary:
            children.remove(at: i)
            return
        case .transient where !reason.isAbnormal:
            return
        default:
            break
        }
        try await restart(at: i, me)
    }

    /// Restarts child `i` by the strategy, retrying failed starts; each attempt counts
    /// toward the intensity, and exceeding it ends the supervisor with `shutdown`.
    mutating func restart(at index: Int, _ me: Process) async throws {
        var i = index
        let id = children[i].spec.id
        while true {
            guard intensity.add() else {
                SupervisorLog.report("shutdown: reached_max_restart_intensity", supervisor: name, child: id, pid: nil, reason: .shutdown, childRestarts: children[i].restarts, supervisorRestarts: intensity.total)
                throw ProcessExit(.shutdown)
            }
            intensity.total += 1
            OTPMetrics.restarted(supervisor: name, child: id)
            var toStart: [Int]
            switch flags.strategy {
            case .oneForOne:
                toStart = [i]
            case .oneForAll, .restForOne:
                let from = flags.strategy == .oneForAll ? 0 : i
                // Siblings stop in reverse start order; temporary ones are then dropped.
                for j in stride(from: children.count - 1, through: from, by: -1) where j != i {
                    if let pid = children[j].pid {
                        _ = try await me.shutdownChild(pid, children[j].spec.shutdown)
                        children[j].pid = nil
                    }
                }
                let kept = children.indices.filter { $0 < from || $0 == i || children[$0].spec.restart != .temporary }
                let restartedID = children[i].spec.id
                children = kept.map { children[$0] }
                i = children.firstIndex { $0.spec.id == restartedID }!
                toStart = Array((flags.strategy == .oneForAll ? 0 : i)..<children.count)
            }
            var failed = false
            for j in toStart where children[j].pid == nil {
                children[j].restarts += 1
                do {
                    try await startChild(at: j, me)
                } catch {
                    failed = true
                    i = j
                    break
                }
            }
            if !failed { return }
        }
    }

    // MARK: Stopping

    /// Stops every running child in reverse start order.
    mutating func terminateAll(_ me: Process) async {
        for j in children.indices.reversed() {
            guard let pid = children[j].pid else { continue }
            let reason = (try? await me.shutdownChild(pid, children[j].spec.shutdown)) ?? .killed
            if !isExpectedShutdown(reason, children[j].spec.shutdown) {
                SupervisorLog.report("shutdown_error", supervisor: name, child: children[j].spec.id, pid: pid, reason: reason, childRestarts: children[j].restarts, supervisorRestarts: intensity.total)
            }
            children[j].pid = nil
        }
    }

    // MARK: Calls

    mutating func handle(_ request: SupervisorRequest, _ me: Process) async -> SupervisorReply {
        switch request {
        case .whichChildren:
            return .children(children.map { ChildInfo(id: $0.spec.id, pid: $0.pid, type: $0.spec.type, restart: $0.spec.restart,
                                                  restarts: $0.restarts, lastExitReason: $0.lastExit.map { "\($0)" }) })
        case .countChildren:
            return .counts(ChildCounts(
                specs: children.count, active: children.filter { $0.pid?.isAlive == true }.count,
                supervisors: children.filter { $0.spec.type == .supervisor }.count,
                workers: children.filter { $0.spec.type == .worker }.count))
        case .startChild(let spec):
            if let existing = children.first(where: { $0.spec.id == spec.id }) {
                if let pid = existing.pid { return .error(.alreadyStarted(spec.id, pid)) }
                return .error(.alreadyPresent(spec.id))
            }
            children.append(Child(spec: spec, pid: nil))
            do {
                try await startChild(at: children.count - 1, me)
                return .started(children[children.count - 1].pid)
            } catch {
                children.removeLast()
                return .error(error)
            }
        case .terminateChild(let id):
            guard let j = children.firstIndex(where: { $0.spec.id == id }) else { return .error(.notFound(id)) }
            if let pid = children[j].pid { _ = try? await me.shutdownChild(pid, children[j].spec.shutdown) }
            children[j].pid = nil
            if children[j].spec.restart == .temporary { children.remove(at: j) }
            return .ok
        case .terminatePid:
            return .error(.notFound("pid"))
        case .restartChild(let id):
            guard let j = children.firstIndex(where: { $0.spec.id == id }) else { return .error(.notFound(id)) }
            if children[j].pid != nil { return .error(.running(id)) }
            do {
                try await startChild(at: j, me)
                return .started(children[j].pid)
            } catch {
                return .error(error)
            }
        case .deleteChild(let id):
            guard let j = children.firstIndex(where: { $0.spec.id == id }) else { return .error(.notFound(id)) }
            if children[j].pid != nil { return .error(.running(id)) }
            children.remove(at: j)
            return .ok
        }
    }
}

/// Whether a child stopped the way its shutdown asked (else OTP logs a `shutdown_error`).
func isExpectedShutdown(_ reason: ExitReason, _ shutdown: ChildSpec.Shutdown) -> Bool {
    switch shutdown {
    case .brutalKill: if case .killed = reason { return true }
    case .timeout, .infinity: if reason.isShutdown { return true }
    }
    if case .noproc = reason { return true }
    return false
}
