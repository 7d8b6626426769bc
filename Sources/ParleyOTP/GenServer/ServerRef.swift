import Logging
import Parley

/// A typed reference to a running ``GenServer``: call, cast, send, stop. By pid, or by name,
/// resolved at each use (so it follows restarts).
public struct ServerRef<Server: GenServerMessages>: Sendable, CustomStringConvertible {
    @usableFromInline enum Target: Sendable {
        case pid(Pid)
        case name(ServerName)
    }
    @usableFromInline let target: Target
    @usableFromInline let metrics: CallMetrics?

    /// A reference to the server with this pid.
    public init(_ pid: Pid) {
        target = .pid(pid)
        metrics = nil
    }

    /// A reference to whichever server has `name` at the time of each call.
    public init(name: ServerName) {
        target = .name(name)
        metrics = CallMetrics(server: name.description)
    }

    @usableFromInline
    init(pid: Pid, name: ServerName?) {
        target = .pid(pid)
        metrics = name.flatMap { CallMetrics(server: $0.description) }
    }

    /// The server's pid now (`nil` if a name is not registered).
    public var pid: Pid? {
        switch target {
        case .pid(let p): return p
        case .name(let n): return n.pid
        }
    }

    public var description: String {
        switch target {
        case .pid(let p): return "\(Server.self)\(p)"
        case .name(let n): return "\(Server.self)(\(n))"
        }
    }

    @inlinable
    func resolve() throws(Gen.CallError) -> Pid {
        switch target {
        case .pid(let p): return p
        case .name(let n):
            guard let p = n.pid else { throw .noproc(n.description) }
            return p
        }
    }

    /// Calls the server and waits for its reply (`GenServer.call/3`), from a process or any
    /// Swift task.
    /// - Parameter timeout: default 5000 ms; `nil` waits forever.
    /// - Throws: ``Gen/CallError``: `.timeout` (a late reply is dropped), `.exited(reason)`
    ///   if the server died during the call (a crash in `handleCall` carries the error),
    ///   `.noproc` if it is not running.
    ///
    /// ```swift
    /// let n = try await counter.call(.get, timeout: .seconds(1))
    /// ```
    @inlinable
    @discardableResult
    public func call(_ request: Server.Call, timeout: Duration? = Gen.defaultTimeout) async throws(Gen.CallError) -> Server.Reply {
        let pid = try resolve()
        let started = metrics?.start() ?? 0
        if Gen.propagatesContext {
            let typed = try await CallSpans.call(Server.self, pid: pid, request: request, timeout: timeout)
            metrics?.record(since: started)
            return typed
        }
        let reply = try await Gen.call(pid, request, timeout: timeout)
        metrics?.record(since: started)
        guard let typed = convertMessage(reply, to: Server.Reply.self) else { throw Self.badReply(reply) }
        return typed
    }

    @usableFromInline
    static func badReply(_ reply: any Sendable) -> Gen.CallError {
        .badReply("expected \(Server.Reply.self), got \(type(of: reply))")
    }

    /// Sends a cast (`GenServer.cast/2`): returns at once; dropped if the server is not running.
    public func cast(_ request: Server.Cast) {
        if let pid = try? resolve() { Gen.cast(pid, request) }
    }

    /// Sends a plain message, which the server gets in ``GenServer/handleInfo(_:_:)``.
    public func send(_ message: any Sendable) {
        if let pid = try? resolve() { pid.send(message) }
    }

    /// Stops the server with `reason` and waits until it has exited (`GenServer.stop/3`):
    /// it runs `terminate` first.
    /// - Throws: ``Gen/CallError``: `.noproc` if it is not running, `.timeout`.
    public func stop(_ reason: ExitReason = .normal, timeout: Duration? = nil) async throws(Gen.CallError) {
        try await stopProcess(try resolve(), reason, timeout: timeout)
    }

    /// The server's state (`sys:get_state/1`): for tests and debugging.
    public func state(timeout: Duration? = Gen.defaultTimeout) async throws(Gen.CallError) -> Server where Server: Sendable {
        let pid = try resolve()
        let reply = try await Gen.systemCall(pid, .getState, timeout: timeout)
        guard let s = reply as? Transfer<Server> else { throw .badReply("expected \(Server.self)") }
        return s.take()
    }
}
