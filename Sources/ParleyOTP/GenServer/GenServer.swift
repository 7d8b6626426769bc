import Logging
import Parley

/// What both forms of gen_server declare: the types of their requests, replies and continue
/// values. ``GenServer`` (synchronous callbacks, a callback process) and ``AsyncGenServer``
/// (callbacks that may `await`, a sequential process) refine it, and speak the same protocol.
public protocol GenServerMessages: SendableMetatype {
    /// The requests ``ServerRef/call(_:timeout:)`` sends (`Never`: none).
    associatedtype Call: Sendable = Never
    /// What calls reply. Declare it (`typealias Reply = Int`) when the server has calls:
    /// Swift cannot infer it from `handleCall`.
    ///
    /// A server has one reply type, as a gen_server call has one reply term. A server whose
    /// calls answer different things declares an enum with a case per kind of answer, so
    /// `handleCall` stays one exhaustive switch and the caller matches the case it expects
    /// (`Examples/ChatRooms`'s `Room.Reply`):
    ///
    /// ```swift
    /// enum Reply: Sendable { case joined(members: [String]), said(lineNumber: Int), notAMember }
    /// guard case .joined(let members) = try await room.call(.join(user: "ann", pid: me.pid)) else { ... }
    /// ```
    associatedtype Reply: Sendable = Never
    /// The requests ``ServerRef/cast(_:)`` sends (`Never`: none).
    associatedtype Cast: Sendable = Never
    /// The value a callback passes to `handleContinue` (`Never`: none).
    associatedtype Continue = Never

    /// What crash reports show of this server (Erlang's `format_status/1`, Elixir's
    /// `@impl format_status`): redact or summarise secrets and bulky state here, so that
    /// they never reach the logs. Called only when a report is written, in the server's
    /// process. The default shows everything, each field cut to ``ServerStatus/printLimit``
    /// characters.
    ///
    /// ```swift
    /// struct Room: GenServer {
    ///     var members: [String: Session] = [:]
    ///     var history: [String] = []
    ///     func formatStatus(_ status: ServerStatus) -> ServerStatus {
    ///         var s = status
    ///         s.state = "Room(\(members.count) members, \(history.count) messages)"
    ///         s.message = status.message.map { _ in "<redacted>" }
    ///         return s
    ///     }
    ///     // callbacks ...
    /// }
    /// ```
    func formatStatus(_ status: ServerStatus) -> ServerStatus
}

extension GenServerMessages {
    /// Keeps nothing back: the crash report shows the state, the last message and the
    /// reason, each cut to ``ServerStatus/printLimit`` characters.
    public func formatStatus(_ status: ServerStatus) -> ServerStatus { status }
}

/// What a server's crash report shows: Erlang's `format_status/1` map (`state`, `message`,
/// `reason`). A server's ``GenServerMessages/formatStatus(_:)`` may replace any of them.
public struct ServerStatus {
    /// The server's state: the server value itself, unless `formatStatus` replaced it.
    public var state: Any
    /// The message being handled when the server failed, if any.
    public var message: Any?
    /// Why the server is ending.
    public var reason: ExitReason

    /// How many characters of each field a report prints at most (Erlang's logger limits
    /// report size the same way, `max_size` and `depth`).
    public static let printLimit = 500

    public init(state: Any, message: Any?, reason: ExitReason) {
        self.state = state
        self.message = message
        self.reason = reason
    }
}

extension GenServerMessages {
    public typealias CallResult = GenServerCallResult<Self>
    public typealias HandleResult = GenServerResult<Self>
    public typealias InitResult = GenServerInitResult<Self>
}

/// A server process with OTP's gen_server behaviour: state, synchronous calls, asynchronous
/// casts, other messages, continue, and terminate, as Elixir's `GenServer`.
///
/// The conforming type *is* the state: its mutating methods are the callbacks. The server
/// runs as a callback process, so an idle server holds no Swift task and no thread; each
/// callback runs to completion, one message at a time.
///
/// ```swift
/// struct Counter: GenServer {
///     var count = 0
///     enum Call: Sendable { case get, add(Int) }
///     typealias Reply = Int
///     enum Cast: Sendable { case reset }
///
///     mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
///         switch request {
///         case .get: return .reply(count)
///         case .add(let n): count += n; return .reply(count)
///         }
///     }
///     mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
///         count = 0
///         return .noreply
///     }
/// }
///
/// let counter = try Counter().start()
/// try await counter.call(.add(2))      // 2
/// counter.cast(.reset)
/// ```
///
/// Calls travel as gen_server's messages (``Gen/CallMessage`` is
/// `{'$gen_call', {From, Tag}, Request}`), so a caller written by hand with ``Gen`` and, with
/// distribution, an Erlang node can call it too. Callbacks are synchronous and get a
/// ``CallbackProcess``, which cannot wait: to wait for something (another server, I/O),
/// return `.noreply`, do the work elsewhere (a ``ProcessTask``, `blocking`), and answer with
/// ``Gen/reply(_:_:)`` using the caller's `from`; or write an ``AsyncGenServer``, whose
/// callbacks may `await`. Both follow the same rules, written once.
public protocol GenServer: GenServerMessages {
    /// Runs in the new server process before ``GenServer/start(name:options:)`` returns (OTP's
    /// `init/1`). Default: `.ok`. Throwing (or `.stop`) makes start fail with that reason.
    mutating func initialize(_ me: CallbackProcess) throws -> GenServerInitResult<Self>
    /// Handles a call (`handle_call/3`). Reply now with `.reply`, later with
    /// ``Gen/reply(_:_:)`` after `.noreply`, or stop.
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) throws -> GenServerCallResult<Self>
    /// Handles a cast (`handle_cast/2`).
    mutating func handleCast(_ request: Cast, _ me: CallbackProcess) throws -> GenServerResult<Self>
    /// Handles any other message: timers, monitors' DOWN, EXIT when trapping exits
    /// (`handle_info/2`). Default: logs it and carries on, as Elixir's default does.
    mutating func handleInfo(_ message: any Sendable, _ me: CallbackProcess) throws -> GenServerResult<Self>
    /// Runs right after a callback that returned a continue value, before any other message
    /// (`handle_continue/2`).
    mutating func handleContinue(_ value: Continue, _ me: CallbackProcess) throws -> GenServerResult<Self>
    /// Runs before the server exits (`terminate/2`): after a callback stops or throws, on
    /// ``ServerRef/stop(_:timeout:)``, and on an exit signal from its parent when it traps
    /// exits. Not when it is killed, nor for an exit signal it does not trap.
    mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess)
}

extension GenServer {
    public mutating func initialize(_ me: CallbackProcess) throws -> InitResult { .ok }
    public mutating func handleInfo(_ message: any Sendable, _ me: CallbackProcess) throws -> HandleResult {
        GenServerLog.logger.warning("\(Self.self) \(me.pid) received an unexpected message in handleInfo: \(message)")
        return .noreply
    }
    public mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess) {}
}

extension GenServer where Call == Never {
    public mutating func handleCall(_ request: Never, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {}
}

extension GenServer where Cast == Never {
    public mutating func handleCast(_ request: Never, _ me: CallbackProcess) throws -> HandleResult {}
}

extension GenServer where Continue == Never {
    public mutating func handleContinue(_ value: Never, _ me: CallbackProcess) throws -> HandleResult {}
}

/// What `handleCall` returns: gen_server's `{reply, ...}`,
/// `{noreply, ...}` and `{stop, ...}`.
public struct GenServerCallResult<Server: GenServerMessages> {
    public typealias Reply = Server.Reply
    public typealias Continue = Server.Continue
    @usableFromInline enum Kind {
        case reply(Reply)
        case noreply
        case stop(ExitReason, Reply?)
    }
    @usableFromInline let kind: Kind
    @usableFromInline let next: Continue?
    @inlinable init(kind: Kind, next: Continue?) {
        self.kind = kind
        self.next = next
    }

    /// Reply to the caller (`{reply, Reply, State}`).
    @inlinable public static func reply(_ reply: Reply) -> Self { Self(kind: .reply(reply), next: nil) }
    /// Reply, then run `handleContinue` (`{reply, Reply, State, {continue, C}}`).
    @inlinable public static func reply(_ reply: Reply, continue value: Continue) -> Self { Self(kind: .reply(reply), next: value) }
    /// Don't reply now (`{noreply, State}`); reply later with ``Gen/reply(_:_:)``.
    @inlinable public static var noreply: Self { Self(kind: .noreply, next: nil) }
    /// Don't reply now; run `handleContinue`.
    @inlinable public static func noreply(continue value: Continue) -> Self { Self(kind: .noreply, next: value) }
    /// Reply, then stop with `reason` (`{stop, Reason, Reply, State}`).
    @inlinable public static func stop(_ reason: ExitReason, reply: Reply) -> Self { Self(kind: .stop(reason, reply), next: nil) }
    /// Stop without replying (`{stop, Reason, State}`): the caller gets
    /// ``Gen/CallError/exited(_:)`` with `reason`.
    @inlinable public static func stop(_ reason: ExitReason) -> Self { Self(kind: .stop(reason, nil), next: nil) }
}

/// What cast, info and continue callbacks return: `{noreply, ...}` or `{stop, ...}`.
public struct GenServerResult<Server: GenServerMessages> {
    public typealias Continue = Server.Continue
    @usableFromInline let stopReason: ExitReason?
    @usableFromInline let next: Continue?
    @inlinable init(stopReason: ExitReason?, next: Continue?) {
        self.stopReason = stopReason
        self.next = next
    }

    /// Carry on (`{noreply, State}`).
    @inlinable public static var noreply: Self { Self(stopReason: nil, next: nil) }
    /// Carry on with `handleContinue` first (`{noreply, State, {continue, C}}`).
    @inlinable public static func noreply(continue value: Continue) -> Self { Self(stopReason: nil, next: value) }
    /// Stop (`{stop, Reason, State}`).
    @inlinable public static func stop(_ reason: ExitReason) -> Self { Self(stopReason: reason, next: nil) }
}

/// What `initialize` returns: `{ok, State}`, `{ok, State, {continue, C}}`,
/// `ignore` or `{stop, Reason}`.
public struct GenServerInitResult<Server: GenServerMessages> {
    public typealias Continue = Server.Continue
    @usableFromInline enum Kind {
        case ok
        case ignore
        case stop(ExitReason)
    }
    @usableFromInline let kind: Kind
    @usableFromInline let next: Continue?
    @inlinable init(kind: Kind, next: Continue?) {
        self.kind = kind
        self.next = next
    }

    @inlinable public static var ok: Self { Self(kind: .ok, next: nil) }
    @inlinable public static func ok(continue value: Continue) -> Self { Self(kind: .ok, next: value) }
    /// Don't start; start throws ``StartError/ignored`` (a supervisor records the child as not running).
    @inlinable public static var ignore: Self { Self(kind: .ignore, next: nil) }
    @inlinable public static func stop(_ reason: ExitReason) -> Self { Self(kind: .stop(reason), next: nil) }
}

@usableFromInline
enum GenServerLog {
    /// Made at each use (crash reports and rejected calls only), so that a logging backend
    /// bootstrapped after the first report still gets every later one.
    @usableFromInline static var logger: Logger { Logger(label: "parley.genserver") }
}
