import Parley
import Tracing

/// The spans of GenServer calls, made while ``Gen/propagatesContext`` is on, through the
/// tracer bootstrapped with `InstrumentationSystem.bootstrap` (swift-distributed-tracing):
///
/// | span | kind | made by | parent |
/// |---|---|---|---|
/// | `GenServer.call <Server>` | client | ``ServerRef/call(_:timeout:)`` | the caller's `ServiceContext.current` |
/// | `GenServer.handleCall <Server>` | server | the server, around `handleCall` | the context the call carried |
///
/// Attributes: `parley.request` (the request's enum case, or its type for other requests,
/// never its values), `parley.server` and `parley.caller` (pids, as Erlang prints them).
/// A call that fails records its ``Gen/CallError`` on the client span, and a `handleCall` that
/// throws records the error on the server span; both then have an error status. Inside
/// `handleCall`, `ServiceContext.current` is the server span's context, so calls the handler
/// makes (an ``AsyncGenServer`` can) are its children. Across nodes the context travels in
/// Erlang's sequential-trace token (see ``Gen/propagatesContext``).
@usableFromInline
enum CallSpans {
    /// A call from ``ServerRef/call(_:timeout:)`` in a client span.
    @usableFromInline
    static func call<Server: GenServerMessages>(_ server: Server.Type, pid: Pid, request: Server.Call, timeout: Duration?) async throws(Gen.CallError) -> Server.Reply {
        let span = startSpan("GenServer.call \(Server.self)", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        span.attributes["parley.request"] = requestLabel(request)
        span.attributes["parley.server"] = pid.description
        defer { span.end() }
        do throws(Gen.CallError) {
            let reply = try await Gen.call(pid, request, timeout: timeout, context: span.context)
            guard let typed = convertMessage(reply, to: Server.Reply.self) else { throw ServerRef<Server>.badReply(reply) }
            return typed
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: error.description))
            throw error
        }
    }

    /// Runs a server's `handleCall` in a server span whose parent is the call's context.
    @usableFromInline
    static func handle<Server, Result>(_ server: Server.Type, request: some Any, from: Gen.From, me: Pid, context: ServiceContext, _ body: () throws -> Result) rethrows -> Result {
        let span = serverSpan(Server.self, request: request, from: from, me: me, context: context)
        defer { span.end() }
        do {
            return try ServiceContext.withValue(span.context) { try body() }
        } catch {
            failed(span, error)
            throw error
        }
    }

    /// ``handle(_:request:from:me:context:_:)`` for an async `handleCall`.
    @usableFromInline
    static func handle<Server, Result>(_ server: Server.Type, request: some Any, from: Gen.From, me: Pid, context: ServiceContext, _ body: () async throws -> Result) async rethrows -> Result {
        let span = serverSpan(Server.self, request: request, from: from, me: me, context: context)
        defer { span.end() }
        do {
            return try await ServiceContext.$current.withValue(span.context) { try await body() }
        } catch {
            failed(span, error)
            throw error
        }
    }

    private static func serverSpan<Server>(_ server: Server.Type, request: some Any, from: Gen.From, me: Pid, context: ServiceContext) -> any Span {
        let span = startSpan("GenServer.handleCall \(Server.self)", context: context, ofKind: .server)
        span.attributes["parley.request"] = requestLabel(request)
        span.attributes["parley.server"] = me.description
        span.attributes["parley.caller"] = from.pid.description
        return span
    }

    private static func failed(_ span: any Span, _ error: any Error) {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error, message: "\(error)"))
    }

    /// An enum request's case name (`add` for `.add(5)`), else the request's type: what the
    /// call is, never the values it carries.
    static func requestLabel(_ request: some Any) -> String {
        let mirror = Mirror(reflecting: request)
        guard mirror.displayStyle == .enum else { return "\(type(of: request))" }
        if let label = mirror.children.first?.label { return label }
        return String(describing: request)
    }
}
