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

/// The callback process that runs a GenServer: decodes gen_server's messages and applies
/// the callbacks' results. The hot path (calls and casts) is inlinable so that it is
/// specialized for each server type in the client module: unspecialized, every message
/// would look up generic metadata at run time.
@usableFromInline
struct GenServerProcess<Server: GenServer> {
    @usableFromInline var server: Server
    @usableFromInline let parent: Pid?
    @usableFromInline let name: ServerName?

    @usableFromInline
    init(server: consuming Server, parent: Pid?, name: ServerName?) {
        self.server = server
        self.parent = parent
        self.name = name
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
        var spawn = SpawnOptions(link: parent != nil, trapExit: options.trapExit, label: options.label)
        spawn.mailbox = options.mailbox
        let name = initial.value.name
        if case .local(let n)? = name { spawn.name = n }
        let initialize: (CallbackProcess) throws -> sending Transfer<GenServerProcess>? = { me in
            var state = initial.take()
            if case .via(let registry, let key)? = name {
                do throws(RegistryError) { try registry.registerName(key, me.pid) } catch {
                    if case .alreadyRegistered(_, let owner) = error { throw NameTaken(owner: owner) }
                    throw error
                }
            }
            let result: Server.InitResult
            do {
                result = try state.server.initialize(me)
            } catch let e as ProcessExit {
                throw e
            } catch {
                throw ProcessExit(.error(error))
            }
            switch result.kind {
            case .ignore: return nil
            case .stop(let reason): throw ProcessExit(reason)
            case .ok: break
            }
            if let next = result.next, case .stop(let reason) = state.continueWith(next, me) {
                throw ProcessExit(reason)
            }
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

    @inlinable
    mutating func handle(_ message: any Sendable, _ me: CallbackProcess) -> Next {
        if let call = message as? Gen.CallMessage {
            guard let request = convertMessage(call.request, to: Server.Call.self) else { return rejectCall(call, me) }
            let result: Server.CallResult
            do {
                result = try server.handleCall(request, from: call.from, me)
            } catch {
                return crashed(error, message: message, me)
            }
            switch result.kind {
            case .reply(let reply):
                Gen.reply(call.from, reply)
            case .noreply:
                break
            case .stop(let reason, let reply):
                // gen_server.erl: terminate first, then the reply (sent in terminate's `after`).
                let next = terminate(reason, me)
                if let reply { Gen.reply(call.from, reply) }
                return next
            }
            if let next = result.next { return continueWith(next, me) }
            return .continue
        }
        if let cast = message as? Gen.CastMessage {
            guard let request = convertMessage(cast.request, to: Server.Cast.self) else { return rejectCast(cast, me) }
            let result: Server.HandleResult
            do { result = try server.handleCast(request, me) } catch { return crashed(error, message: message, me) }
            return apply(result, me)
        }
        return handleOther(message, me)
    }

    @usableFromInline
    mutating func handleOther(_ message: any Sendable, _ me: CallbackProcess) -> Next {
        switch message {
        case let system as Gen.SystemMessage:
            switch system.request {
            case .terminate(let reason):
                return terminate(reason, me)
            case .getState:
                // Typed callers (``ServerRef/state(timeout:)``) open the box only when Server is Sendable.
                Gen.reply(system.from, Transfer(server))
                return .continue
            }
        case let exit as ExitMessage where exit.from == parent:
            // gen_server: an exit signal from the parent, when trapped, ends the server
            // with the same reason after terminate.
            return terminate(exit.reason, me)
        default:
            let result: Server.HandleResult
            do { result = try server.handleInfo(message, me) } catch { return crashed(error, message: message, me) }
            return apply(result, me)
        }
    }

    @usableFromInline
    func rejectCall(_ call: Gen.CallMessage, _ me: CallbackProcess) -> Next {
        GenServerLog.logger.error("\(Server.self) \(me.pid) rejected a call of type \(type(of: call.request)); it handles \(Server.Call.self)")
        Gen.reply(call.from, Gen.Rejected(reason: "\(Server.self) handles \(Server.Call.self), not \(type(of: call.request))"))
        return .continue
    }

    @usableFromInline
    func rejectCast(_ cast: Gen.CastMessage, _ me: CallbackProcess) -> Next {
        GenServerLog.logger.error("\(Server.self) \(me.pid) dropped a cast of type \(type(of: cast.request)); it handles \(Server.Cast.self)")
        return .continue
    }

    @inlinable
    mutating func apply(_ result: Server.HandleResult, _ me: CallbackProcess) -> Next {
        if let reason = result.stopReason { return terminate(reason, me) }
        if let next = result.next { return continueWith(next, me) }
        return .continue
    }

    @usableFromInline
    mutating func continueWith(_ first: Server.Continue, _ me: CallbackProcess) -> Next {
        var next: Server.Continue? = first
        while let value = next {
            let result: Server.HandleResult
            do {
                result = try server.handleContinue(value, me)
            } catch {
                return crashed(error, message: "{continue, \(value)}", me)
            }
            if let reason = result.stopReason { return terminate(reason, me) }
            next = result.next
        }
        return .continue
    }

    @usableFromInline
    mutating func crashed(_ error: any Error, message: any Sendable, _ me: CallbackProcess) -> Next {
        let reason: ExitReason = (error as? ProcessExit)?.reason ?? .error(error)
        return terminate(reason, me, lastMessage: message)
    }

    @usableFromInline
    mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess, lastMessage: (any Sendable)? = nil) -> Next {
        server.terminate(reason, me)
        if reason.isAbnormal {
            var metadata: Logger.Metadata = ["pid": "\(me.pid)", "reason": "\(reason)"]
            if let name { metadata["name"] = "\(name)" }
            if let lastMessage { metadata["last_message"] = "\(String(describing: lastMessage).prefix(500))" }
            metadata["state"] = "\(String(describing: server).prefix(500))"
            GenServerLog.logger.error("generic server \(name?.description ?? "\(me.pid)") (\(Server.self)) terminating", metadata: metadata)
        }
        return .stop(reason)
    }
}
