import FoundationEssentials
import Hummingbird
import ServiceLifecycle
import ParleyOTP

/// The observer's HTTP surface. Every route sits behind ``TokenCheck``; the page and its
/// script are static (the page builds its DOM from JSON with `textContent`, never HTML
/// from data), and the Content-Security-Policy allows scripts from the observer only.
struct ObserverRoutes: Sendable {
    let observer: Observer
    var node: LocalNode { observer.configuration.node }

    /// Adds the routes. `asAgent`: for the ``ObserverAgent``'s in-process router, which
    /// answers other nodes' observers: the API only, with no token check (distribution's
    /// cookie let the caller in) and no forwarding to yet another node.
    func add<Routes: RouterMethods>(to router: Routes, asAgent: Bool = false) {
        if !asAgent {
            _ = router.add(middleware: TokenCheck<Routes.Context>(token: observer.token))
            _ = router.add(middleware: RemoteNodeForwarding<Routes.Context>(routes: self))
            router.get("/") { _, _ in Self.asset(WebAssets.html, "text/html; charset=utf-8") }
            router.get("app.js") { _, _ in Self.asset(WebAssets.script, "text/javascript; charset=utf-8") }
            router.get("app.css") { _, _ in Self.asset(WebAssets.style, "text/css; charset=utf-8") }
            router.get("api/config") { _, _ in
                ConfigReply(node: node.name, allowActions: observer.configuration.allowActions,
                            refreshMilliseconds: Int(observer.configuration.refresh.components.seconds * 1000
                                                     + observer.configuration.refresh.components.attoseconds / 1_000_000_000_000_000))
            }
            // The nodes whose pages this observer can show: its own, and those it is
            // connected to (each must run an observer agent).
            router.get("api/nodes") { _, _ in NodesReply(node: node.name, connected: node.connectedNodes) }
        }
        let sampler = SystemSampler(node: node)
        router.get("api/system") { _, _ in sampler.snapshot() }
        router.get("api/live") { _, _ in live() }
        router.get("api/processes") { request, _ in
            // Inline, not on the blocking pool: the page must never hold the threads a
            // node's own `thread` blocks and blocking work need (one walker at a time; other
            // queries get the previous walk's rows meanwhile).
            return observer.table.page(Self.query(request))
        }
        router.get("api/processes/:pid") { _, context in
            let pid = try pid(context)
            // sys:get_status's default timeout (5 s): a busy server's state still shows.
            guard let detail = await ProcessLookup.detail(pid, node: node, stateTimeout: .seconds(5)) else {
                throw HTTPError(.notFound, message: "no such process")
            }
            return detail
        }
        router.post("api/processes/:pid/kill") { request, context in
            try checkAction(request)
            let pid = try pid(context)
            let body = try await request.decode(as: KillRequest.self, context: context)
            Process.exit(pid, KillRequest.reason(body.reason))
            observer.table.invalidate()
            return ActionReply(ok: true, detail: "exit signal sent to \(pid)")
        }
        router.post("api/processes/:pid/send") { request, context in
            try checkAction(request)
            let pid = try pid(context)
            let body = try await request.decode(as: SendRequest.self, context: context)
            guard body.message.utf8.count <= 64 * 1024 else { throw HTTPError(.contentTooLarge, message: "message over 64 KiB") }
            pid.send(body.message)
            return ActionReply(ok: true, detail: "sent a String to \(pid)")
        }
        router.post("api/processes/:pid/trace") { request, context in
            try checkAction(request)
            let pid = try pid(context)
            let body = try await request.decode(as: TraceRequest.self, context: context)
            let session = try observer.traces.start(pid, body)
            return ActionReply(ok: true, detail: "tracing \(pid) (\(body.flags.joined(separator: ", "))), \(session.limitDescription)")
        }
        router.post("api/processes/:pid/trace/stop") { request, context in
            try checkAction(request)
            let session = try traceSession(context)
            session.stop()
            return ActionReply(ok: true, detail: "trace stopped")
        }
        router.get("api/processes/:pid/trace") { request, context in
            let session = try traceSession(context)
            let after = request.uri.queryParameters["after"].flatMap { Int($0) } ?? 0
            return TraceReply(session, after: after)
        }
        router.get("api/processes/:pid/trace/stream") { _, context in
            let session = try traceSession(context)
            return traceStream(session)
        }
        router.get("api/processes/:pid/trace/download") { _, context in
            let session = try traceSession(context)
            let encoder = JSONEncoder()
            var buffer = ByteBuffer()
            for e in session.events {
                buffer.writeBytes(try encoder.encode(e))
                buffer.writeString("\n")
            }
            let file = "trace-" + (context.parameters.get("pid") ?? "").filter { $0.isNumber || $0 == "." } + ".ndjson"
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson", .contentDisposition: "attachment; filename=\"\(file)\""],
                            body: .init(byteBuffer: buffer))
        }
        router.get("api/supervision") { _, _ in SupervisionReply(trees: await SupervisionTrees.all(on: node)) }
        router.get("api/channels") { _, _ in ChannelsReply(channels: ChannelIntrospection.channels) }
        if !asAgent, let metrics = observer.configuration.metrics {
            router.get("metrics") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                         body: .init(byteBuffer: ByteBuffer(string: metrics.scrape(for: node))))
            }
        }
    }

    /// Server-sent events: a system snapshot every refresh, until the page goes.
    func live() -> Response {
        let sampler = SystemSampler(node: node)
        let refresh = observer.configuration.refresh
        _ = sampler.snapshot()
        return ServerSentEvents.response { writer in
            let encoder = JSONEncoder()
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                try await Task.sleep(for: refresh)
                try await writer.write(ServerSentEvents.event("system", try encoder.encode(sampler.snapshot())))
            }
        }
    }

    /// Server-sent events: the trace's new events every 100 ms (at most 500 a batch: the
    /// session's own limit bounds the total), until it stops or the page goes.
    func traceStream(_ session: TraceSession) -> Response {
        return ServerSentEvents.response { writer in
            let encoder = JSONEncoder()
            var after = 0
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let fresh = session.events(after: after).prefix(500)
                if let last = fresh.last {
                    after = last.sequence
                    try await writer.write(ServerSentEvents.event("trace", try encoder.encode(Array(fresh))))
                    if last.kind == .stopped { break }
                    continue
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The trace the page started for the `:pid` in the path (404 if none).
    func traceSession<Context: RequestContext>(_ context: Context) throws -> TraceSession {
        guard let session = observer.traces.session(context.parameters.get("pid") ?? "") else {
            throw HTTPError(.notFound, message: "no trace of that process")
        }
        return session
    }

    func pid<Context: RequestContext>(_ context: Context) throws -> Pid {
        let text = context.parameters.get("pid") ?? ""
        guard let pid = ProcessLookup.pid(text, on: node) else { throw HTTPError(.notFound, message: "no such process") }
        return pid
    }

    /// Actions change the node: they must be allowed, and must come from the page's script
    /// (the custom header cannot be sent cross-site without a CORS preflight, which the
    /// observer never grants).
    func checkAction(_ request: Request) throws {
        guard observer.configuration.allowActions else { throw HTTPError(.forbidden, message: "actions are switched off") }
        guard request.headers[TokenCheck<BasicRequestContext>.actionHeader] == "1" else {
            throw HTTPError(.forbidden, message: "missing the observer's action header")
        }
    }

    static func query(_ request: Request) -> ProcessQuery {
        let p = request.uri.queryParameters
        return ProcessQuery(
            sort: p["sort"].flatMap { ProcessQuery.Column(rawValue: String($0)) } ?? .reductions,
            descending: p["order"].map { $0 != "asc" } ?? true,
            search: p["q"].map { String($0.prefix(200)) } ?? "",
            offset: p["offset"].flatMap { Int($0) } ?? 0,
            limit: p["limit"].flatMap { Int($0) } ?? 50)
    }

    static func asset(_ text: String, _ type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

struct ConfigReply: ResponseEncodable { let node: String; let allowActions: Bool; let refreshMilliseconds: Int }
struct NodesReply: ResponseEncodable { let node: String; let connected: [String] }
struct ActionReply: ResponseEncodable { let ok: Bool; let detail: String }
struct SupervisionReply: ResponseEncodable { let trees: [SupervisionNode] }
/// The channels that opted into introspection (``Chan/observed(as:)``), of the whole OS
/// process: channels belong to no node.
struct ChannelsReply: ResponseEncodable { let channels: [ChannelSnapshot] }
struct SendRequest: Decodable { let message: String }
/// Starting a trace: flags (`send`, `receive`, `procs`), and recon_trace's limit: at most
/// `limit` events, within `perSeconds` seconds if given (a rate), else in all.
struct TraceRequest: Decodable {
    let flags: [String]
    let limit: Int
    let perSeconds: Double?
}
struct TraceReply: ResponseEncodable {
    let pid: String
    let active: Bool
    let stopReason: String?
    let limit: String
    let events: [TraceEvent]
    init(_ session: TraceSession, after: Int) {
        pid = session.pid.description
        active = session.isActive
        stopReason = session.stopReason
        limit = session.limitDescription
        events = Array(session.events(after: after).prefix(1000))
    }
}
struct KillRequest: Decodable {
    let reason: String
    /// `kill` is untrappable, `normal` and `shutdown` are the usual atoms; anything else is a
    /// custom reason (the String).
    static func reason(_ text: String) -> ExitReason {
        switch text {
        case "kill": return .kill
        case "normal": return .normal
        case "shutdown": return .shutdown
        default: return .custom(text)
        }
    }
}

extension SystemSnapshot: ResponseEncodable {}
extension ProcessPage: ResponseEncodable {}
extension ProcessDetail: ResponseEncodable {}
