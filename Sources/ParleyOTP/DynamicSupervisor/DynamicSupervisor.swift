import Logging
import Parley

/// Elixir's `DynamicSupervisor`: starts with no children, starts them on demand, restarts
/// them one for one, and stops them all at once (concurrently) when it stops.
///
/// ```swift
/// let sup = try await DynamicSupervisor.start(maxChildren: 10_000)
/// let pid = try await sup.startChild(ChildSpec(id: "session", restart: .transient) { me in
///     try Session().startLink(me).pid
/// })
/// try await sup.terminateChild(pid!)
/// ```
public struct DynamicSupervisor: Sendable, Hashable, CustomStringConvertible {
    public let pid: Pid

    public init(_ pid: Pid) { self.pid = pid }

    public var description: String { "DynamicSupervisor\(pid)" }

    /// Starts a dynamic supervisor, not linked.
    /// - Parameters:
    ///   - maxChildren: ``startChild(_:)`` fails with ``SupervisorError/maxChildren(_:)`` beyond it.
    ///   - extraArguments: passed to every child's start function (after `me`).
    public static func start(
        maxChildren: Int? = nil, intensity: Int = 3, period: Duration = .seconds(5),
        extraArguments: [any Sendable] = [], name: ServerName? = nil
    ) async throws(StartError) -> DynamicSupervisor {
        try await start(maxChildren: maxChildren, intensity: intensity, period: period, extraArguments: extraArguments, name: name, parent: nil)
    }

    /// Starts a dynamic supervisor linked to `parent`, for a supervisor's child spec.
    public static func startLink(
        _ parent: Process, maxChildren: Int? = nil, intensity: Int = 3, period: Duration = .seconds(5),
        extraArguments: [any Sendable] = [], name: ServerName? = nil
    ) async throws(StartError) -> DynamicSupervisor {
        try await start(maxChildren: maxChildren, intensity: intensity, period: period, extraArguments: extraArguments, name: name, parent: parent)
    }

    /// A child spec for a dynamic supervisor under another supervisor.
    public static func childSpec(
        id: String, maxChildren: Int? = nil, intensity: Int = 3, period: Duration = .seconds(5),
        extraArguments: [any Sendable] = [], name: ServerName? = nil
    ) -> ChildSpec {
        ChildSpec(id: id, type: .supervisor) { me in
            try await DynamicSupervisor.startLink(me, maxChildren: maxChildren, intensity: intensity, period: period, extraArguments: extraArguments, name: name).pid
        }
    }

    static func start(
        maxChildren: Int?, intensity: Int, period: Duration, extraArguments: [any Sendable], name: ServerName?, parent: Process?
    ) async throws(StartError) -> DynamicSupervisor {
        let state = DynamicSupervisorState(
            serverName: name, maxChildren: maxChildren, intensity: RestartIntensity(intensity: intensity, period: period),
            extra: extraArguments)
        let pid = try await state.startSupervisor(name: name, parent: parent)
        return DynamicSupervisor(pid)
    }

    /// Starts a child (`DynamicSupervisor.start_child/2`). Returns its pid, or `nil` if its
    /// start ignored. The spec's `id` is only used in reports.
    @discardableResult
    public func startChild(_ spec: ChildSpec) async throws(SupervisorError) -> Pid? {
        try await supervisorStarted(pid, .startChild(spec))
    }

    /// Stops a child (`DynamicSupervisor.terminate_child/2`).
    /// - Throws: ``SupervisorError/notFound(_:)`` if `child` is not its child.
    public func terminateChild(_ child: Pid) async throws(SupervisorError) {
        _ = try await supervisorReply(pid, .terminatePid(child))
    }

    /// The children, in no particular order (`which_children/1`).
    public func whichChildren() async throws(SupervisorError) -> [ChildInfo] {
        try await supervisorChildren(pid)
    }

    /// Counts of children (`count_children/1`).
    public func countChildren() async throws(SupervisorError) -> ChildCounts {
        try await supervisorCounts(pid)
    }

    /// Stops the supervisor; its children are stopped concurrently first.
    public func stop(_ reason: ExitReason = .normal, timeout: Duration? = nil) async throws(Gen.CallError) {
        try await stopProcess(pid, reason, timeout: timeout)
    }
}

/// The dynamic supervisor's state and callbacks, as an ``AsyncGenServer`` (OTP's
/// DynamicSupervisor is a gen_server too).
struct DynamicSupervisorState: SupervisorServer {
    let serverName: ServerName?
    /// For reports: the registered name, or the pid once the process runs.
    var name = ""
    let maxChildren: Int?
    var intensity: RestartIntensity
    let extra: [any Sendable]
    var children: [Pid: ChildSpec] = [:]
    /// Times each running child has been restarted (reports' `child_restarts`); absent: 0.
    var restartsOf: [Pid: Int] = [:]

    init(serverName: ServerName?, maxChildren: Int?, intensity: RestartIntensity, extra: [any Sendable]) {
        self.serverName = serverName
        self.maxChildren = maxChildren
        self.intensity = intensity
        self.extra = extra
    }

    mutating func initialize(_ me: Process) async throws -> InitResult {
        name = serverName?.description ?? "\(me.pid)"
        me.label = "dynamic supervisor \(name)"
        return .ok
    }

    mutating func start(_ spec: ChildSpec, _ me: Process) async throws(SupervisorError) -> Pid? {
        let pid: Pid?
        do {
            pid = try await spec.start(me.lent(), extra)
        } catch let e as StartError {
            if case .ignored = e { return nil }
            let reason: ExitReason
            if case .failed(let r) = e { reason = r } else { reason = .custom("\(e)") }
            throw .startFailed(spec.id, reason)
        } catch {
            throw .startFailed(spec.id, (error as? ProcessExit)?.reason ?? .error(error))
        }
        guard let pid else { return nil }
        try? me.link(pid)
        children[pid] = spec
        return pid
    }

    mutating func childExited(_ pid: Pid, reason: ExitReason, _ me: Process) async throws {
        guard let spec = children.removeValue(forKey: pid) else { return }
        var childRestarts = restartsOf.removeValue(forKey: pid) ?? 0
        if reason.isAbnormal {
            SupervisorLog.report("child_terminated", supervisor: name, child: spec.id, pid: pid, reason: reason, childRestarts: childRestarts, supervisorRestarts: intensity.total)
        }
        switch spec.restart {
        case .temporary: return
        case .transient where !reason.isAbnormal: return
        default: break
        }
        while true {
            guard intensity.add() else {
                SupervisorLog.report("shutdown: reached_max_restart_intensity", supervisor: name, child: spec.id, pid: pid, reason: .shutdown, childRestarts: childRestarts, supervisorRestarts: intensity.total)
                throw ProcessExit(.shutdown)
            }
            intensity.total += 1
            childRestarts += 1
            OTPMetrics.restarted(supervisor: name, child: spec.id)
            do {
                if let new = try await start(spec, me) { restartsOf[new] = childRestarts }
                return
            } catch {
                SupervisorLog.report("start_error", supervisor: name, child: spec.id, pid: nil, reason: .custom("\(error)"), childRestarts: childRestarts, supervisorRestarts: intensity.total)
            }
        }
    }

    /// Stops every child at once: all get their signal, then the supervisor waits for each
    /// DOWN until that child's own deadline, and kills those that overrun.
    mutating func terminateAll(_ me: Process) async {
        var waiting: [Reference: (pid: Pid, deadline: ContinuousClock.Instant?)] = [:]
        for (pid, spec) in children {
            let ref = me.monitor(pid)
            me.unlink(pid)
            switch spec.shutdown {
            case .brutalKill:
                me.exit(pid, .kill)
                waiting[ref] = (pid, nil)
            case .timeout(let t):
                me.exit(pid, .shutdown)
                waiting[ref] = (pid, .now + t)
            case .infinity:
                me.exit(pid, .shutdown)
                waiting[ref] = (pid, nil)
            }
        }
        children.removeAll()
        restartsOf.removeAll()
        // The earliest deadline, recomputed only when it passes: a DOWN can only remove a
        // later one, so it stays a valid time to wake (10,000 children stop in linear time).
        var next = waiting.values.compactMap(\.deadline).min()
        while !waiting.isEmpty {
            let wait = next.map { max(.zero, $0 - .now) }
            let down: DownMessage?
            do {
                if let wait {
                    down = try await me.receive(DownMessage.self, after: wait, where: { waiting[$0.ref] != nil })
                } else {
                    down = try await me.receive(DownMessage.self, where: { waiting[$0.ref] != nil })
                }
            } catch {
                return
            }
            if let down {
                waiting[down.ref] = nil
            } else {
                let now = ContinuousClock.now
                for (ref, entry) in waiting where entry.deadline.map({ $0 <= now }) == true {
                    me.exit(entry.pid, .kill)
                    waiting[ref] = (entry.pid, nil)
                }
                next = waiting.values.compactMap(\.deadline).min()
            }
        }
        // EXIT messages that arrived before the unlinks are stale now.
        while (try? await me.receive(ExitMessage.self, after: .zero)) != nil {}
    }

    mutating func handle(_ request: SupervisorRequest, _ me: Process) async -> SupervisorReply {
        switch request {
        case .startChild(let spec):
            if let maxChildren, children.count >= maxChildren { return .error(.maxChildren(maxChildren)) }
            do {
                return .started(try await start(spec, me))
            } catch {
                return .error(error)
            }
        case .terminatePid(let pid):
            guard let spec = children.removeValue(forKey: pid) else { return .error(.notFound("\(pid)")) }
            restartsOf[pid] = nil
            _ = try? await me.shutdownChild(pid, spec.shutdown)
            return .ok
        case .whichChildren:
            return .children(children.map { ChildInfo(id: $0.value.id, pid: $0.key, type: $0.value.type, restart: $0.value.restart) })
        case .countChildren:
            return .counts(ChildCounts(
                specs: children.count, active: children.keys.filter(\.isAlive).count,
                supervisors: children.values.filter { $0.type == .supervisor }.count,
                workers: children.values.filter { $0.type == .worker }.count))
        case .terminateChild(let id), .restartChild(let id), .deleteChild(let id):
            return .error(.notFound(id))
        }
    }
}
