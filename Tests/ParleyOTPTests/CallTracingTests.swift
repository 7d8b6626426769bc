import Instrumentation
import Synchronization
import ParleyOTP
import ParleyTestSupport
import Testing
import Tracing

/// A server that forwards each call to another server and answers with its reply plus one:
/// the middle of a call chain (front → middle → back).
struct Forwarder: AsyncGenServer, Sendable {
    let next: ServerRef<Counter>
    enum Call: Sendable { case forward(Int) }
    typealias Reply = Int
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: Process) async throws -> CallResult {
        guard case .forward(let n) = request else { return .reply(0) }
        return .reply(try await next.call(.add(n)) + 1)
    }
}

/// A server whose call handler throws.
struct ThrowingServer: GenServer, Sendable {
    struct Boom: Error {}
    typealias Call = String
    typealias Reply = String
    mutating func handleCall(_ request: String, from: Gen.From, _ me: CallbackProcess) throws -> CallResult { throw Boom() }
}

/// A key of our own in a ServiceContext, to see that the whole context travels.
enum TenantKey: ServiceContextKey { typealias Value = String }

/// swift-distributed-tracing spans for GenServer calls (``Gen/propagatesContext``): the trace
/// context travels with the call, as OpenTelemetry's context propagation asks of an RPC: the
/// client span's context is the server span's parent (OpenTelemetry semantic conventions for
/// RPC spans: one CLIENT span at the caller, one SERVER span at the callee).
@Suite("GenServer call spans")
struct CallTracingTests {
    let tracer = RecordingTracer.shared
    init() {
        TestLogging.installed
        Gen.propagatesContext = true
    }

    @Test("A call made inside a span: GenServer.call (client) is the root's child, GenServer.handleCall (server) the client's, in one trace; attributes name the request's case, never its values")
    func callInsideASpan() async throws {
        let counter = try Counter().start()
        let root = tracer.root("checkout")
        let total = try await ServiceContext.$current.withValue(root.context) { try await counter.call(.add(5)) }
        root.end()
        #expect(total == 5)
        let trace = try #require(root.traceID)
        let spans = tracer.spans(inTrace: trace)
        let client = try #require(spans.first { $0.name == "GenServer.call Counter" })
        let server = try #require(spans.first { $0.name == "GenServer.handleCall Counter" })
        #expect(client.kind == .client && server.kind == .server)
        #expect(client.parentID == root.spanID)
        #expect(server.parentID == client.spanID)
        #expect(client.attributes["parley.request"] == "add" && server.attributes["parley.request"] == "add")
        #expect(server.attributes["parley.server"] == counter.pid!.description)
        #expect(!client.isError && !server.isError)
        try await counter.stop()
    }

    @Test("A chain of calls is one trace: front → Forwarder (AsyncGenServer) → Counter, each server span the parent of the calls its handler makes")
    func chainOfCalls() async throws {
        let back = try Counter().start()
        let relay = try await Forwarder(next: back).start()
        let root = tracer.root("request")
        let answer = try await ServiceContext.$current.withValue(root.context) { try await relay.call(.forward(2)) }
        root.end()
        #expect(answer == 3)
        let spans = tracer.spans(inTrace: try #require(root.traceID))
        let names = spans.map(\.name)
        #expect(Set(names) == ["GenServer.call Forwarder", "GenServer.handleCall Forwarder", "GenServer.call Counter", "GenServer.handleCall Counter", "request"])
        func span(_ name: String) -> RecordingTracer.Finished? { spans.first { $0.name == name } }
        #expect(span("GenServer.call Forwarder")?.parentID == root.spanID)
        #expect(span("GenServer.handleCall Forwarder")?.parentID == span("GenServer.call Forwarder")?.spanID)
        #expect(span("GenServer.call Counter")?.parentID == span("GenServer.handleCall Forwarder")?.spanID)
        #expect(span("GenServer.handleCall Counter")?.parentID == span("GenServer.call Counter")?.spanID)
        try await relay.stop()
        try await back.stop()
    }

    @Test("A handleCall that throws: the server span records the error, the client span records the call's .exited error; both have an error status; a reply of the wrong type is an error on the client span")
    func failedCall() async throws {
        let crasher = try ThrowingServer().start()
        let root = tracer.root("doomed")
        await #expect(throws: Gen.CallError.self) {
            try await ServiceContext.$current.withValue(root.context) { try await crasher.call("x") }
        }
        root.end()
        let spans = tracer.spans(inTrace: try #require(root.traceID))
        let client = try #require(spans.first { $0.name == "GenServer.call ThrowingServer" })
        let server = try #require(spans.first { $0.name == "GenServer.handleCall ThrowingServer" })
        #expect(client.isError && server.isError)
        #expect(server.errors.first?.contains("Boom") == true)
        #expect(client.errors.first?.contains("server exited") == true)

        // A reply of the wrong type is a failed call too (badReply), on the client span.
        let liar = try Process.spawn(state: ()) { _, message, _ in
            if let call = message as? Gen.CallMessage { Gen.reply(call.from, 42) }
            return .continue
        }
        defer { Process.exit(liar, .kill) }
        let second = tracer.root("lied to")
        await #expect(throws: Gen.CallError.self) {
            try await ServiceContext.$current.withValue(second.context) { try await ServerRef<ThrowingServer>(liar).call("x") }
        }
        second.end()
        let secondTrace = try #require(second.traceID)
        let lied = try #require(tracer.spans(inTrace: secondTrace).first { $0.name == "GenServer.call ThrowingServer" })
        #expect(lied.isError && lied.errors.first?.contains("bad reply") == true, "\(lied.errors)")
    }

    @Test("Gen.call carries the caller's whole ServiceContext (keys of its own included) in the CallMessage; with no current context, none")
    func rawCallCarriesTheContext() async throws {
        let seen = SpinLocked<[String?]>([])
        let server = try Process.spawn(state: ()) { _, message, _ in
            if let call = message as? Gen.CallMessage {
                seen.withLock { $0.append(call.context?[TenantKey.self]) }
                Gen.reply(call.from, "ok")
            }
            return .continue
        }
        var context = ServiceContext.topLevel
        context[TenantKey.self] = "acme"
        _ = try await ServiceContext.$current.withValue(context) { try await Gen.call(server, "hi") }
        _ = try await ServiceContext.$current.withValue(nil) { try await Gen.call(server, "hi") }
        // An explicit context wins over the task's, whether or not propagation is on.
        var other = ServiceContext.topLevel
        other[TenantKey.self] = "globex"
        _ = try await ServiceContext.$current.withValue(context) { try await Gen.call(server, "hi", context: other) }
        #expect(seen.withLock { $0 } == ["acme", nil, "globex"])
        Process.exit(server, .kill)
    }
}
