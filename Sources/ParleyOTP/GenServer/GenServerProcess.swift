import Logging
import Parley

/// Moves a value that is not `Sendable` into a process, or out of it to a caller that may
/// hold it (a `Sendable` server's state).
@usableFromInline
struct Transfer<Value>: @unchecked Sendable {
    // @unchecked Sendable: a Transfer is made from a value its maker gives up (a consumed
    // server, a state copy replied to a typed caller whose Server is Sendable); only one
    // side ever uses the value.
    @usableFromInline var value: Value
    @inlinable init(_ value: consuming Value) { self.value = value }
    @inlinable func take() -> Value { value }
}

/// The callback process that runs a GenServer: the synchronous driver of
/// ``GenServerProtocol`` (``AsyncGenServer``'s is the other). The hot path (calls and casts)
/// is inlinable so that it is specialized for each server type in the client module.
@usableFromInline
struct GenServerProcess<Server: GenServer> {
    @usableFromInline typealias Rules = GenServerProtocol<Server>
    @usableFromInline var server: Server
    @usableFromInline let proto: Rules
    /// The continue `initialize` asked for: it runs in the server before its first message,
    /// after start has returned (gen_server.erl acks init, then runs handle_continue).
    @usableFromInline var continueAfterInit: Server.Continue? = nil

    @usableFromInline
    init(server: consuming Server, parent: Pid?, name: ServerName?) {
        self.server = server
        self.proto = Rules(parent: parent, name: name)
    }

    struct NameTaken: Error { let owner: Pid }

    @inlinable
    static func start(_ server: consuming Server, parent: Process?, name: ServerName?, options: GenServerOptions) throws(StartError) -> ServerRef<Server> {
        let handler: @Sendable (inout Transfer<GenServerProcess>, any Sendable, CallbackProcess) throws -> Next = { state, message, me in
            state.value.handle(message, me)
        }
        let initial = Transfer(GenServerProcess(server: server, parent: parent?.pid, name: name))
        return try spawn(initial, parent: parent, options: options, handler: handler)
    }

    @usableFromInline
    static func spawn(
        _ initial: Transfer<GenServerProcess>, parent: Process?, options: GenServerOptions,
        handler: @escaping @Sendable (inout Transfer<GenServerProcess>, any Sendable, CallbackProcess) throws -> Next
    ) throws(StartError) -> ServerRef<Server> {
        let name = initial.value.proto.name
        let spawn = options.spawnOptions(link: parent != nil, name: name)
        let initialize: (CallbackProcess) throws -> sending Transfer<GenServerProcess>? = { me in
            var state = initial.take()
            if case .via(let registry, let key)? = name {
                do throws(RegistryError) { try registry.registerName(key, me.pid) } catch {
                    if case .alreadyRegistered(_, let owner) = error { throw NameTaken(owner: owner) }
                    throw error
                }
            }
            guard try state.runInitialize(me) else { return nil }
            return Transfer(state)
        }
        do throws(StartError) {
            let pid: Pid
            if let parent {
                pid = try parent.start(spawn, initialize: initialize, handler: handler)
            } else {
                pid = try Process.start(spawn, initialize: initialize, handler: handler)
            }
            return ServerRef(pid: pid, name: name)
        } catch {
            if case .failed(.error(let e)) = error, let taken = e as? NameTaken { throw .alreadyStarted(taken.owner) }
            throw error
        }
    }

    /// One message: the callback it is for, then what its result asks for.
    /// `initialize`, by OTP's rules: false for `ignore`; throws `ProcessExit` for `stop` (or
    /// an error); a continue is handled before the first message.
    @usableFromInline
    mutating func runInitialize(_ me: CallbackProcess) throws -> Bool {
        let result: Server.InitResult
        do {
            result = try server.initialize(me)
        } catch let e as ProcessExit {
            throw e
        } catch {
            throw ProcessExit(.error(error))
        }
        switch result.kind {
        case .ignore: return false
        case .stop(let reason): throw ProcessExit(reason)
        case .ok: break
        }
        if let next = result.next {
            // Something to handle, so that the continue runs even if no message comes.
            continueAfterInit = next
            me.send(Rules.InitContinue(), to: me.pid)
        }
        return true
    }

    @inlinable
    mutating func handle(_ message: any Sendable, _ me: CallbackProcess) -> Next {
        if continueAfterInit != nil, case .stop(let reason) = runContinueAfterInit(me) { return .stop(reason) }
        let after: Rules.After
        do {
            switch proto.event(for: message, pid: me.pid) {
            case .call(let request, let from, let context):
                let result: GenServerCallResult<Server>
                if let context {
                    result = try CallSpans.handle(Server.self, request: request, from: from, me: me.pid, context: context) {
                        try server.handleCall(request, from: from, me)
                    }
                } else {
                    result = try server.handleCall(request, from: from, me)
                }
                if let reply = Rules.plainReply(result) {
                    Gen.reply(from, reply)
                    return .continue
                }
                after = Rules.after(result, from: from)
            case .cast(let request):
                let result = try server.handleCast(request, me)
                if Rules.isPlain(result) { return .continue }
                after = Rules.after(result)
            case .info(let info):
                let result = try server.handleInfo(info, me)
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
            case .terminate(let reason): return terminate(reason, me)
            case .rejected: return .continue
            }
        } catch {
            return terminate(Rules.reason(error), me, lastMessage: message)
        }
        return finish(after, me)
    }

    @usableFromInline
    mutating func runContinueAfterInit(_ me: CallbackProcess) -> Next {
        let value = continueAfterInit
        continueAfterInit = nil
        return finish(.proceed(value), me)
    }

    /// Runs the continues a result asks for, then stops if one asks to.
    @inlinable
    mutating func finish(_ first: Rules.After, _ me: CallbackProcess) -> Next {
        var after = first
        while case .proceed(let value?) = after {
            do {
                after = Rules.after(try server.handleContinue(value, me))
            } catch {
                return terminate(Rules.reason(error), me, lastMessage: "{continue, \(value)}")
            }
        }
        guard case .stop(let reason, let reply) = after else { return .continue }
        let next = terminate(reason, me)
        if let (from, value) = reply { Gen.reply(from, value) }
        return next
    }

    @usableFromInline
    mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess, lastMessage: (any Sendable)? = nil) -> Next {
        server.terminate(reason, me)
        proto.report(reason, pid: me.pid, state: server, lastMessage: lastMessage)
        return .stop(reason)
    }
}
