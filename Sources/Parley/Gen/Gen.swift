import Instrumentation
import ParleyRuntime
import Synchronization

/// The generic call protocol, as OTP's `gen` module implements it once for gen_server,
/// gen_statem and supervisor: a call is a message carrying the caller's `from`, a reply is
/// a message sent to the caller's alias, and the caller waits for the reply, for the
/// server's death, or for a timeout.
///
/// The messages have gen_server's wire shapes, so that distribution can map them to and
/// from Erlang terms one for one:
///
/// | Parley | Erlang |
/// |---|---|
/// | ``CallMessage`` | `{'$gen_call', {From, Tag}, Request}` with `Tag = [alias \| Ref]` |
/// | ``CastMessage`` | `{'$gen_cast', Request}` |
/// | ``ReplyMessage`` | `{Tag, Reply}`, sent to the alias in `Tag` |
///
/// ```swift
/// // A server written by hand (GenServer in ParleyOTP does this for you):
/// let server = try Process.spawn(state: 0) { count, message, me in
///     if let call = message as? Gen.CallMessage, let n = call.request as? Int {
///         count += n
///         Gen.reply(call.from, count)
///     }
///     return .continue
/// }
/// let total = try await Gen.call(server, 5) as? Int    // 5
/// ```
public enum Gen {
    /// Who made a call: the caller's pid and the call's tag, an alias of the caller
    /// (OTP's `from()`, `{Pid, [alias | Ref]}`). Pass it to ``reply(_:_:)``.
    public struct From: Sendable, Hashable, CustomStringConvertible {
        /// The calling process (for a caller outside any process, a stand-in that exists
        /// for the duration of the call).
        public let pid: Pid
        /// The call's tag: an alias of the caller, active only while it waits.
        public let tag: Reference

        /// Whether the caller sent its tag as `[alias | Ref]` (every `gen:call` since OTP 24
        /// does) rather than a plain reference: a reply across nodes goes back in the same shape.
        public let aliasTag: Bool

        public init(pid: Pid, tag: Reference, aliasTag: Bool = true) {
            self.pid = pid
            self.tag = tag
            self.aliasTag = aliasTag
        }

        public var description: String { "{\(pid), [alias | \(tag)]}" }
    }

    /// `{'$gen_call', From, Request}`.
    ///
    /// A class, so that a call sends it without boxing: a caller keeps the last one it sent
    /// and reuses it when nothing else holds it any more (``reusing(_:from:request:)``), so a
    /// call in steady state allocates nothing. Its fields cannot be changed from outside.
    public final class CallMessage: @unchecked Sendable, CustomStringConvertible {
        /// `{'$gen_call', {Pid, Tag}, Request}`, as a trace or a mailbox listing shows it.
        public var description: String { "{'$gen_call', \(from), \(request)}" }
        // @unchecked Sendable: the fields change only in `reusing`, while the caller holds the
        // only reference (isKnownUniquelyReferenced reads the count with acquire order, and
        // the last other holder released it with release order, so its reads came first).
        // Unchecked exclusivity: written only in `reusing` and `settle`, by the one holder.
        @exclusivity(unchecked) public private(set) var from: From
        @exclusivity(unchecked) public private(set) var request: any Sendable
        /// The caller's trace context (swift-distributed-tracing's `ServiceContext`), when
        /// calls carry one (``Gen/propagatesContext``): a GenServer handles the call in a
        /// span whose parent it is. Across nodes it travels in Erlang's trace-token slot.
        @exclusivity(unchecked) public private(set) var context: ServiceContext?
        public init(from: From, request: any Sendable, context: ServiceContext? = nil) {
            self.from = from
            self.request = request
            self.context = context
        }

        /// The message for a call by `caller`: its spare one, refilled, if nothing else
        /// holds it (the server dropped it after handling the last call), else a new one
        /// that becomes the spare.
        static func reusing(_ caller: SequentialProcess, from: From, request: any Sendable, context: ServiceContext?) -> CallMessage {
            if caller.spareCall != nil, isKnownUniquelyReferenced(&caller.spareCall!) {
                let m = caller.spareCall!
                m.from = from
                m.request = request
                m.context = context
                return m
            }
            let m = CallMessage(from: from, request: request, context: context)
            caller.spareCall = m
            return m
        }

        /// At the end of a call by `caller`: the spare does not keep the request (which may
        /// hold anything) alive. Emptied if nothing else holds it, else given up to its last
        /// holder. (Its `from` names the caller, a cycle through the process that the
        /// process's exit breaks: ``SequentialProcess`` drops its spare when its body ends.)
        static func settle(_ caller: SequentialProcess) {
            guard caller.spareCall != nil else { return }
            if isKnownUniquelyReferenced(&caller.spareCall!) {
                caller.spareCall!.request = ()
                caller.spareCall!.context = nil
            } else {
                caller.spareCall = nil
            }
        }
    }

    /// `{'$gen_cast', Request}`.
    public struct CastMessage: Sendable {
        public let request: any Sendable
        public init(request: any Sendable) { self.request = request }
    }

    /// `{Tag, Reply}`.
    public struct ReplyMessage: Sendable, CustomStringConvertible {
        /// `{#Ref<…>, Reply}`, as a trace or a mailbox listing shows it.
        public var description: String { "{\(tag), \(reply)}" }
        public let tag: Reference
        public let reply: any Sendable
        /// Whether the tag goes on the wire as `[alias | Ref]` (the caller's own form).
        public let aliasTag: Bool
        public init(tag: Reference, reply: any Sendable, aliasTag: Bool = false) {
            self.tag = tag
            self.reply = reply
            self.aliasTag = aliasTag
        }
    }

    /// `{system, From, Request}`: the `sys` protocol every OTP behaviour answers.
    public struct SystemMessage: Sendable {
        public let from: From
        public let request: SystemRequest
        public init(from: From, request: SystemRequest) {
            self.from = from
            self.request = request
        }
    }

    /// The `sys` requests Parley's behaviours answer.
    public enum SystemRequest: Sendable {
        /// `{terminate, Reason}`: run `terminate` and exit with the reason (`sys:terminate/2`,
        /// which `gen_server:stop/3` uses).
        case terminate(ExitReason)
        /// `get_state` (`sys:get_state/1`): reply with the behaviour's state.
        case getState
        /// `get_status` (`sys:get_status/1`): reply with a `String` describing the state,
        /// rendered by the process itself (so nothing outside it reads its state), for
        /// introspection such as the observer's process page.
        case getStatus
    }

    /// Why a call gave no reply: the ways OTP's `gen:call` exits its caller, as a value.
    public enum CallError: Error, Sendable, CustomStringConvertible {
        /// No reply within the timeout (`{timeout, {gen_server, call, ...}}`). A reply that
        /// arrives later is dropped: it never reaches the caller's mailbox.
        case timeout(Duration)
        /// The server was not alive when called (`noproc`), or no process has the name.
        case noproc(String)
        /// The server exited during the call, with this reason (a crash in its handler, a
        /// stop without a reply, a kill).
        case exited(ExitReason)
        /// The server is on a node this node is not connected to (`noconnection`).
        case noconnection(Pid)
        /// A process called itself (`calling_self`): it could never reply.
        case callingSelf
        /// The calling process was itself killed or ended by an exit signal while it waited.
        case callerExited(ExitReason)
        /// The calling Swift task (outside any process) was cancelled while it waited.
        case cancelled
        /// The server rejected the request (a request of a type it does not handle).
        case badRequest(String)
        /// The reply was not of the type the typed API expected.
        case badReply(String)

        public var description: String {
            switch self {
            case .timeout(let d): return "call timed out after \(d)"
            case .noproc(let s): return "noproc: no process \(s)"
            case .exited(let r): return "server exited during the call: \(r)"
            case .noconnection(let p): return "noconnection: \(p)"
            case .callingSelf: return "calling_self: a process cannot call itself"
            case .callerExited(let r): return "the caller exited while it waited: \(r)"
            case .cancelled: return "the calling task was cancelled"
            case .badRequest(let s): return "bad request: \(s)"
            case .badReply(let s): return "bad reply: \(s)"
            }
        }
    }

    /// The reply a server sends when it cannot handle a request's type; ``call(_:_:timeout:)``
    /// turns it into ``CallError/badRequest(_:)``.
    public struct Rejected: Sendable, CustomStringConvertible {
        public let reason: String
        public init(reason: String) { self.reason = reason }
        public var description: String { "rejected: \(reason)" }
    }

    /// The default call timeout: 5000 ms, as OTP's.
    public static let defaultTimeout: Duration = .milliseconds(5000)

    // MARK: Cast and reply

    /// Casts to the process registered as `name` on `node` (`gen_server:cast({Name, Node}, Request)`):
    /// never fails, dropped if nobody has the name.
    ///
    /// ```swift
    /// Gen.cast("counter", on: Node.named("erl@127.0.0.1"), Term.atom("reset"))
    /// ```
    public static func cast(_ name: String, on node: Node, _ request: any Sendable) {
        Process.send(CastMessage(request: request), to: name, on: node)
    }

    /// Sends `{'$gen_cast', Request}` to `server`. Never fails and never blocks, as
    /// `gen_server:cast/2`: a cast to a dead server is dropped.
    public static func cast(_ server: Pid, _ request: any Sendable) {
        server.deliver(CastMessage(request: request))
    }

    /// Sends `reply` to the caller of a call (`gen_server:reply/2`). From the server or from
    /// any other process, now or later; dropped if the caller gave up (timed out or died).
    public static func reply(_ from: From, _ reply: any Sendable) {
        if let t = ProcessCore.running()?.traceSession(.send) {
            t.record(.send, other: from.pid, detail: String(describing: ReplyMessage(tag: from.tag, reply: reply)))
        }
        // A local caller takes the reply in its reply slot: no message box, no mailbox scan.
        if let owner = from.tag.owner, owner.acceptReply(from.tag.id, reply) { return }
        if from.tag.owner == nil {
            switch Route(from.pid, from: .current) {
            case .remote(let router):
                // A caller on another node: `{Tag, Reply}` to its pid, as gen:reply does.
                router.send(ReplyMessage(tag: from.tag, reply: reply, aliasTag: from.aliasTag), to: from.pid, from: nil)
                return
            case .unreachable:
                return
            case .local:
                // A caller of this node whose tag came back from the wire: the call went
                // through another node (a server there forwarded it here), so the tag has no
                // owner in memory. The caller's pid owns the alias, as in Erlang.
                if let p = from.pid.process {
                    if p.acceptReply(from.tag.id, reply) { return }
                    if Remote.isActiveAlias(from.tag, of: from.pid) { p.deliver(ReplyMessage(tag: from.tag, reply: reply)) }
                }
                return
            }
        }
        from.tag.send(ReplyMessage(tag: from.tag, reply: reply))
    }

    // MARK: Call

    /// Calls `server` with `request` and waits for its reply (`gen:call/4`).
    ///
    /// Works from a sequential process (the reply comes through its mailbox, by selective
    /// receive, as in OTP) and from any Swift task outside a process (a stand-in mailbox
    /// lives for the call; cancelling the task ends the call with ``CallError/cancelled``).
    ///
    /// A call to a local server sends the request and parks the caller; the server runs on
    /// a scheduler thread (the caller's, next, when it was idle), and its reply goes
    /// straight to the caller's reply slot, with no mailbox scan. The timeout holds whatever
    /// the server does: a server still busy with the request at the deadline makes the call
    /// end with ``CallError/timeout(_:)`` then, and its late reply is dropped.
    ///
    /// - Parameter timeout: `nil` waits forever (`infinity`).
    /// - Throws: ``CallError``. A reply that arrives after the timeout is dropped.
    public static func call(_ server: Pid, _ request: any Sendable, timeout: Duration? = defaultTimeout) async throws(CallError) -> any Sendable {
        let context = carriedContext
        // The common case first, with no frame in between: a process calls a live process
        // of this OS process.
        if let me = SequentialProcess.currentOwned(), let p = server.process, p !== me, me.isAlive {
            defer { CallMessage.settle(me) }
            return try await localCall(p, tag: Reference.makeAlias(owner: me), timeout: timeout, caller: me) {
                CallMessage.reusing($1, from: $0, request: request, context: context)
            }
        }
        return try await call(.pid(server), timeout: timeout) { CallMessage.reusing($1, from: $0, request: request, context: context) }
    }

    /// Calls `server` as ``call(_:_:timeout:)`` does, with `context` as the call's trace
    /// context instead of the task's (`ServiceContext.current`), whether or not
    /// ``propagatesContext`` is on: for a caller that made a span of its own for the call
    /// (`ServerRef.call` in ParleyOTP does).
    ///
    /// ```swift
    /// let span = InstrumentationSystem.tracer.startSpan("fetch", ofKind: .client)
    /// defer { span.end() }
    /// let value = try await Gen.call(server, request, context: span.context)
    /// ```
    public static func call(_ server: Pid, _ request: any Sendable, timeout: Duration? = defaultTimeout, context: ServiceContext?) async throws(CallError) -> any Sendable {
        try await call(.pid(server), timeout: timeout) { CallMessage.reusing($1, from: $0, request: request, context: context) }
    }

    /// Whether calls carry the caller's trace context (`ServiceContext.current`, from
    /// swift-distributed-tracing) to the server. Off by default. When on:
    ///
    /// - ``call(_:_:timeout:)`` puts the context in the ``CallMessage``;
    /// - ParleyOTP's `ServerRef.call` makes a client span for each call, and a GenServer
    ///   handles a call that carries a context in a server span, child of the caller's, so a
    ///   chain of calls shows up as one trace in whatever tracer is bootstrapped
    ///   (`InstrumentationSystem.bootstrap`, an OpenTelemetry exporter for instance);
    /// - across nodes, the context goes in Erlang's sequential-trace token (the `_TT` control
    ///   messages): its label is a map of the instrument's headers (W3C's `traceparent` for an
    ///   OpenTelemetry tracer). An Erlang `handle_call` reads it with
    ///   `seq_trace:get_token(label)`, and an Erlang caller that sets such a label
    ///   (`seq_trace:set_token(label, #{<<"traceparent">> => ...})`) becomes the parent of the
    ///   Parley server's span. The reply to a call that came with a token goes back with it,
    ///   as a BEAM server's does (this part does not need the switch).
    ///
    /// While off, a call pays one relaxed load for it.
    ///
    /// ```swift
    /// InstrumentationSystem.bootstrap(myTracer)
    /// Gen.propagatesContext = true
    /// try await withSpan("checkout") { _ in
    ///     try await cart.call(.total)      // "GenServer.call Cart" → "GenServer.handleCall Cart"
    /// }
    /// ```
    public static var propagatesContext: Bool {
        get { propagating.load(ordering: .relaxed) }
        set { propagating.store(newValue, ordering: .relaxed) }
    }
    // Relaxed: a switch read on its own; a call that sees the old value only carries (or
    // not) one context, and publishes nothing else through it.
    private static let propagating = Atomic<Bool>(false)

    /// The context a call made here carries: the task's, while ``propagatesContext`` is on.
    static var carriedContext: ServiceContext? { propagatesContext ? ServiceContext.current : nil }

    /// Sends a `sys` request (`{system, From, Request}`) and waits for the reply, as
    /// ``call(_:_:timeout:)`` does. `.terminate` gives no reply: it ends with
    /// ``CallError/exited(_:)`` carrying the reason once the process has exited.
    public static func systemCall(_ process: Pid, _ request: SystemRequest, timeout: Duration? = defaultTimeout) async throws(CallError) -> any Sendable {
        try await call(.pid(process), timeout: timeout) { from, _ in SystemMessage(from: from, request: request) }
    }

    /// Calls the process registered as `name` on `node` (`gen_server:call({Name, Node}, Request)`).
    ///
    /// ```swift
    /// let value = try await Gen.call("counter", on: Node.named("erl@127.0.0.1"), Term.atom("get"))
    /// ```
    /// - Throws: ``CallError``: `noproc` if nobody has the name there, `noconnection` if the
    ///   node cannot be reached, `timeout`, or `exited` if the server died during the call.
    public static func call(_ name: String, on node: Node, _ request: any Sendable, timeout: Duration? = defaultTimeout) async throws(CallError) -> any Sendable {
        let context = carriedContext
        return try await call(.name(name, node), timeout: timeout) { from, _ in CallMessage(from: from, request: request, context: context) }
    }

    /// Where a call goes, as the caller names it.
    enum Destination {
        case pid(Pid)
        case name(String, Node)
    }

    /// Where a call goes, resolved once (gen.erl's `do_for_proc`).
    enum Target {
        case local(ProcessCore)
        case remotePid(Pid, any RemoteRouter)
        case remoteName(String, Node, any RemoteRouter)
    }

    /// Where a call goes, from `caller`'s node (or the current one, for a call from outside
    /// any process).
    static func resolve(_ dest: Destination, caller: ProcessCore?) throws(CallError) -> Target {
        switch dest {
        case .pid(let pid):
            switch Route(pid, sender: caller) {
            case .local(let p?): return .local(p)
            case .local(nil): throw .noproc("\(pid)")
            case .remote(let router): return .remotePid(pid, router)
            case .unreachable: throw .noconnection(pid)
            }
        case .name(let name, let node):
            let home = caller?.home ?? .current
            switch Route(node, from: home) {
            case .local:
                guard let p = home.whereis(name)?.process else { throw .noproc(name) }
                return .local(p)
            case .remote(let router): return .remoteName(name, node, router)
            case .unreachable: throw .noproc("\(name) on \(node) (not distributed)")
            }
        }
    }

    /// `message` makes the call's message from its `From` and the calling process.
    static func call(_ dest: Destination, timeout: Duration?, message: (From, SequentialProcess) -> any Sendable) async throws(CallError) -> any Sendable {
        if let me = SequentialProcess.currentOwned() {
            defer { CallMessage.settle(me) }
            return try await call(try resolve(dest, caller: me), timeout: timeout, caller: me, message: message)
        }
        let home = LocalNode.current
        let target = try resolve(dest, caller: nil)
        // Outside any process: a stand-in mailbox, never scheduled, that exists for the call
        // only (in the process table only if the reply must find it from another node).
        let standIn = SequentialProcess(limit: nil, hosted: home.pidNode == nil ? nil : home)
        defer {
            standIn.spareCall = nil
            standIn.dropQueuedTimer()
            ExitSignals.exit(standIn, reason: .normal)
        }
        let result: Result<any Sendable, CallError> = await withTaskCancellationHandler {
            do throws(CallError) {
                return .success(try await call(target, timeout: timeout, caller: standIn, message: message))
            } catch {
                if case .callerExited = error { return .failure(.cancelled) }
                return .failure(error)
            }
        } onCancel: {
            ExitSignals.propagate(standIn.die(.shutdown, external: true))
        }
        return try result.get()
    }

    /// What a local call's reply slot gets when the server dies before it replies: the DOWN
    /// of the call's monitor (whose reference is the call's alias).
    struct CallDown: Sendable {
        let reason: ExitReason
    }

    /// gen.erl's `do_call`: alias, monitor, send, receive the reply or the monitor's DOWN,
    /// or time out. A local call's reply and DOWN come to the caller's reply slot
    /// (``localCall(_:tag:timeout:caller:message:)``); a remote one's through the mailbox.
    static func call(_ target: Target, timeout: Duration?, caller: SequentialProcess, message make: (From, SequentialProcess) -> any Sendable) async throws(CallError) -> any Sendable {
        if case .local(let p) = target, p === caller { throw .callingSelf }
        guard caller.isAlive else { throw .callerExited(caller.finalReason()) }
        let tag = Reference.makeAlias(owner: caller)
        let mref: Reference
        switch target {
        case .local(let server):
            return try await localCall(server, tag: tag, timeout: timeout, caller: caller, message: make)
        case .remotePid(let server, let router):
            // A stand-in caller is not in the process table; the reply names its pid on the
            // wire, so it must be findable there until it exits.
            caller.withTable { $0.insert(caller) }
            caller.beginCall(tag.id, local: false)
            mref = monitorServer(server, caller)
            // A plain reference as the tag: an Erlang gen_server then answers with a plain send.
            router.send(make(From(pid: caller.pid, tag: tag, aliasTag: false), caller), to: server, from: caller.pid)
        case .remoteName(let name, let node, let router):
            caller.withTable { $0.insert(caller) }
            caller.beginCall(tag.id, local: false)
            let ref = Reference.make()
            Process(core: caller).monitor(name, on: node, ref: ref, standIn: true)
            mref = ref
            router.send(make(From(pid: caller.pid, tag: tag, aliasTag: false), caller), toName: name, on: node, from: caller.pid)
        }
        // Messages already saved arrived before the alias existed: none can be the reply,
        // so the scans start after them (the BEAM's receive-marker optimisation).
        let start = caller.saved.count
        let deadline = timeout.map { MonotonicClock.deadline(after: $0) }
        return try await awaitReply(target, tag: tag, monitor: mref, caller: caller, start: start, deadline: deadline, timeout: timeout)
    }

    /// A call to a process of this OS process: monitor (with the alias as the monitor's
    /// reference, so that the server's DOWN comes to the reply slot), send, park on the
    /// slot until the reply, the DOWN or the timer. No mailbox scan: other messages wait in
    /// the mailbox, and do not wake the caller.
    private static func localCall(_ server: ProcessCore, tag: Reference, timeout: Duration?, caller: SequentialProcess, message make: (From, SequentialProcess) -> any Sendable) async throws(CallError) -> any Sendable {
        // The alias, the reply slot and the timer in one step; then the monitor and the
        // request in one step (a server found dead takes neither: `noproc`).
        let generation = caller.beginLocalCall(tag.id, deadline: timeout.map { MonotonicClock.deadline(after: $0) })
        guard server.deliver(make(From(pid: caller.pid, tag: tag), caller), monitoredBy: caller.pid, ref: tag) else {
            caller.disarmTimeout(generation)
            _ = caller.endCall(tag.id)
            throw .noproc("\(server.pid)")
        }
        let ended: (any Sendable)?
        do {
            ended = try await caller.awaitCall(tag.id, generation: generation)
        } catch {
            caller.disarmTimeout(generation)
            _ = caller.endCall(tag.id)
            server.removeMonitor(tag)
            throw .callerExited(caller.finalReason())
        }
        caller.disarmTimeout(generation)
        server.removeMonitor(tag)
        // On a timeout, deactivate the alias; a reply that beat the deactivation is still
        // taken (gen:call does the same), and nothing can arrive after it.
        guard let outcome = ended ?? caller.endCall(tag.id) else { throw .timeout(timeout!) }
        if let down = exactMessage(outcome, as: CallDown.self) { throw .exited(down.reason) }
        return try unwrap(outcome)
    }

    private static func monitorServer(_ server: Pid, _ caller: SequentialProcess) -> Reference {
        let ref = Reference.make()
        Process.establishMonitor(ref, watcher: caller, target: server)
        return ref
    }

    /// The receive of a remote call's `do_call`: the reply, the monitor's DOWN, or the
    /// deadline.
    static func awaitReply(_ target: Target, tag: Reference, monitor mref: Reference, caller: SequentialProcess, start: Int, deadline: UInt64?, timeout: Duration?) async throws(CallError) -> any Sendable {
        enum Outcome { case reply(any Sendable), down(ExitReason) }
        while true {
            var outcome: Outcome? = nil
            let received: SequentialProcess.Received
            do {
                received = try await caller.receive(deadline: deadline, from: start, also: .none) { m in
                    // A metadata comparison first: a failing `as?` cast is slow.
                    if let r = exactMessage(m, as: ReplyMessage.self), r.tag == tag {
                        outcome = .reply(r.reply)
                        return true
                    }
                    if let d = m as? DownMessage, d.ref == mref { outcome = .down(d.reason); return true }
                    return false
                }
            } catch {
                _ = caller.endCall(tag.id)
                forgetMonitor(mref, caller: caller)
                throw .callerExited(caller.finalReason())
            }
            switch received {
            case .matched:
                _ = caller.endCall(tag.id)
                switch outcome! {
                case .reply(let r):
                    forgetMonitor(mref, caller: caller)
                    return try unwrap(r)
                case .down(let reason):
                    if case .noconnection = reason, case .remotePid(let server, _) = target { throw .noconnection(server) }
                    throw .exited(reason)
                }
            case .woken:
                continue   // no extra wake source: not reached
            case .timedOut:
                // Deactivate the alias first, so nothing more can arrive; then a reply that
                // beat the deactivation is still taken (gen:call does the same).
                _ = caller.endCall(tag.id)
                forgetMonitor(mref, caller: caller)
                var cursor = start
                var late: (any Sendable)? = nil
                if caller.take(from: &cursor, { m in
                    guard let r = m as? ReplyMessage, r.tag == tag else { return false }
                    late = r.reply
                    return true
                }) == .taken, let late {
                    return try unwrap(late)
                }
                throw .timeout(timeout!)
            }
        }
    }

    private static func unwrap(_ reply: any Sendable) throws(CallError) -> any Sendable {
        // A metadata comparison: a failing `as?` cast is slow, and this runs on every call.
        if let rejected = exactMessage(reply, as: Rejected.self) { throw .badRequest(rejected.reason) }
        return reply
    }

    private static func forgetMonitor(_ ref: Reference, caller: SequentialProcess) {
        let target = caller.forgetMonitoring(ref)
        target?.process?.removeMonitor(ref)
        _ = caller.flush { ($0 as? DownMessage)?.ref == ref }
    }
}
