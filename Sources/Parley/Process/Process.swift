import ParleyRuntime

/// A sequential process's view of itself, and (as static members) Elixir's `Process` and
/// `Kernel` functions for processes.
///
/// A sequential process gets a `Process` as its body's argument. Besides what every process
/// can do (``ProcessContext``: send, spawn, link, monitor, register, timers) it can wait:
/// `receive`, `select`, `sleep`. A callback process's handler gets a ``CallbackProcess``
/// instead, which cannot wait. It is not `Sendable`: it cannot leave its process, so
/// `receive` is only ever called by the process that owns the mailbox.
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
/// Or put `typealias Process = Parley.Process` in one file of your module, so that `Process`
/// means Parley's in every file of it and Foundation's is `Foundation.Process`.
public struct Process: ProcessContext {
    public let _process: ProcessHandle

    /// Only a sequential process has a `Process`: that is what makes ``sequential`` safe.
    init(core: SequentialProcess) { _process = ProcessHandle(core: core) }

    /// This process, lent to a function it awaits that takes a `Process` across an isolation
    /// boundary (a user's `@concurrent` start function, which a supervisor calls with its own
    /// process). The callee runs in this process's task while the caller waits for it, so the
    /// two handles are never used at once.
    package func lent() -> sending Process {
        // nonisolated(unsafe): the borrower runs only while this process awaits it (above).
        nonisolated(unsafe) let copy = Process(core: sequential)
        return copy
    }

    /// The two shapes of process.
    public enum Kind: String, Sendable {
        /// An async body that calls `receive`; a Swift task while alive.
        case sequential
        /// A handler called once per message; no Swift task while idle.
        case callback
    }

    // MARK: Sending with back-pressure

    /// Sends `message` to `pid` as ``send(_:to:)-(_,Pid)`` does, after waiting, suspended,
    /// while the connection to `pid`'s node is busy (more than
    /// `Distribution.Configuration.bufferBusyLimit` queued for it), as the BEAM suspends a
    /// process that sends to a busy distribution port. Use it for long bursts to another
    /// node: the plain `send` holds a scheduler thread while the connection is busy, and
    /// queues past the limit from a connection's I/O thread (where a process woken by a
    /// message from another node runs), which stops that connection's writing until the
    /// burst ends; this one gives the thread back instead, so the connection keeps writing
    /// and what waits in memory stays near the limit. A process that waited here resumes
    /// where the drain is seen: on the connection's I/O thread (as a process woken by a read
    /// does, `Distribution.Configuration.runWokenOnIOThread`), else on a scheduler thread.
    /// To a pid of this node, or to a node that is not busy, it sends at once; if the
    /// connection closes meanwhile, the message is dropped, as any message to a node we are
    /// not connected to. A process killed while it waits ends its wait at once, as
    /// `exit(Pid, kill)` ends a process the BEAM suspended on a busy port: its message and
    /// any later ones are dropped. Each sender's order is kept across both kinds of send.
    ///
    /// ```swift
    /// for row in rows {
    ///     await me.sendSuspending(Term.binary(row), to: remoteSink)
    /// }
    /// ```
    public func sendSuspending(_ message: any Sendable, to pid: Pid) async {
        guard case .remote(let router) = Route(pid, from: core.home) else { return send(message, to: pid) }
        guard core.isAlive else { return }
        if let t = core.traceSession(.send) { t.record(.send, other: pid, detail: String(describing: message)) }
        await router.sendSuspending(message, to: pid, from: core.pid)
    }

    // MARK: Receiving

    @usableFromInline
    var sequential: SequentialProcess {
        // Safe: `init(core:)` takes only a SequentialProcess.
        unsafeDowncast(core, to: SequentialProcess.self)
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
    ///   waits.
    @inlinable
    public func receive<R>(_ match: (any Sendable) throws -> R?) async throws -> R {
        var result: R? = nil
        // The receive marker: messages before it were looked at and did not match.
        var cursor = 0
        let p = sequential
        while true {
            // Scans what the process holds (no lock, no async frame), then waits for more.
            if try p.receiveNow(from: &cursor, { m in
                result = try match(m)
                return result != nil
            }) {
                if p.yieldDue { await p.yieldForReductions() }
                return result!
            }
            _ = try await p.awaitMessages(beyond: cursor)
        }
    }

    /// Like ``receive(_:)`` with an `after` clause: returns `nil` if nothing matched within
    /// `timeout`. `.zero` polls the mailbox without waiting.
    @inlinable
    public func receive<R>(after timeout: Duration, _ match: (any Sendable) throws -> R?) async throws -> R? {
        var result: R? = nil
        var cursor = 0
        let p = sequential
        let deadline = MonotonicClock.deadline(after: timeout)
        var generation: UInt32 = 0
        defer { if generation != 0 { p.disarmTimeout(generation) } }
        while true {
            if try p.receiveNow(from: &cursor, { m in
                result = try match(m)
                return result != nil
            }) {
                if p.yieldDue { await p.yieldForReductions() }
                return result
            }
            if try p.refillNow(beyond: cursor) { continue }
            if deadline <= MonotonicClock.now { return nil }
            if generation == 0 { generation = p.armTimeout(deadline) }
            if try await !p.awaitMessages(beyond: cursor, generation: generation) { return nil }
        }
    }

    /// Waits for the next message, whatever it is.
    @inlinable
    public func receive() async throws -> any Sendable {
        // The first message is moved out of the queue: no match, and no copy of it for one
        // (through a generic match, `receive { $0 }` cost fan-in's consumer half its speed).
        let p = sequential
        while true {
            if let m = try p.receiveFirstNow() {
                if p.yieldDue { await p.yieldForReductions() }
                return m
            }
            _ = try await p.awaitMessages()
        }
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
        let p = sequential
        guard p.isAlive else { throw ProcessExit(p.finalReason()) }
        let deadline = MonotonicClock.deadline(after: duration)
        guard deadline > MonotonicClock.now else { return }
        let generation = p.armTimeout(deadline)
        defer { p.disarmTimeout(generation) }
        // Messages that arrive are moved into the process's own queue and left there.
        while try await p.awaitMessages(beyond: p.saved.count, generation: generation) {}
    }

    /// Gives the scheduler to other processes: for a long loop that does not receive
    /// (Erlang's `erlang:yield/0`).
    public func yield() async {
        await Scheduler.yield()
        Scheduler.noteRunning(core)
    }

    // MARK: Blocking work

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
}

@available(*, unavailable, message: "a Process value belongs to its process; send its pid instead")
extension Process: Sendable {}
