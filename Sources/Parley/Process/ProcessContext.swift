import ParleyRuntime

/// What every process can do from its own code, whichever shape it has: its pid, sends,
/// spawns, links, monitors, exit signals, aliases, its name and timers. ``Process`` (a
/// sequential process's view of itself) and ``CallbackProcess`` (what a callback handler
/// gets with each message) conform; only ``Process`` can wait (`receive`, `select`,
/// `sleep`), so a handler that tries to wait fails to compile rather than at run time.
///
/// Write helpers against it to use them from both kinds of process:
///
/// ```swift
/// func greet(_ me: some ProcessContext, _ other: Pid) {
///     me.send("hello from \(me.pid)", to: other)
/// }
/// ```
///
/// Only Parley's two types conform: the requirement is a handle that only Parley makes.
public protocol ProcessContext {
    /// Parley's handle on the running process (not for application code).
    var _process: ProcessHandle { get }
}

/// An opaque handle on a running process, which only Parley makes: it ties a
/// ``ProcessContext`` to its process.
public struct ProcessHandle {
    // Not Sendable, as the contexts that hold it: a handle belongs to its process.
    @usableFromInline let core: ProcessCore
    init(core: ProcessCore) { self.core = core }
}

@available(*, unavailable, message: "a process's handle belongs to its process; send its pid instead")
extension ProcessHandle: Sendable {}

extension ProcessContext {
    @usableFromInline var core: ProcessCore { _process.core }

    /// This process's pid (Erlang's `self()`).
    @inlinable
    public var pid: Pid { core.pid }

    /// The node this process runs on (``LocalNode/default`` unless it was spawned on another).
    public var node: LocalNode { core.home }

    // MARK: Sending

    /// Sends `message` to `pid`. Never blocks. Dropped silently if `pid` is dead, and also if
    /// this process has itself been killed (a killed process's later effects are discarded).
    @inlinable
    public func send(_ message: any Sendable, to pid: Pid) {
        guard core.isAlive else { return }
        pid.deliver(message, from: core)
    }

    /// Sends to a registered name.
    /// - Throws: ``ProcessError/notRegistered(_:)`` if no process has the name (Erlang's `badarg`).
    public func send(_ message: any Sendable, to name: String) throws(ProcessError) {
        guard let pid = core.home.whereis(name) else { throw .notRegistered(name) }
        send(message, to: pid)
    }

    /// Sends to the process registered as `name` on `node` (Erlang's `{Name, Node} ! Message`).
    /// Never fails: as on the BEAM, a message for a name nobody has there is dropped, and a
    /// node that cannot be reached drops it too. On this node it is ``send(_:to:)-(_,String)``
    /// without the error.
    public func send(_ message: any Sendable, to name: String, on node: Node) {
        guard core.isAlive else { return }
        Process.send(message, to: name, on: node, from: core.pid, home: core.home)
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
        switch Route(node, from: core.home) {
        case .local:
            if let pid = core.home.whereis(name) {
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

    // MARK: Spawning

    /// Spawns a sequential process; with `options.link`, linked to this one (`spawn_link`).
    /// - Throws: ``ProcessError/nameTaken(_:by:)`` if `options.name` is taken.
    @discardableResult
    @inlinable
    public func spawn(_ options: SpawnOptions, _ body: @escaping @Sendable @concurrent (Process) async throws -> Void) throws(ProcessError) -> Pid {
        try Process.spawnSequential(options, parent: core, body: body)
    }

    /// Spawns a sequential process.
    @discardableResult
    @inlinable
    public func spawn(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) -> Pid {
        try! Process.spawnSequential(SpawnOptions(), parent: core, body: body)
    }

    /// Spawns a sequential process linked to this one (`spawn_link`).
    @discardableResult
    @inlinable
    public func spawnLink(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) -> Pid {
        try! spawn(SpawnOptions(link: true), body)
    }

    /// Spawns a sequential process and monitors it (`spawn_monitor`).
    @inlinable
    public func spawnMonitor(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) -> (Pid, Reference) {
        let ref = Reference.make()
        let pid = try! Process.spawnSequential(SpawnOptions(), parent: core, body: body, monitorRef: ref)
        return (pid, ref)
    }

    /// Spawns a sequential process with options and monitors it (`spawn_opt` with
    /// `monitor`): the monitor exists before the process runs, so even an instant death is
    /// reported with its real reason.
    @inlinable
    public func spawnMonitor(_ options: SpawnOptions, _ body: @escaping @Sendable @concurrent (Process) async throws -> Void) throws(ProcessError) -> (Pid, Reference) {
        let ref = Reference.make()
        let pid = try Process.spawnSequential(options, parent: core, body: body, monitorRef: ref)
        return (pid, ref)
    }

    /// Spawns a callback process whose `handler` runs once per message with its state.
    /// With `options.link`, it is linked to this process.
    @discardableResult
    @inlinable
    public func spawn<State>(
        _ options: SpawnOptions = SpawnOptions(), state: sending State,
        handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
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
        switch Route(pid, sender: core) {
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
        switch Route(pid, sender: core) {
        case .local(let p): p?.removeLink(core.pid)
        case .remote(let router): router.unlink(from: core.pid, to: pid)
        case .unreachable: break
        }
    }

    /// Monitors `pid`: a ``DownMessage`` arrives when it exits, at once with `noproc` if it is
    /// already dead. Monitors are one-way and stack: each call makes a new one.
    @discardableResult
    @inlinable
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

    /// Lets many processes send to this one in parallel: from now on, messages from other
    /// processes wait in one of several queues picked by the sender, so senders no longer
    /// take turns at this mailbox's lock (the BEAM's parallel signal sending optimization,
    /// which Erlang/OTP 25 applies to processes with
    /// `process_flag(message_queue_data, off_heap)`). For a process that many others send
    /// to at once: a logger, a collector, a router.
    ///
    /// What changes is order between senders, which Erlang never promised: each sender's
    /// messages still arrive in the order sent, and its exit signal or DOWN after them; but
    /// a message may now arrive before one that was sent, by another process, before it
    /// was caused (B sends to this process, then tells A, which sends here too: A's message
    /// may come first). Returns false, and changes nothing, for a bounded mailbox
    /// (``SpawnOptions/mailbox``) or a process that has exited. It cannot be turned off.
    ///
    /// ```swift
    /// let collector = Process.spawn { me in
    ///     me.enableParallelSend()
    ///     var total = 0
    ///     while true { total += try await me.receive(Int.self) }
    /// }
    /// ```
    @discardableResult
    public func enableParallelSend() -> Bool {
        core.useArrivalShards()
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
        try core.home.registry.register(name, core.pid)
    }

    // MARK: Timers

    /// Sends `message` to this process after `delay` (`erlang:send_after/3` to `self()`).
    @discardableResult
    public func sendAfter(_ message: any Sendable, after delay: Duration) -> TimerRef {
        Process.sendAfter(message, to: core.pid, after: delay)
    }

    // MARK: Blocking work

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
