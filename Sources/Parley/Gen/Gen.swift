import ParleyRuntime

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
    public struct CallMessage: Sendable {
        public let from: From
        public let request: any Sendable
        public init(from: From, request: any Sendable) {
            self.from = from
            self.request = request
        }
    }

    /// `{'$gen_cast', Request}`.
    public struct CastMessage: Sendable {
        public let request: any Sendable
        public init(request: any Sendable) { self.request = request }
    }

    /// `{Tag, Reply}`.
    public struct ReplyMessage: Sendable {
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
        // A caller running this server in a hand-off takes the reply directly: no message
        // box, no mailbox round trip.
        if let owner = from.tag.owner, owner.acceptHandoffReply(from.tag.id, reply) { return }
        if from.tag.owner == nil, from.pid.node != nil {
            // A caller on another node: `{Tag, Reply}` to its pid, as gen:reply does.
            Remote.router?.send(ReplyMessage(tag: from.tag, reply: reply, aliasTag: from.aliasTag), to: from.pid, from: nil)
            return
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
    /// When the server is a callback process that is idle, the caller runs it on its own
    /// thread until it has handled the call: a direct hand-off with no thread switch. The
    /// order of the server's messages and everything it observes are the same as if a
    /// scheduler thread had run it.
    ///
    /// - Parameter timeout: `nil` waits forever (`infinity`).
    /// - Throws: ``CallError``. A reply that arrives after the timeout is dropped.
    public static func call(_ server: Pid, _ request: any Sendable, timeout: Duration? = defaultTimeout) async throws(CallError) -> any Sendable {
        try await call(server, timeout: timeout) { CallMessage(from: $0, request: request) }
    }

    /// Sends a `sys` request (`{system, From, Request}`) and waits for the reply, as
    /// ``call(_:_:timeout:)`` does. `.terminate` gives no reply: it ends with
    /// ``CallError/exited(_:)`` carrying the reason once the process has exited.
    public static func systemCall(_ process: Pid, _ request: SystemRequest, timeout: Duration? = defaultTimeout) async throws(CallError) -> any Sendable {
        try await call(process, timeout: timeout) { SystemMessage(from: $0, request: request) }
    }

    static func call(_ server: Pid, timeout: Duration?, message: (From) -> any Sendable) async throws(CallError) -> any Sendable {
        if let me = SequentialProcess.currentOwned() {
            return try await call(server, timeout: timeout, caller: me, message: message)
        }
        // Outside any process: a stand-in mailbox, never scheduled and not in the process
        // table, that exists for the call only.
        let standIn = SequentialProcess(limit: nil)
        defer { ExitSignals.exit(standIn, reason: .normal) }
        let result: Result<any Sendable, CallError> = await withTaskCancellationHandler {
            do throws(CallError) {
                return .success(try await call(server, timeout: timeout, caller: standIn, message: message))
            } catch {
                if case .callerExited = error { return .failure(.cancelled) }
                return .failure(error)
            }
        } onCancel: {
            ExitSignals.propagate(standIn.die(.shutdown, external: true))
        }
        return try result.get()
    }

    static func call(_ server: Pid, timeout: Duration?, caller: SequentialProcess, message make: (From) -> any Sendable) async throws(CallError) -> any Sendable {
        guard let target = server.process else {
            if server.isLocal { throw .noproc("\(server)") }
            guard Remote.router != nil else { throw .noconnection(server) }
            return try await remoteCall(.pid(server), timeout: timeout, caller: caller, message: make)
        }
        if target === caller { throw .callingSelf }
        guard caller.isAlive else { throw .callerExited(caller.finalReason()) }
        let tag = Reference.makeAlias(owner: caller)
        caller.withShared { s in
            s.callAlias = tag.id
            caller.handoffAlias = tag.id
        }
        var aliasActive = true
        defer { if aliasActive { caller.withShared { s in if s.callAlias == tag.id { s.callAlias = 0 } } } }
        // Messages already saved arrived before the alias existed: none can be the reply,
        // so the scans start after them (the BEAM's receive-marker optimisation).
        let start = caller.saved.count
        // The coarse clock (a few ms of resolution, a fraction of the precise clock's cost)
        // is enough to tell whether a hand-off overran a timeout of 100 ms or more.
        let precise = timeout.map { $0 < .milliseconds(100) } ?? false
        let began = timeout == nil ? 0 : (precise ? MonotonicClock.now : MonotonicClock.coarse)
        let message = make(From(pid: caller.pid, tag: tag))

        let claim = target.deliverClaiming(message)
        switch claim {
        case .dead:
            throw .noproc("\(server)")
        case .claimed, .claimedDirect:
            // Hand-off: run the server here until it has handled our call.
            if case .claimed(let ahead) = claim {
                _ = target.runClaimed(first: nil, max: ahead + 1)
            } else {
                _ = target.runClaimed(first: message, max: 1)
            }
            // The reply is in the hand-off slot (Gen.reply) or, sent by hand, in the mailbox.
            var reply = caller.endHandoff(tag.id, deactivate: true)
            if reply != nil { aliasActive = false } else { reply = caller.takeReply(tag, from: start) }
            if let reply {
                if let timeout {
                    let now = precise ? MonotonicClock.now : MonotonicClock.coarse
                    if now &- began > MonotonicClock.nanoseconds(timeout) { throw .timeout(timeout) }
                }
                return try unwrap(reply)
            }
            if !target.isAlive { throw .exited(target.exitReason ?? .noproc) }
            // No reply yet (noreply: it comes later, from elsewhere): the alias stays active.
        case .delivered:
            // Not a hand-off: close the slot (a reply that already came through it is taken).
            if let reply = caller.endHandoff(tag.id, deactivate: true) {
                aliasActive = false
                return try unwrap(reply)
            }
        }

        // The reply is not here yet: monitor the server and wait, as gen:call does.
        let mref = Reference.make()
        Process.establishMonitor(mref, watcher: caller, target: server)
        return try await awaitReply(tag: tag, monitor: mref, target: target, caller: caller, start: start, timeout: timeout)
    }

    enum Destination {
        case pid(Pid)
        case name(String, Node)
    }

    /// A call to a process on another node: monitor it, send `{'$gen_call', From, Request}`
    /// through its node's connection, and wait as for a local call (gen:do_call).
    static func remoteCall(_ dest: Destination, timeout: Duration?, caller: SequentialProcess, message make: (From) -> any Sendable) async throws(CallError) -> any Sendable {
        guard caller.isAlive else { throw .callerExited(caller.finalReason()) }
        guard let router = Remote.router else {
            if case .pid(let p) = dest { throw .noconnection(p) }
            throw .noproc("remote name (not distributed)")
        }
        // A stand-in caller (outside any process) is not in the process table; the reply
        // names its pid on the wire, so it must be findable there until it exits.
        ProcessTable.insert(caller)
        let tag = Reference.makeAlias(owner: caller)
        caller.withShared { s in s.callAlias = tag.id }
        defer { caller.withShared { s in if s.callAlias == tag.id { s.callAlias = 0 } } }
        let start = caller.saved.count
        let mref = Reference.make()
        // A plain reference as the tag: an Erlang gen_server then answers with a plain send.
        let message = make(From(pid: caller.pid, tag: tag, aliasTag: false))
        switch dest {
        case .pid(let server):
            Process.establishMonitor(mref, watcher: caller, target: server)
            router.send(message, to: server, from: caller.pid)
        case .name(let name, let node):
            Process(core: caller).monitor(name, on: node, ref: mref, standIn: true)
            router.send(message, toName: name, on: node, from: caller.pid)
        }
        var server: Pid? = nil
        if case .pid(let p) = dest { server = p }
        return try await awaitReply(tag: tag, monitor: mref, target: nil, server: server, caller: caller, start: start, timeout: timeout)
    }

    /// Calls the process registered as `name` on `node` (`gen_server:call({Name, Node}, Request)`).
    ///
    /// ```swift
    /// let value = try await Gen.call("counter", on: Node.named("erl@127.0.0.1"), Term.atom("get"))
    /// ```
    /// - Throws: ``CallError``: `noproc` if nobody has the name there, `noconnection` if the
    ///   node cannot be reached, `timeout`, or `exited` if the server died during the call.
    public static func call(_ name: String, on node: Node, _ request: any Sendable, timeout: Duration? = defaultTimeout) async throws(CallError) -> any Sendable {
        if node.name == Node.localNodeName {
            guard let pid = Process.whereis(name) else { throw .noproc(name) }
            return try await call(pid, request, timeout: timeout)
        }
        let make: (From) -> any Sendable = { CallMessage(from: $0, request: request) }
        if let me = SequentialProcess.currentOwned() {
            return try await remoteCall(.name(name, node), timeout: timeout, caller: me, message: make)
        }
        let standIn = SequentialProcess(limit: nil)
        defer { ExitSignals.exit(standIn, reason: .normal) }
        do throws(CallError) {
            return try await remoteCall(.name(name, node), timeout: timeout, caller: standIn, message: make)
        } catch {
            if case .callerExited = error { throw .cancelled }
            throw error
        }
    }

    static func awaitReply(tag: Reference, monitor mref: Reference, target: ProcessCore?, server: Pid? = nil, caller: SequentialProcess, start: Int, timeout: Duration?) async throws(CallError) -> any Sendable {
        let deadline = timeout.map { MonotonicClock.deadline(after: $0) }
        enum Outcome { case reply(any Sendable), down(ExitReason) }
        var outcome: Outcome? = nil
        do {
            _ = try await caller.receive(deadline: deadline, from: start) { m in
                if let r = m as? ReplyMessage, r.tag == tag { outcome = .reply(r.reply); return true }
                if let d = m as? DownMessage, d.ref == mref { outcome = .down(d.reason); return true }
                return false
            }
        } catch {
            forgetMonitor(mref, caller: caller)
            throw .callerExited(caller.finalReason())
        }
        switch outcome {
        case .reply(let r)?:
            forgetMonitor(mref, caller: caller)
            return try unwrap(r)
        case .down(let reason)?:
            if case .noproc = reason, let known = target?.exitReason { throw .exited(known) }
            if case .noconnection = reason, let server { throw .noconnection(server) }
            throw .exited(reason)
        case nil:
            // Timed out: deactivate the alias first, so nothing more can arrive; then a reply
            // that beat the deactivation is still taken (gen:call does the same).
            caller.withShared { s in if s.callAlias == tag.id { s.callAlias = 0 } }
            forgetMonitor(mref, caller: caller)
            if let r = caller.takeReply(tag, from: start) { return try unwrap(r) }
            throw .timeout(timeout!)
        }
    }

    private static func unwrap(_ reply: any Sendable) throws(CallError) -> any Sendable {
        // A metadata comparison: a failing `as?` cast is slow, and this runs on every call.
        if ObjectIdentifier(type(of: reply)) == ObjectIdentifier(Rejected.self), let rejected = reply as? Rejected {
            throw .badRequest(rejected.reason)
        }
        return reply
    }

    private static func forgetMonitor(_ ref: Reference, caller: SequentialProcess) {
        let target = caller.forgetMonitoring(ref)
        target?.process?.removeMonitor(ref)
        _ = caller.removeFirst { ($0 as? DownMessage)?.ref == ref }
    }
}

extension SequentialProcess {
    /// Owner only: takes the reply tagged `tag` if it has arrived, without waiting.
    func takeReply(_ tag: Reference, from start: Int) -> (any Sendable)? {
        _ = withShared { s in refill(&s) }
        var i = min(start, saved.count)
        while i < saved.count {
            if ObjectIdentifier(type(of: saved[i])) == ObjectIdentifier(Gen.ReplyMessage.self), let r = saved[i] as? Gen.ReplyMessage, r.tag == tag {
                saved.remove(at: i)
                savedCount.store(saved.count, ordering: .relaxed)
                return r.reply
            }
            i += 1
        }
        return nil
    }
}
