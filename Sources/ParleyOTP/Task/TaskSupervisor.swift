import Parley

/// Elixir's `Task.Supervisor`: a dynamic supervisor of temporary task processes, for tasks
/// whose failure should not take their caller down.
///
/// ```swift
/// let tasks = try await TaskSupervisor.start()
/// try await Process.run { me in
///     let t = try await tasks.asyncNolink { _ in try riskyWork() }
///     switch try await t.yield(timeout: .seconds(1)) {
///     case .ok(let v)?: print("done", v)
///     case .exit(let reason)?: print("failed", reason)     // the caller lives on
///     case nil: try await t.shutdown()
///     }
/// }
/// ```
public struct TaskSupervisor: Sendable, Hashable {
    /// The dynamic supervisor underneath.
    public let supervisor: DynamicSupervisor

    public var pid: Pid { supervisor.pid }

    /// Starts a task supervisor, not linked.
    public static func start(maxChildren: Int? = nil, name: ServerName? = nil) async throws(StartError) -> TaskSupervisor {
        TaskSupervisor(supervisor: try await DynamicSupervisor.start(maxChildren: maxChildren, intensity: 3, period: .seconds(5), name: name))
    }

    /// A child spec for a task supervisor under another supervisor.
    public static func childSpec(id: String, maxChildren: Int? = nil, name: ServerName? = nil) -> ChildSpec {
        DynamicSupervisor.childSpec(id: id, maxChildren: maxChildren, name: name)
    }

    /// Starts a task under the supervisor, monitored but not linked by the calling process
    /// (`Task.Supervisor.async_nolink/3`): a crash comes back from ``ProcessTask/yield(timeout:)``
    /// as `.exit(reason)` and from ``ProcessTask/await(timeout:)`` as ``TaskError/exited(_:)``.
    public func asyncNolink<Value: Sendable>(_ body: @escaping @Sendable @concurrent (Process) async throws -> Value) async throws -> ProcessTask<Value> {
        guard let me = await Process.current else { throw TaskError.noProcess }
        let tag = me.alias()
        let owner = me.pid
        let spec = ChildSpec(id: "task", restart: .temporary, shutdown: .timeout(.milliseconds(5000))) { sup in
            sup.spawnLink { t in
                // As Elixir's Task.Supervised.reply/4: wait for the owner's go-ahead, sent once
                // its monitor of this task exists, so a failure at once still reports its
                // reason; leave if the owner dies first or never sends it (5000 ms).
                let ownerRef = t.monitor(owner)
                let go = try await t.receive(after: .milliseconds(5000)) { m -> ExitReason?? in
                    if let g = m as? TaskGo, g.tag == tag { return .some(nil) }
                    if let d = m as? DownMessage, d.ref == ownerRef { return .some(.shutdownWith(d.reason)) }
                    return nil
                }
                switch go {
                case nil: throw ProcessExit(.custom("timeout"))
                case .some(let reason?): throw ProcessExit(reason)
                case .some(nil): t.demonitor(ownerRef, flush: true)
                }
                let value = try await body(t)
                tag.send(TaskReply(tag: tag, index: 0, result: value))
            }
        }
        let pid: Pid?
        do {
            pid = try await supervisor.startChild(spec)
        } catch {
            me.unalias(tag)
            throw TaskError.start(error)
        }
        let ref = me.monitor(pid!)
        me.send(TaskGo(tag: tag), to: pid!)
        return ProcessTask(pid: pid!, ref: ref, owner: me.pid, tag: tag)
    }

    /// Starts a fire-and-forget task under the supervisor (`Task.Supervisor.start_child/2`).
    @discardableResult
    public func startChild(restart: ChildSpec.Restart = .temporary, _ body: @escaping @Sendable @concurrent (Process) async throws -> Void) async throws(SupervisorError) -> Pid? {
        try await supervisor.startChild(ChildSpec(id: "task", restart: restart) { sup in sup.spawnLink(body) })
    }

    /// The running tasks' pids (`Task.Supervisor.children/1`).
    public func children() async throws(SupervisorError) -> [Pid] {
        try await supervisor.whichChildren().compactMap(\.pid)
    }
}
