import ParleyRuntime

/// A process's view of itself, and (as static members) Elixir's `Process` and `Kernel`
/// functions for processes.
///
/// A sequential process gets a `Process` as its body's argument; a callback process gets one
/// with each message. It is not `Sendable`: it cannot leave its process, so `receive` is only
/// ever called by the process that owns the mailbox.
///
/// Messages are `Sendable` values. Swift 6's checking plays the role of the BEAM's
/// per-process heap: a message cannot carry mutable state shared with its sender.
///
/// ```swift
/// let parent = try await Process.run { me in
///     let child = me.spawn { child in
///         let (from, text) = try await child.receive((Pid, String).self)
///         child.send("echo: \(text)", to: from)
///     }
///     me.send((me.pid, "hi"), to: child)
///     return try await me.receive(String.self)    // "echo: hi"
/// }
/// ```
///
/// If Foundation is imported too, write `Parley.Process`: Foundation has a `Process` class.
public struct Process {
    @usableFromInline let core: ProcessCore

    init(core: ProcessCore) { self.core = core }

    /// This process's pid (Erlang's `self()`).
    public var pid: Pid { core.pid }

    /// The two shapes of process.
    public enum Kind: String, Sendable {
        /// An async body that calls `receive`; a Swift task while alive.
        case sequential
        /// A handler called once per message; no Swift task while idle.
        case callback
    }

    // MARK: Sending

    /// Sends `message` to `pid`. Never blocks. Dropped silently if `pid` is dead, and also if
    /// this process has itself been killed (a killed process's later effects are discarded).
    public func send(_ message: any Sendable, to pid: Pid) {
        guard core.isAlive else { return }
        pid.deliver(message)
    }

    /// Sends to a registered name.
    /// - Throws: ``ProcessError/notRegistered(_:)`` if no process has the name (Erlang's `badarg`).
    public func send(_ message: any Sendable, to name: String) throws(ProcessError) {
        guard let pid = Process.whereis(name) else { throw .notRegistered(name) }
        send(message, to: pid)
    }

    /// Sends to the process registered as `name` on `node` (Erlang's `{Name, Node} ! Message`).
    /// Never fails: as on the BEAM, a message for a name nobody has there is dropped, and a
    /// node that cannot be reached drops it too. On this node it is ``send(_:to:)-(_,String)``
    /// without the error.
    public func send(_ message: any Sendable, to name: String, on node: Node) {
        guard core.isAlive else { return }
        Process.send(message, to: name, on: node, from: core.pid)
    }

    /// Monitors the process registered as `name` on `node` (Erlang's
    /// `monitor(process, {Name, Node})`). The ``DownMessage`` names a pid that stands in for
    /// `{Name, Node}`: its node is `node` and its id 0.
    @discardableResult
    public func monitor(_ name: String, on node: Node) -> Reference {
        let ref = Reference.make()
        monitor(name, on: node, ref: ref, standIn: true)
        return ref
    }

    func monitor(_ name: String, on node: Node, ref: Reference, standIn _: Bool) {
        let standIn = Pid(node: node, id: 0, serial: 0, creation: 0)
        switch Route(node) {
        case .local:
            if let pid = Process.whereis(name) {
                Process.establishMonitor(ref, watcher: core, target: pid)
            } else {
                core.deliver(DownMessage(ref: ref, pid: standIn, reason: .noproc))
            }
        case .remote(let router):
            guard core.noteMonitoring(ref, target: standIn) else { return }
            if !router.monitor(watcher: core.pid, name: name, on: node, ref: ref) {
                core.monitorFired(ref, pid: standIn, reason: .noconnection)
            }
        case .unreachable:
            core.deliver(DownMessage(ref: ref, pid: standIn, reason: .noconnection))
        }
    }

    // MARK: Receiving

    @usableFromInline
    var sequential: SequentialProcess {
        get throws(ProcessError) {
            guard let s = core as? SequentialProcess else { throw .notSequential(core.pid) }
            return s
        }
    }

    /// Waits for the first message `match` accepts (returns non-nil for), in arrival order.
    /// Messages it rejects stay in the mailbox, in order.
    ///
    /// ```swift
    /// let n = try await me.receive { message -> Int? in
    ///     if case let (tag, value) as (String, Int) = message, tag == "count" { return value }
    ///     return nil
    /// }
    /// ```
    /// - Throws: ``ProcessExit`` if the process is killed or dies from an exit signal while it
    ///   waits; ``ProcessError/notSequential(_:)`` in a callback process.
    @inlinable
    public func receive<R>(_ match: (any Sendable) throws -> R?) async throws -> R {
        var result: R? = nil
        _ = try await sequential.receive(deadline: nil) { m in
            result = try match(m)
            return result != nil
        }
        return result!
    }

    /// Like ``receive(_:)`` with an `after` clause: returns `nil` if nothing matched within
    /// `timeout`. `.zero` polls the mailbox without waiting.
    @inlinable
    public func receive<R>(after timeout: Duration, _ match: (any Sendable) throws -> R?) async throws -> R? {
        var result: R? = nil
        _ = try await sequential.receive(deadline: MonotonicClock.deadline(after: timeout)) { m in
            result = try match(m)
            return result != nil
        }
        return result
    }

    /// Waits for the next message, whatever it is.
    @inlinable
    public func receive() async throws -> any Sendable {
        try await receive { $0 }
    }

    /// Waits up to `timeout` for the next message.
    @inlinable
    public func receive(after timeout: Duration) async throws -> (any Sendable)? {
        try await receive(after: timeout) { $0 }
    }

    /// Waits for the first message of type `T` (and, if given, accepted by `predicate`);
    /// messages of other types stay in the mailbox in order.
    ///
    /// ```swift
    /// let big = try await me.receive(Int.self, where: { $0 > 100 })
    /// ```
    @inlinable
    public func receive<T>(_ type: T.Type, where predicate: (T) throws -> Bool = { _ in true }) async throws -> T {
        try await receive { m in
            guard let t = m as? T, try predicate(t) else { return nil }
            return t
        }
    }

    /// Waits up to `timeout` for the first message of type `T` accepted by `predicate`.
    @inlinable
    public func receive<T>(_ type: T.Type, after timeout: Duration, where predicate: (T) throws -> Bool = { _ in true }) async throws -> T? {
        try await receive(after: timeout) { m in
            guard let t = m as? T, try predicate(t) else { return nil }
            return t
        }
    }

    /// Suspends this process for `duration` and leaves its mailbox untouched: Erlang's
    /// `timer:sleep/1`, which is `receive after T -> ok end`. No scheduler thread is held.
    ///
    /// ```swift
    /// try await me.sleep(for: .milliseconds(100))
    /// ```
    /// - Throws: ``ProcessExit`` if the process is killed while it sleeps.
    public func sleep(for duration: Duration) async throws {
        _ = try await sequential.receive(deadline: MonotonicClock.deadline(after: duration)) { _ in false }
    }

    /// Gives the scheduler to other processes: for a long loop that does not receive
    /// (Erlang's `erlang:yield/0`).
    public func yield() async {
        await Scheduler.yield()
        Scheduler.noteRunning(core)
    }

    // MARK: Spawning

    /// Spawns a sequential process; with `options.link`, linked to this one (`spawn_link`).
    /// - Throws: ``ProcessError/nameTaken(_:by:)`` if `options.name` is taken.
    @discardableResult
    public func spawn(_ options: SpawnOptions, _ body: @escaping @Sendable (Process) async throws -> Void) throws(ProcessError) -> Pid {
        try Process.spawnSequential(options, parent: core, body: body)
    }

    /// Spawns a sequential process.
    @discardableResult
    public func spawn(_ body: @escaping @Sendable (Process) async throws -> Void) -> Pid {
        Process.spawn(body)
    }

    /// Spawns a sequential process linked to this one (`spawn_link`).
    @discardableResult
    public func spawnLink(_ body: @escaping @Sendable (Process) async throws -> Void) -> Pid {
        try! spawn(SpawnOptions(link: true), body)
    }

    /// Spawns a sequential process and monitors it (`spawn_monitor`).
    public func spawnMonitor(_ body: @escaping @Sendable (Process) async throws -> Void) -> (Pid, Reference) {
        let ref = Reference.make()
        let pid = try! Process.spawnSequential(SpawnOptions(), parent: core, body: body, monitorRef: ref)
        return (pid, ref)
    }

    /// Spawns a sequential process with options and monitors it (`spawn_opt` with
    /// `monitor`): the monitor exists before the process runs, so even an instant death is
    /// reported with its real reason.
    public func spawnMonitor(_ options: SpawnOptions, _ body: @escaping @Sendable (Process) async throws -> Void) throws(ProcessError) -> (Pid, Reference) {
        let ref = Reference.make()
        let pid = try Process.spawnSequential(options, parent: core, body: body, monitorRef: ref)
        return (pid, ref)
    }

    /// Spawns a callback process whose `handler` runs once per message with its state.
    /// With `options.link`, it is linked to this process.
    @discardableResult
    public func spawn<State>(
        _ options: SpawnOptions = SpawnOptions(), state: sending State,
        handler: @escaping @Sendable (inout State, any Sendable, Process) throws -> Next
    ) throws(ProcessError) -> Pid {
        try Process.spawnCallback(options, parent: core, state: state, handler: handler)
    }

    // MARK: Links, monitors, exits

    /// Links this process to `pid` (bidirectional). If `pid` is dead: when trapping exits,
    /// an `ExitMessage` with `noproc` arrives; otherwise this throws `noproc` (Erlang's link/1).
    ///
    /// A pid on another node is linked through its node's connection. If that node cannot
    /// be reached, the link fires at once with `noconnection` (Erlang's `link/1` does the same).
    public func link(_ pid: Pid) throws(ProcessError) {
        let target: ProcessCore
        switch Route(pid) {
        case .local(let p?): target = p
        case .local(nil): throw .noproc(pid)
        case .unreachable: throw .notLocal(pid)
        case .remote(let router):
            guard core.addLink(pid) else { return }
            if !router.link(from: core.pid, to: pid) {
                ExitSignals.propagate([.init(target: core.pid, from: pid, reason: .noconnection, isLink: true)])
            }
            return
        }
        if pid == core.pid { return }
        guard core.addLink(pid) else { return }
        if !target.addLink(core.pid) {
            core.removeLink(pid)
            if trapExit {
                core.deliver(ExitMessage(from: pid, reason: .noproc))
                return
            }
            throw .noproc(pid)
        }
    }

    /// Removes the link between this process and `pid`, if any.
    public func unlink(_ pid: Pid) {
        core.removeLink(pid)
        switch Route(pid) {
        case .local(let p): p?.removeLink(core.pid)
        case .remote(let router): router.unlink(from: core.pid, to: pid)
        case .unreachable: break
        }
    }

    /// Monitors `pid`: a ``DownMessage`` arrives when it exits, at once with `noproc` if it is
    /// already dead. Monitors are one-way and stack: each call makes a new one.
    @discardableResult
    public func monitor(_ pid: Pid) -> Reference {
        let ref = Reference.make()
        Process.establishMonitor(ref, watcher: core, target: pid)
        return ref
    }

    /// Removes a monitor. With `flush`, also removes its ``DownMessage`` from the mailbox if it
    /// already arrived (Erlang's `demonitor(Ref, [flush])`). Returns whether a monitor was removed.
    @discardableResult
    public func demonitor(_ ref: Reference, flush: Bool = false) -> Bool {
        let target = core.forgetMonitoring(ref)
        if let target { ProcessCore.demonitor(ref, watcher: core.pid, target: target) }
        if flush { _ = core.flush { ($0 as? DownMessage)?.ref == ref } }
        return target != nil
    }

    /// Whether exit signals become ``ExitMessage``s instead of ending this process
    /// (`process_flag(trap_exit, Bool)`). `kill` sent with `Process.exit` is never trapped.
    public var trapExit: Bool {
        get { core.withShared { $0.extras?.trapExit ?? false } }
        nonmutating set { core.withShared { s in if !s.mailbox.isDead { s.ensureExtras().trapExit = newValue } } }
    }

    /// A label for introspection (OTP 27's `proc_lib:set_label/1`).
    public var label: String? {
        get { core.withShared { $0.extras?.label } }
        nonmutating set { core.withShared { s in if !s.mailbox.isDead { s.ensureExtras().label = newValue } } }
    }

    /// Sends an exit signal from this process to `pid` (Erlang's `exit/2`); see
    /// ``Process/exit(_:_:)`` for the rules.
    public func exit(_ pid: Pid, _ reason: ExitReason) {
        guard core.isAlive else { return }
        Process.sendExit(to: pid, from: core.pid, reason: reason)
    }

    /// Makes an alias of this process (Erlang's `alias/0`): a ``Reference`` that others can
    /// send to with ``Reference/send(_:)``. Messages to it arrive in this mailbox until
    /// ``unalias(_:)``; after that they are dropped, so a reply that comes too late never
    /// lands (the mechanism behind ``Gen/call(_:_:timeout:)``).
    ///
    /// ```swift
    /// let alias = me.alias()
    /// worker.send((alias, job))          // the worker answers with alias.send(result)
    /// let result = try await me.receive(Result.self, after: .seconds(1))
    /// me.unalias(alias)                  // anything later is dropped
    /// ```
    public func alias() -> Reference {
        let ref = Reference.makeAlias(owner: core)
        core.withShared { s in if !s.mailbox.isDead { s.ensureExtras().aliases.insert(ref.id) } }
        return ref
    }

    /// Deactivates an alias made by ``alias()`` (Erlang's `unalias/1`). Returns whether it
    /// was an active alias of this process.
    @discardableResult
    public func unalias(_ alias: Reference) -> Bool {
        guard alias.owner === core else { return false }
        return core.withShared { s in s.extras?.aliases.remove(alias.id) != nil }
    }

    /// Registers this process under `name`.
    public func register(_ name: String) throws(ProcessError) {
        try LocalRegistry.register(name, core.pid)
    }

    // MARK: Timers and blocking work

    /// Sends `message` to this process after `delay` (`erlang:send_after/3` to `self()`).
    @discardableResult
    public func sendAfter(_ message: any Sendable, after delay: Duration) -> TimerRef {
        Process.sendAfter(message, to: core.pid, after: delay)
    }

    /// Runs `work` on the blocking pool and waits for it without holding a scheduler thread.
    /// For sequential processes.
    ///
    /// ```swift
    /// let data = try await me.blocking { try loadFile(path) }
    /// ```
    public func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let result = try await Scheduler.shared.blocking.run(work)
        Scheduler.noteRunning(core)
        return result
    }

    /// Runs `work` on the blocking pool and sends `reply(result)` to this process when it
    /// finishes: the way for a callback process to do blocking work.
    public func blocking<T: Sendable>(
        _ work: @escaping @Sendable () throws -> T,
        reply: @escaping @Sendable (Result<T, any Error>) -> any Sendable
    ) {
        let me = core.pid
        Scheduler.shared.blocking.submit { me.send(reply(Result { try work() })) }
    }
}

@available(*, unavailable, message: "a Process value belongs to its process; send its pid instead")
extension Process: Sendable {}
