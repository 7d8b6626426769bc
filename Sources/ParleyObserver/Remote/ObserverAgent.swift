import FoundationEssentials
import Hummingbird
import Logging
import ParleyDistribution
import Synchronization

/// What makes a node's observer pages readable from another node: a process registered as
/// `parley_observer` that answers the observer's own HTTP routes over distribution, as
/// Erlang's `observer` reads a remote node through `observer_backend` (which that node must
/// have, from runtime_tools).
///
/// The request is a gen_server call of `{http, Method, Path, Action, Body}` (binaries, and a
/// boolean for the page's action header); the reply is `{http, Status, ContentType, Body}`.
/// The routes run in this process's observer, with its settings: a read-only observer
/// refuses actions asked for from another node too. Distribution's cookie is what lets a
/// node in; no token is asked for. Streams (`api/live`, a trace's `stream`) are not served
/// here: the asking observer polls their plain forms instead.
///
/// From Erlang:
///
/// ```erlang
/// gen_server:call({parley_observer, 'b@127.0.0.1'}, {http, <<"GET">>, <<"/api/system">>, false, <<>>}).
/// ```
final class ObserverAgent: Sendable {
    /// The registered name.
    static let name = "parley_observer"
    /// Requests answered at once; more are refused with 503 (each runs in a task of its own).
    static let concurrencyLimit = 16

    private let responder: RouterResponder<AgentContext>
    private let logger: Logger
    // Relaxed: a counter of requests in flight, read only to refuse past the limit.
    private let inFlight = Atomic<Int>(0)

    init(observer: Observer) {
        let router = Router(context: AgentContext.self)
        ObserverRoutes(observer: observer).add(to: router, asAgent: true)
        responder = router.buildResponder()
        logger = observer.logger
    }

    /// Starts the agent's process on `node`, registered as ``name``.
    /// - Throws: `ProcessError.nameTaken` if the name is taken there (another observer's agent).
    func start(on node: LocalNode) throws -> Pid {
        try node.spawn(SpawnOptions(name: Self.name, label: "observer agent"), state: ()) { [self] _, message, _ in
            if let call = message as? Gen.CallMessage { accept(call, on: node) }
            return .continue
        }
    }

    private func accept(_ call: Gen.CallMessage, on node: LocalNode) {
        guard let request = Self.request(call.request) else {
            Gen.reply(call.from, Term.tuple([.atom("error"), .atom("badarg")]))
            return
        }
        if inFlight.wrappingAdd(1, ordering: .relaxed).newValue > Self.concurrencyLimit {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            Gen.reply(call.from, Self.reply(503, "text/plain", Array("observer agent busy".utf8)))
            return
        }
        let from = call.from
        // Each request in a process of its own on the agent's node, so that a slow one (a
        // GenServer's state, with its timeout) holds up no other, and the reply leaves
        // from this node.
        do {
            try node.spawn(SpawnOptions(label: "observer agent request")) { [self] _ in
                let reply = await answer(request)
                inFlight.wrappingSubtract(1, ordering: .relaxed)
                Gen.reply(from, reply)
            }
        } catch {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            Gen.reply(from, Self.reply(503, "text/plain", Array("observer agent: \(error)".utf8)))
        }
    }

    struct HTTPCall: Sendable {
        let method: HTTPRequest.Method
        let path: String
        let action: Bool
        let body: [UInt8]
    }

    static func request(_ message: any Sendable) -> HTTPCall? {
        guard let t = message as? Term, case .tuple(let items) = t, items.count == 5, items[0] == .atom("http"),
              let method = items[1].stringValue.flatMap({ HTTPRequest.Method($0) }),
              let path = items[2].stringValue, path.hasPrefix("/"),
              case .atom(let action) = items[3], action == .true || action == .false,
              case .binary(let body) = items[4] else { return nil }
        return HTTPCall(method: method, path: path, action: action == .true, body: body)
    }

    static func reply(_ status: Int, _ contentType: String, _ body: [UInt8]) -> Term {
        .tuple([.atom("http"), .integer(status), .binary(Array(contentType.utf8)), .binary(body)])
    }

    /// Runs one request through the observer's routes, in this process.
    func answer(_ call: HTTPCall) async -> Term {
        var head = HTTPRequest(method: call.method, scheme: "http", authority: "parley-observer-agent", path: call.path)
        if call.action { head.headerFields[TokenCheck<BasicRequestContext>.actionHeader] = "1" }
        if !call.body.isEmpty { head.headerFields[.contentType] = "application/json" }
        let request = Request(head: head, body: RequestBody(buffer: ByteBuffer(bytes: call.body)))
        let context = AgentContext(source: AgentSource(logger: logger))
        let response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch let error as any HTTPResponseError {
            guard let r = try? error.response(from: request, context: context) else { return Self.reply(500, "text/plain", Array("\(error)".utf8)) }
            response = r
        } catch {
            return Self.reply(500, "text/plain", Array("\(error)".utf8))
        }
        let contentType = response.headers[.contentType] ?? "application/octet-stream"
        guard contentType != "text/event-stream" else {
            return Self.reply(400, "text/plain", Array("streams are not served over distribution".utf8))
        }
        let collector = BodyCollector()
        do {
            try await response.body.write(collector.writer)
        } catch {
            return Self.reply(500, "text/plain", Array("\(error)".utf8))
        }
        return Self.reply(Int(response.status.code), contentType, collector.bytes)
    }
}

/// The in-process request context of the agent's router: no channel, only a logger.
struct AgentSource: RequestContextSource { let logger: Logger }
struct AgentContext: RequestContext {
    typealias Source = AgentSource
    var coreContext: CoreRequestContextStorage
    init(source: AgentSource) { coreContext = .init(source: source) }
}

/// Gathers a response body's bytes.
final class BodyCollector: Sendable {
    private let storage = Mutex<[UInt8]>([])
    var bytes: [UInt8] { storage.withLock { $0 } }
    var writer: Writer { Writer(collector: self) }
    struct Writer: ResponseBodyWriter {
        let collector: BodyCollector
        mutating func write(_ buffer: ByteBuffer) async throws {
            collector.storage.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}
