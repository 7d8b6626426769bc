import Logging
import Instrumentation
import Parley

/// gen_server's protocol, written once for both forms of server (``GenServer``, run by a
/// callback process, and ``AsyncGenServer``, run by a sequential process): which callback a
/// message is for (``event(for:pid:)``), and what a callback's result asks for next
/// (``after(_:from:)``). The two drivers only call the callbacks in between, one with
/// `try` and one with `try await`; every rule of the protocol is decided here:
///
/// - `{'$gen_call', From, Request}` goes to `handleCall`, `{'$gen_cast', Request}` to
///   `handleCast`; a request of the wrong type is rejected (a call gets ``Gen/Rejected``).
/// - sys `terminate` and a trapped exit signal from the parent run `terminate` and end the
///   server with that reason; sys `get_state` replies with the state.
/// - Anything else goes to `handleInfo`.
/// - `{stop, Reason, Reply, State}` runs `terminate` first and replies after it, as
///   gen_server.erl does (the reply is sent in `terminate`'s `after`).
@usableFromInline
struct GenServerProtocol<Server: GenServerMessages> {
    @usableFromInline let parent: Pid?
    @usableFromInline let name: ServerName?

    @usableFromInline
    init(parent: Pid?, name: ServerName?) {
        self.parent = parent
        self.name = name
    }

    /// What a server sends itself when `initialize` asks for a continue, so that it runs
    /// even if no other message comes; handled as nothing.
    @usableFromInline
    struct InitContinue: Sendable {
        @usableFromInline init() {}
    }

    /// Which callback a message is for.
    @usableFromInline
    enum Event {
        /// A call, with the trace context it carries (``Gen/propagatesContext``).
        case call(Server.Call, Gen.From, ServiceContext?)
        case cast(Server.Cast)
        case info(any Sendable)
        /// sys `get_state`: reply with the state.
        case getState(Gen.From)
        /// sys `get_status`: reply with the state rendered as a string.
        case getStatus(Gen.From)
        /// sys `terminate`, or a trapped exit signal from the parent: terminate with the reason.
        case terminate(ExitReason)
        /// Nothing to call: a request of the wrong type (already answered), or the
        /// server's own ``InitContinue``.
        case rejected
    }

    /// What a callback's result asks for next.
    @usableFromInline
    enum After {
        /// Run `handleContinue` with the value, if any; then wait for the next message.
        case proceed(Server.Continue?)
        /// Run `terminate` with the reason, then send the reply, if any, and exit.
        case stop(ExitReason, reply: (Gen.From, Server.Reply)?)
    }

    /// The hot path (calls and casts) is inlinable, so it is specialized for each server
    /// type in the client module: unspecialized, every message would look up generic
    /// metadata at run time.
    @inlinable
    func event(for message: any Sendable, pid: @autoclosure () -> Pid) -> Event {
        // `exactMessage`, not `as?`: CallMessage is a final class and CastMessage a struct, so
        // nothing else can be either, and a metadata comparison is much cheaper than a cast.
        if let call = exactMessage(message, as: Gen.CallMessage.self) {
            guard let request = convertMessage(call.request, to: Server.Call.self) else { return reject(call, pid()) }
            return .call(request, call.from, call.context)
        }
        if let cast = exactMessage(message, as: Gen.CastMessage.self) {
            guard let request = convertMessage(cast.request, to: Server.Cast.self) else { return reject(cast, pid()) }
            return .cast(request)
        }
        return other(message)
    }

    @usableFromInline
    func other(_ message: any Sendable) -> Event {
        switch message {
        case let system as Gen.SystemMessage:
            switch system.request {
            case .terminate(let reason): return .terminate(reason)
            case .getState: return .getState(system.from)
            case .getStatus: return .getStatus(system.from)
            }
        case let exit as ExitMessage where exit.from == parent:
            return .terminate(exit.reason)
        case is InitContinue:
            return .rejected
        default:
            return .info(message)
        }
    }

    @usableFromInline
    func reject(_ call: Gen.CallMessage, _ pid: Pid) -> Event {
        GenServerLog.logger.error("\(Server.self) \(pid) rejected a call of type \(type(of: call.request)); it handles \(Server.Call.self)")
        Gen.reply(call.from, Gen.Rejected(reason: "\(Server.self) handles \(Server.Call.self), not \(type(of: call.request))"))
        return .rejected
    }

    @usableFromInline
    func reject(_ cast: Gen.CastMessage, _ pid: Pid) -> Event {
        GenServerLog.logger.error("\(Server.self) \(pid) dropped a cast of type \(type(of: cast.request)); it handles \(Server.Cast.self)")
        return .rejected
    }

    /// Whether a call's result is a reply and nothing after it (the hot path, which the
    /// drivers take without building an ``After``: copies of a generic enum are slow).
    @inlinable
    static func plainReply(_ result: Server.CallResult) -> Server.Reply? {
        guard result.next == nil, case .reply(let reply) = result.kind else { return nil }
        return reply
    }

    /// Whether a cast, info or continue result asks for nothing: carry on.
    @inlinable
    static func isPlain(_ result: Server.HandleResult) -> Bool {
        result.stopReason == nil && result.next == nil
    }

    /// After `handleCall`: `{reply, ...}` replies now.
    @inlinable
    static func after(_ result: Server.CallResult, from: Gen.From) -> After {
        switch result.kind {
        case .reply(let reply):
            Gen.reply(from, reply)
            return .proceed(result.next)
        case .noreply:
            return .proceed(result.next)
        case .stop(let reason, let reply):
            return .stop(reason, reply: reply.map { (from, $0) })
        }
    }

    /// After `handleCast`, `handleInfo` or `handleContinue`.
    @inlinable
    static func after(_ result: Server.HandleResult) -> After {
        if let reason = result.stopReason { return .stop(reason, reply: nil) }
        return .proceed(result.next)
    }

    /// The reason a callback's error ends the server with.
    @usableFromInline
    static func reason(_ error: any Error) -> ExitReason {
        (error as? ProcessExit)?.reason ?? .error(error)
    }

    /// gen_server's crash report, for a server that exits with an abnormal reason: what the
    /// server's ``GenServerMessages/formatStatus(_:)`` makes of its state, last message and
    /// reason, each cut to ``ServerStatus/printLimit`` characters.
    @usableFromInline
    func report(_ reason: ExitReason, pid: Pid, state: Server, lastMessage: (any Sendable)?) {
        guard reason.isAbnormal else { return }
        let status = state.formatStatus(ServerStatus(state: state, message: lastMessage, reason: reason))
        func cut(_ value: Any) -> Logger.MetadataValue {
            let text = String(describing: value)
            let limit = ServerStatus.printLimit, count = text.count
            return count <= limit ? "\(text)" : "\(text.prefix(limit))… (\(count - limit) more characters)"
        }
        var metadata: Logger.Metadata = ["pid": "\(pid)", "reason": cut(status.reason)]
        if let name { metadata["name"] = "\(name)" }
        if let message = status.message { metadata["last_message"] = cut(message) }
        metadata["state"] = cut(status.state)
        GenServerLog.logger.error("generic server \(name?.description ?? "\(pid)") (\(Server.self)) terminating", metadata: metadata)
    }
}
