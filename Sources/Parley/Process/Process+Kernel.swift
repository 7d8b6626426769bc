import ParleyRuntime
import Synchronization

/// The functions of Elixir's `Kernel` and `Process` modules that need no current process.
extension Process {
    /// The pid that signals and messages sent from outside any process come from (`<0.0.0>`).
    public static let outside = Pid(outsidePlaceholder: ())

    /// The process whose body the current Swift task runs (Erlang's `self()`), or `nil`
    /// outside any process and in child tasks a process's body creates (they share its
    /// task-locals but not its mailbox). Async, so callback handlers (which are synchronous
    /// and get their ``CallbackProcess`` as an argument) cannot ask it.
    ///
    /// ```swift
    /// func log(_ text: String) async {
    ///     let who = await Process.current?.pid.description ?? "outside"
    ///     print(who, text)
    /// }
    /// ```
    public static var current: Process? {
        get async { SequentialProcess.currentOwned().map { Process(core: $0) } }
    }

    // MARK: Spawning

    /// Spawns a sequential process running `body`. Returns at once; the process runs on
    /// Parley's schedulers, on ``LocalNode/current`` (the default node, or the node of the
    /// process the calling code runs in).
    ///
    /// ```swift
    /// let pid = Process.spawn { me in
    ///     while let n = try await me.receive(Int.self, after: .seconds(1)) { print(n) }
    /// }
    /// ```
    @discardableResult
    public static func spawn(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) -> Pid {
        try! spawnSequential(SpawnOptions(), parent: nil, body: body)
    }

    /// Spawns a sequential process with options (name, mailbox bound, trap exits, label).
    /// `options.link` needs a spawning process: use `spawn(_:_:)` on a ``Process`` value.
    /// - Throws: ``ProcessError/nameTaken(_:by:)`` if `options.name` is taken;
    ///   ``ProcessError/linkWithoutParent`` if `options.link` is set.
    @discardableResult
    public static func spawn(_ options: SpawnOptions, _ body: @escaping @Sendable @concurrent (Process) async throws -> Void) throws(ProcessError) -> Pid {
        try spawnSequential(options, parent: nil, body: body)
    }

    /// Spawns a callback process: no Swift task while idle; `handler` runs once per message,
    /// in arrival order, with the process's state.
    ///
    /// ```swift
    /// let counter = try Process.spawn(state: 0) { count, message, me in
    ///     switch message {
    ///     case let n as Int: count += n
    ///     case let from as Pid: me.send(count, to: from)
    ///     default: break
    ///     }
    ///     return .continue
    /// }
    /// ```
    @discardableResult
    @inlinable
    public static func spawn<State>(
        _ options: SpawnOptions = SpawnOptions(), state: sending State,
        handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
    ) throws(ProcessError) -> Pid {
        try spawnCallback(options, parent: nil, state: state, handler: handler)
    }

    /// Runs `body` as a sequential process and returns its result: the bridge from ordinary
    /// async code (a test, `main`) into the process world.
    ///
    /// ```swift
    /// let answer = try await Process.run { me in
    ///     me.send(42, to: me.pid)
    ///     return try await me.receive(Int.self)
    /// }
    /// ```
    /// - Throws: whatever `body` throws, or ``ProcessExit`` if the process is killed.
    public static func run<T: Sendable>(
        _ options: SpawnOptions = SpawnOptions(),
        _ body: @escaping @Sendable @concurrent (Process) async throws -> T
    ) async throws -> T {
        let started = Locked<Pid?>(nil)
        return try await withTaskCancellationHandler {
            // Through `awaitResult`: the process may finish before this task has suspended.
            try await awaitResult { (deliver: @escaping @Sendable (Result<T, any Error>) -> Void) in
                do {
                    let pid = try spawn(options) { me in
                        do {
                            deliver(.success(try await body(me)))
                        } catch {
                            deliver(.failure(error))
                            throw error
                        }
                    }
                    started.withLock { $0 = pid }
                    if Task.isCancelled { exit(pid, .kill) }
                } catch {
                    deliver(.failure(error))
                }
            }
        } onCancel: {
            // The caller gave up: the process is killed, and its receive throws ProcessExit.
            if let pid = started.withLock({ $0 }) { exit(pid, .kill) }
        }
    }

    @usableFromInline
    static func spawnSequential(
        _ options: SpawnOptions, parent: ProcessCore?,
        body: @escaping @Sendable @concurrent (Process) async throws -> Void,
        monitorRef: Reference? = nil
    ) throws(ProcessError) -> Pid {
        let process = SequentialProcess(limit: options.mailbox, hosted: LocalNode.hosted(options, parent: parent))
        try prepare(process, options, parent: parent, monitorRef: monitorRef)
        process.start(body)
        return process.pid
    }

    @inlinable
    static func spawnCallback<State>(
        _ options: SpawnOptions, parent: ProcessCore?, state: sending State,
        handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
    ) throws(ProcessError) -> Pid {
        let process = CallbackCore(state: state, limit: options.mailbox, hosted: LocalNode.hosted(options, parent: parent), handler: handler)
        try prepare(process, options, parent: parent, monitorRef: nil)
        return process.pid
    }

    /// Everything that must hold before a new process runs: table entry, name, flags, link.
    @usableFromInline
    static func prepare(_ p: ProcessCore, _ options: SpawnOptions, parent: ProcessCore?, monitorRef: Reference?) throws(ProcessError) {
        if options.link && parent == nil { throw .linkWithoutParent }
        if options.trapExit || options.label != nil || options.behaviour != nil {
            p.withShared { s in
                let e = s.ensureExtras()
                e.trapExit = options.trapExit
                e.label = options.label
                e.behaviour = options.behaviour
            }
        }
        if options.parallelSend { p.useArrivalShards() }   // refused for a bounded mailbox
        if let name = options.name { try p.home.registry.register(name, p.pid) }
        p.withTable { $0.insert(p) }
        if let parent {
            if let t = parent.traceSession(.procs) { t.record(.spawn, other: p.pid) }
            if options.link, parent.addLink(p.pid) { _ = p.addLink(parent.pid) }
            if let monitorRef { establishMonitor(monitorRef, watcher: parent, target: p.pid) }
        }
    }

    @usableFromInline
    static func establishMonitor(_ ref: Reference, watcher: ProcessCore, target: Pid) {
        switch Route(target, sender: watcher) {
        case .local(let t?):
            guard watcher.noteMonitoring(ref, target: target) else { return }
            if !t.addMonitor(ref, watcher: watcher.pid) {
                _ = watcher.forgetMonitoring(ref)
                watcher.deliver(DownMessage(ref: ref, pid: target, reason: .noproc))
            }
        case .local(nil):
            watcher.deliver(DownMessage(ref: ref, pid: target, reason: .noproc))
        case .remote(let router):
            guard watcher.noteMonitoring(ref, target: target) else { return }
            if !router.monitor(watcher: watcher.pid, target: target, ref: ref) {
                watcher.monitorFired(ref, pid: target, reason: .noconnection)
            }
        case .unreachable:
            watcher.deliver(DownMessage(ref: ref, pid: target, reason: .noconnection))
        }
    }

    // MARK: Messages and signals

    /// Sends `message` to `pid` from outside any process. Same as `pid.send(message)`.
    public static func send(_ message: any Sendable, to pid: Pid) { pid.deliver(message) }

    /// Sends to a registered name.
    /// - Throws: ``ProcessError/notRegistered(_:)`` if no process has the name.
    public static func send(_ message: any Sendable, to name: String) throws(ProcessError) {
        guard let pid = whereis(name) else { throw .notRegistered(name) }
        pid.deliver(message)
    }

    /// Sends to the process registered as `name` on `node`, from outside any process (Erlang's
    /// `{Name, Node} ! Message`). Dropped silently if nobody has the name there or the node
    /// cannot be reached, as on the BEAM.
    ///
    /// ```swift
    /// Process.send(Term.tuple([.pid(me), "hi"]), to: "echo", on: Node.named("erl@127.0.0.1"))
    /// ```
    public static func send(_ message: any Sendable, to name: String, on node: Node) {
        send(message, to: name, on: node, from: outside, home: .current)
    }

    static func send(_ message: any Sendable, to name: String, on node: Node, from: Pid, home: LocalNode) {
        switch Route(node, from: home) {
        case .local: home.whereis(name)?.deliver(message)
        case .remote(let router): router.send(message, toName: name, on: node, from: from)
        case .unreachable: break
        }
    }

    /// Sends an exit signal to `pid` (Erlang's `exit/2`), by Erlang's rules:
    /// - `.kill` ends the process with `killed`, even if it traps exits;
    /// - a process that traps exits gets an ``ExitMessage`` instead;
    /// - otherwise `.normal` is ignored, and any other reason ends the process with it.
    ///
    /// Swift cannot interrupt running code: the signal takes effect at once (links, monitors
    /// and the name see the death immediately), and a process that is running stops at its
    /// next suspension point, where `receive` throws ``ProcessExit``; anything it sends after
    /// the signal is discarded.
    public static func exit(_ pid: Pid, _ reason: ExitReason) {
        sendExit(to: pid, from: outside, reason: reason)
    }

    static func sendExit(to pid: Pid, from: Pid, reason: ExitReason) {
        ExitSignals.propagate([.init(target: pid, from: from, reason: reason, isLink: false)])
    }

    /// Sends `message` to `pid` after `delay` (`erlang:send_after/3`). The timer runs on the
    /// scheduler, with no thread or task of its own.
    ///
    /// ```swift
    /// let timer = Process.sendAfter("tick", to: pid, after: .seconds(1))
    /// let left = timer.cancel()     // time left, or nil if it already fired
    /// ```
    @discardableResult
    public static func sendAfter(_ message: any Sendable, to pid: Pid, after delay: Duration) -> TimerRef {
        TimerRef(timer: Scheduler.shared.timers.schedule(after: delay) { pid.deliver(message) })
    }

    /// Runs `body` on a scheduler thread after `delay` (`timer:apply_after/4`). Keep it
    /// short: it runs on the scheduler, like a callback process's handler.
    ///
    /// ```swift
    /// Process.applyAfter(.seconds(1)) { print("a second later") }
    /// ```
    @discardableResult
    public static func applyAfter(_ delay: Duration, _ body: @escaping @Sendable () -> Void) -> TimerRef {
        TimerRef(timer: Scheduler.shared.timers.schedule(after: delay, body))
    }

    // MARK: Registry

    // The registry and the process list are those of ``LocalNode/current``: the node of the
    // process the calling code runs in, or the default node outside any process.

    /// Registers `pid` under `name` (Erlang's `register/2`) on its node.
    /// - Throws: ``ProcessError/nameTaken(_:by:)``, ``ProcessError/alreadyRegistered(_:as:)``,
    ///   or ``ProcessError/noproc(_:)`` for a dead process.
    public static func register(_ name: String, _ pid: Pid) throws(ProcessError) {
        guard let p = pid.process else { throw .notLocal(pid) }
        try p.home.registry.register(name, pid)
    }

    /// Removes a registered name (`unregister/1`).
    /// - Throws: ``ProcessError/notRegistered(_:)`` if nobody has it.
    public static func unregister(_ name: String) throws(ProcessError) {
        try LocalNode.current.registry.unregister(name)
    }

    /// The pid registered under `name`, or `nil` (`whereis/1`).
    public static func whereis(_ name: String) -> Pid? { LocalNode.current.registry.whereis(name) }

    /// All registered names, sorted (`registered/0`).
    public static func registered() -> [String] { LocalNode.current.registry.registered() }

    // MARK: Introspection

    /// Every live process of the node (`Process.list/0`).
    public static func list() -> [Pid] { LocalNode.current.list() }

    /// How many processes of the node are alive.
    public static var count: Int { LocalNode.current.processCount }

    /// Whether `pid` is alive (`Process.alive?/1`).
    public static func isAlive(_ pid: Pid) -> Bool { pid.isAlive }
}

extension Pid {
    init(outsidePlaceholder: ()) {
        self.init(node: nil, deadId: 0, serial: 0)
    }
}

/// A timer from ``Process/sendAfter(_:to:after:)``: Erlang's `TRef`.
public struct TimerRef: Sendable {
    let timer: ScheduledTimer

    /// Cancels the timer. Returns the time that was left, or `nil` if it already fired or was
    /// cancelled (`erlang:cancel_timer/1` returning `false`).
    @discardableResult
    public func cancel() -> Duration? {
        let left = timer.remaining
        return timer.cancel() ? (left ?? .zero) : nil
    }

    /// Time left before it fires, or `nil` if it fired or was cancelled (`erlang:read_timer/1`).
    public var remaining: Duration? { timer.remaining }
}
