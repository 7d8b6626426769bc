import Logging
import Parley

/// A gen_server whose callbacks may `await`: it runs as a sequential process, so a callback
/// can call another server, wait for a reply, sleep or receive, and the server takes its
/// next message when the callback returns. It speaks exactly ``GenServer``'s protocol (the
/// same messages, results, `sys` requests, parent-exit and stop-then-reply rules, in
/// `GenServerProtocol`), so ``ServerRef``, ``Gen``, supervisors and Erlang nodes call it
/// the same way. Supervisor and DynamicSupervisor are built on it.
///
/// Prefer ``GenServer`` when the callbacks need not wait: an idle callback process holds no
/// Swift task, and a call to it runs without a task switch on the server's side. Choose this form when
/// a callback must wait for something before it can answer, instead of returning `.noreply`
/// and replying from another process.
///
/// ```swift
/// struct Cache: AsyncGenServer {
///     var values: [String: Int] = [:]
///     let backend: ServerRef<Backend>
///     typealias Call = String
///     typealias Reply = Int
///
///     mutating func handleCall(_ key: String, from: Gen.From, _ me: Process) async throws -> CallResult {
///         if let v = values[key] { return .reply(v) }
///         let v = try await backend.call(key)        // the cache waits; its mailbox queues meanwhile
///         values[key] = v
///         return .reply(v)
///     }
/// }
///
/// let cache = try await Cache(backend: backend).start()
/// let n = try await cache.call("answer")
/// ```
///
/// The callbacks run on their caller's executor (`nonisolated(nonsending)`). In a module
/// with Swift 6's default settings, a helper a callback passes its `me` to must say so too:
/// `nonisolated(nonsending) func lookUp(_ me: Process) async throws -> Int`.
public protocol AsyncGenServer: GenServerMessages {
    /// Runs in the new server process before ``AsyncGenServer/start(name:options:)`` returns
    /// (OTP's `init/1`). Default: `.ok`. Throwing (or `.stop`) makes start fail with that reason.
    mutating func initialize(_ me: Process) async throws -> GenServerInitResult<Self>
    /// Handles a call (`handle_call/3`).
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: Process) async throws -> GenServerCallResult<Self>
    /// Handles a cast (`handle_cast/2`).
    mutating func handleCast(_ request: Cast, _ me: Process) async throws -> GenServerResult<Self>
    /// Handles any other message (`handle_info/2`). Default: logs it and carries on.
    mutating func handleInfo(_ message: any Sendable, _ me: Process) async throws -> GenServerResult<Self>
    /// Runs after a callback that returned a continue value, before any other message.
    mutating func handleContinue(_ value: Continue, _ me: Process) async throws -> GenServerResult<Self>
    /// Runs before the server exits (`terminate/2`), as ``GenServer/terminate(_:_:)`` does.
    mutating func terminate(_ reason: ExitReason, _ me: Process) async
}

extension AsyncGenServer {
    public mutating func initialize(_ me: Process) async throws -> InitResult { .ok }
    public mutating func handleInfo(_ message: any Sendable, _ me: Process) async throws -> HandleResult {
        GenServerLog.logger.warning("\(Self.self) \(me.pid) received an unexpected message in handleInfo: \(message)")
        return .noreply
    }
    public mutating func terminate(_ reason: ExitReason, _ me: Process) async {}
}

extension AsyncGenServer where Call == Never {
    public mutating func handleCall(_ request: Never, from: Gen.From, _ me: Process) async throws -> CallResult {}
}

extension AsyncGenServer where Cast == Never {
    public mutating func handleCast(_ request: Never, _ me: Process) async throws -> HandleResult {}
}

extension AsyncGenServer where Continue == Never {
    public mutating func handleContinue(_ value: Never, _ me: Process) async throws -> HandleResult {}
}

// MARK: Starting

extension AsyncGenServer {
    /// Starts the server, not linked to anyone (`GenServer.start/3`). Returns once
    /// ``initialize(_:)`` has run in the new process.
    /// - Throws: ``StartError``: `.alreadyStarted` if the name is taken, `.ignored`, or
    ///   `.failed(reason)` if `initialize` threw or returned `.stop`.
    public consuming func start(name: ServerName? = nil, options: GenServerOptions = GenServerOptions()) async throws(StartError) -> ServerRef<Self> {
        let initial = Transfer(self)
        do {
            return try await Process.run { me in
                try await AsyncGenServerProcess.start(initial, starter: me, link: false, name: name, options: options)
            }
        } catch let e as StartError {
            throw e
        } catch {
            throw .failed(GenServerProtocol<Self>.reason(error))
        }
    }

    /// Starts the server linked to `parent` (`GenServer.start_link/3`). If `initialize`
    /// fails, the new process unlinks from `parent` before it exits, so the parent learns
    /// the outcome from the error alone (OTP 26's `proc_lib`).
    public consuming func startLink(_ parent: Process, name: ServerName? = nil, options: GenServerOptions = GenServerOptions()) async throws(StartError) -> ServerRef<Self> {
        try await AsyncGenServerProcess.start(Transfer(self), starter: parent, link: true, name: name, options: options)
    }
}

extension AsyncGenServer where Self: Sendable {
    /// A child spec that starts a copy of this value, linked to the supervisor, on every
    /// (re)start (Elixir's `child_spec/1`).
    public func childSpec(
        id: String, name: ServerName? = nil, restart: ChildSpec.Restart = .permanent,
        shutdown: ChildSpec.Shutdown = .timeout(.milliseconds(5000)), options: GenServerOptions = GenServerOptions()
    ) -> ChildSpec {
        let template = self
        return ChildSpec(id: id, restart: restart, shutdown: shutdown, type: .worker) { me in
            try await template.startLink(me, name: name, options: options).pid
        }
    }
}

/// The new server's word to its starter once `initialize` has run (proc_lib's `init_ack`).
struct InitAck: Sendable {
    enum Outcome: Sendable {
        case started
        case ignored
        case failed(ExitReason)
        case alreadyStarted(Pid)
    }
    let tag: Reference
    let outcome: Outcome
}

/// The sequential process that runs an AsyncGenServer: the async driver of
/// ``GenServerProtocol``.
struct AsyncGenServerProcess<Server: AsyncGenServer> {
    typealias Rules = GenServerProtocol<Server>
    var server: Server
    let proto: Rules

    /// Spawns the server (monitored by `starter`, linked to it with `link`) and waits for its
    /// ``InitAck``, or for its death during `initialize`.
    static func start(
        _ initial: Transfer<Server>, starter: Process, link: Bool, name: ServerName?, options: GenServerOptions
    ) async throws(StartError) -> ServerRef<Server> {
        let spawn = options.spawnOptions(link: link, name: name)
        let tag = Reference.make()
        let starterPid = starter.pid
        let parent = link ? starterPid : nil
        let pid: Pid
        let ref: Reference
        do throws(ProcessError) {
            (pid, ref) = try starter.spawnMonitor(spawn) { me in
                var process = AsyncGenServerProcess(server: initial.take(), proto: Rules(parent: parent, name: name))
                try await process.run(me, ack: { outcome in me.send(InitAck(tag: tag, outcome: outcome), to: starterPid) })
            }
        } catch {
            if case .nameTaken(_, let owner) = error { throw .alreadyStarted(owner) }
            throw .process(error)
        }
        var outcome: InitAck.Outcome? = nil
        var died: ExitReason? = nil
        do {
            _ = try await starter.receive { m -> Bool? in
                if let ack = m as? InitAck, ack.tag == tag { outcome = ack.outcome; return true }
                if let down = m as? DownMessage, down.ref == ref { died = down.reason; return true }
                return nil
            }
        } catch {
            throw .failed(Rules.reason(error))
        }
        starter.demonitor(ref, flush: true)
        switch outcome {
        case .started?: return ServerRef(pid: pid, name: name)
        case .ignored?: throw .ignored
        case .failed(let reason)?: throw .failed(reason)
        case .alreadyStarted(let owner)?: throw .alreadyStarted(owner)
        case nil: throw .failed(died ?? .noproc)
        }
    }

    /// `initialize`, the ack, then one message at a time until a callback stops the server.
    mutating func run(_ me: Process, ack: (InitAck.Outcome) -> Void) async throws {
        let result: Server.InitResult
        do {
            if case .via(let registry, let key)? = proto.name {
                do throws(RegistryError) { try await registry.registerNameAsync(key, me.pid) } catch {
                    if case .alreadyRegistered(_, let owner) = error { return fail(.alreadyStarted(owner), me, ack) }
                    throw error
                }
            }
            result = try await server.initialize(me)
        } catch {
            let reason = Rules.reason(error)
            fail(.failed(reason), me, ack)
            throw ProcessExit(reason)
        }
        switch result.kind {
        case .ignore:
            return fail(.ignored, me, ack)
        case .stop(let reason):
            fail(.failed(reason), me, ack)
            throw ProcessExit(reason)
        case .ok:
            ack(.started)
        }
        var next = await finish(.proceed(result.next), me)
        while case .continue = next {
            next = await handle(try await me.receive(), me)
        }
        if case .stop(let reason) = next { throw ProcessExit(reason) }
    }

    /// A start that failed: the starter hears why from the ack, not from an exit signal.
    private func fail(_ outcome: InitAck.Outcome, _ me: Process, _ ack: (InitAck.Outcome) -> Void) {
        if let parent = proto.parent { me.unlink(parent) }
        ack(outcome)
    }

    mutating func handle(_ message: any Sendable, _ me: Process) async -> Next {
        let after: Rules.After
        do {
            switch proto.event(for: message, pid: me.pid) {
            case .call(let request, let from, let context):
                let result: GenServerCallResult<Server>
                if let context {
                    result = try await CallSpans.handle(Server.self, request: request, from: from, me: me.pid, context: context) {
                        try await server.handleCall(request, from: from, me)
                    }
                } else {
                    result = try await server.handleCall(request, from: from, me)
                }
                if let reply = Rules.plainReply(result) {
                    Gen.reply(from, reply)
                    return .continue
                }
                after = Rules.after(result, from: from)
            case .cast(let request):
                let result = try await server.handleCast(request, me)
                if Rules.isPlain(result) { return .continue }
                after = Rules.after(result)
            case .info(let info):
                let result = try await server.handleInfo(info, me)
                if Rules.isPlain(result) { return .continue }
                after = Rules.after(result)
            case .getState(let from):
                // Typed callers (``ServerRef/state(timeout:)``) open the box only when Server is Sendable.
                Gen.reply(from, Transfer(server))
                return .continue
            case .getStatus(let from):
                // As sys:get_status, through formatStatus: what it hides from crash reports
                // stays hidden here too.
                let status = server.formatStatus(ServerStatus(state: server, message: nil, reason: .normal))
                Gen.reply(from, String(describing: status.state))
                return .continue
            case .terminate(let reason): return await terminate(reason, me)
            case .rejected: return .continue
            }
        } catch {
            return await terminate(Rules.reason(error), me, lastMessage: message)
        }
        return await finish(after, me)
    }

    mutating func finish(_ first: Rules.After, _ me: Process) async -> Next {
        var after = first
        while case .proceed(let value?) = after {
            do {
                after = Rules.after(try await server.handleContinue(value, me))
            } catch {
                return await terminate(Rules.reason(error), me, lastMessage: "{continue, \(value)}")
            }
        }
        guard case .stop(let reason, let reply) = after else { return .continue }
        let next = await terminate(reason, me)
        if let (from, value) = reply { Gen.reply(from, value) }
        return next
    }

    mutating func terminate(_ reason: ExitReason, _ me: Process, lastMessage: (any Sendable)? = nil) async -> Next {
        await server.terminate(reason, me)
        proto.report(reason, pid: me.pid, state: server, lastMessage: lastMessage)
        return .stop(reason)
    }
}
