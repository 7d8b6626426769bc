import FoundationEssentials
import Hummingbird
import ParleyDistribution

/// Another node's pages, fetched over distribution: a request with `?node=<name>` for a
/// node this observer's node is connected to goes to that node's ``ObserverAgent`` instead
/// of this node's routes, and its reply comes back as it is. The token check, and for
/// actions this observer's own action check, happen here first; the other node then applies
/// its own settings. Streams are made here, by polling their plain forms over the wire:
/// `api/live` polls `api/system` every refresh, a trace's `stream` polls `trace?after=N`.
struct RemoteNodeForwarding<Context: RequestContext>: RouterMiddleware {
    let routes: ObserverRoutes

    // @concurrent: Hummingbird's protocol is compiled without NonisolatedNonsendingByDefault.
    @concurrent
    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        guard let name = request.uri.queryParameters["node"].map(String.init), !name.isEmpty, name != routes.node.name,
              let api = Self.apiPath(request.uri.path), api != "/api/config", api != "/api/nodes" else {
            return try await next(request, context)
        }
        let remote = RemoteNode(name: name, via: routes.node)
        guard remote.isConnected else {
            throw HTTPError(.notFound, message: "\(name) is not connected to \(routes.node.name)")
        }
        let query = Self.query(request.uri.query, dropping: ["node", "token"])
        if api == "/api/live" { return try await remote.liveStream(every: routes.observer.configuration.refresh) }
        if api.hasSuffix("/trace/stream") { return try await remote.traceStream(String(api.dropLast("/stream".count))) }
        var action = false
        if request.method == .post {
            try routes.checkAction(request)
            action = true
        }
        let body = request.method == .post ? Array((try await request.body.collect(upTo: 128 * 1024)).readableBytesView) : []
        let reply = try await remote.get(api + query, method: request.method, action: action, body: body)
        var headers: HTTPFields = [.contentType: reply.contentType, .cacheControl: "no-store"]
        if api.hasSuffix("/trace/download") {
            let safeName = name.filter { $0.isLetter || $0.isNumber || $0 == "_" }
            let pid = api.split(separator: "/")[2].filter { $0.isNumber || $0 == "." }
            let file = "trace-\(safeName)-\(pid).ndjson"
            headers[.contentDisposition] = "attachment; filename=\"\(file)\""
        }
        return Response(status: .init(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }

    /// The path from its `/api/` on (routes may be mounted under a prefix), or nil.
    static func apiPath(_ path: String) -> String? {
        // The last `/api/`: a mount prefix may hold one too, a route's own path segments not.
        if let r = path.ranges(of: "/api/").last { return String(path[r.lowerBound...]) }
        return path.hasPrefix("api/") ? "/" + path : nil
    }

    /// The query string without the given parameters (`?a=1&b=2`, or empty).
    static func query(_ query: String?, dropping names: Set<String>) -> String {
        guard let query, !query.isEmpty else { return "" }
        let kept = query.split(separator: "&").filter { part in
            let key = part.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            return !names.contains(key)
        }
        return kept.isEmpty ? "" : "?" + kept.joined(separator: "&")
    }
}

/// Another node as the observer reads it: its agent, called over this node's connection.
struct RemoteNode: Sendable {
    let name: String
    let via: LocalNode

    var isConnected: Bool { via.connectedNodes.contains(name) }

    struct Reply: Sendable {
        let status: Int
        let contentType: String
        let body: [UInt8]
    }

    /// What another node's reply may be served as, from this observer's origin: data only.
    /// A connected node that answered with a page or a script (anything that registers
    /// `parley_observer` can answer) would otherwise run in the observer's origin.
    static func allowed(_ contentType: String) -> Bool {
        let type = (contentType.split(separator: ";").first ?? "").filter { $0 != " " }.lowercased()
        return ["application/json", "application/x-ndjson", "text/plain"].contains(type)
    }

    /// One request to the node's agent.
    /// - Throws: `HTTPError`: 404 if the node is not connected (any more), 502 if it runs no
    ///   agent, the call failed or the reply is not data, 504 on a timeout.
    func get(_ path: String, method: HTTPRequest.Method = .get, action: Bool = false, body: [UInt8] = []) async throws -> Reply {
        // Never dials: a node that went away stays away until someone connects it again.
        guard isConnected else { throw HTTPError(.notFound, message: "\(name) is not connected to \(via.name)") }
        let request = Term.tuple([.atom("http"), .binary(Array(method.rawValue.utf8)), .binary(Array(path.utf8)),
                                  .atom(action ? .true : .false), .binary(body)])
        let target = Node.named(name)
        let outcome: Result<any Sendable, Gen.CallError> = try await via.run { _ in
            do throws(Gen.CallError) {
                return .success(try await Gen.call(ObserverAgent.name, on: target, request, timeout: .seconds(5)))
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let reply):
            guard let t = reply as? Term, case .tuple(let items) = t, items.count == 4, items[0] == .atom("http"),
                  let status = items[1].intValue, (200...599).contains(status), let contentType = items[2].stringValue,
                  case .binary(let bytes) = items[3] else {
                throw HTTPError(.badGateway, message: "\(name) answered with something that is not an observer reply")
            }
            guard Self.allowed(contentType) else {
                throw HTTPError(.badGateway, message: "\(name) answered with \(contentType.prefix(60)), not data: refused")
            }
            return Reply(status: status, contentType: contentType, body: bytes)
        case .failure(.noproc), .failure(.exited(.noproc)):
            throw HTTPError(.badGateway, message: "\(name) runs no observer agent (an Observer there starts one; or Observer(...).startAgent())")
        case .failure(.timeout):
            throw HTTPError(.gatewayTimeout, message: "\(name) did not answer within 5 s")
        case .failure(let error):
            throw HTTPError(.badGateway, message: "\(name): \(error)")
        }
    }

    /// Server-sent events: the node's system snapshot every `refresh`, until the page goes or
    /// the node stops answering. The first poll happens before the stream opens, so a node
    /// with no agent is an error status the page shows, not an empty stream; after three
    /// failed polls in a row a `failure` event says why and the stream ends. Each round writes
    /// something (a comment if nothing else), so a page that went is noticed at the next write.
    func liveStream(every refresh: Duration) async throws -> Response {
        let first = try await get("/api/system")
        return ServerSentEvents.response { writer in
            var next: Reply? = first
            var failures = 0
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if let reply = next, reply.status == 200 {
                    failures = 0
                    try await writer.write(ServerSentEvents.event("system", reply.body))
                } else {
                    failures += 1
                    if failures >= 3 {
                        try await writer.write(Self.failure("\(name) stopped answering"))
                        break
                    }
                    try await writer.write(ByteBuffer(string: ": no answer from \(name)\n\n"))
                }
                try await Task.sleep(for: refresh)
                next = try? await get("/api/system")
            }
        }
    }

    /// An SSE `failure` event: `{"message": …}`.
    static func failure(_ message: String) -> ByteBuffer {
        ServerSentEvents.event("failure", (try? JSONEncoder().encode(["message": message])) ?? Data("{}".utf8))
    }

    private struct TracePoll: Decodable {
        let active: Bool
        let events: [TraceEvent]
    }

    /// Server-sent events: a remote trace's new events, polled every 250 ms, until it stops
    /// or the page goes. The first poll happens before the stream opens (no trace there is a
    /// 404, as for this node's own traces); a poll that fails later ends the stream with a
    /// `stopped` event, so the page does not reconnect for ever.
    func traceStream(_ tracePath: String) async throws -> Response {
        @Sendable func poll(after: Int) async throws -> TracePoll {
            let decoder = JSONDecoder()
            let reply = try await get(tracePath + "?after=\(after)")
            guard reply.status == 200 else {
                throw HTTPError(.init(code: reply.status), message: String(decoding: reply.body, as: UTF8.self))
            }
            return try decoder.decode(TracePoll.self, from: Data(reply.body))
        }
        let first = try await poll(after: 0)
        return ServerSentEvents.response { writer in
            let encoder = JSONEncoder()
            var after = 0
            var next: TracePoll? = first
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                guard let current = next else {
                    try await writer.write(ServerSentEvents.event("trace", try encoder.encode([Self.lost(after: after, node: name)])))
                    break
                }
                if let last = current.events.last {
                    after = last.sequence
                    try await writer.write(ServerSentEvents.event("trace", try encoder.encode(current.events)))
                    if last.kind == .stopped { break }
                } else if !current.active {
                    break
                } else {
                    try await writer.write(ByteBuffer(string: ": waiting\n\n"))
                    try await Task.sleep(for: .milliseconds(250))
                }
                next = try? await poll(after: after)
            }
        }
    }

    /// The `stopped` event the page gets when the node stops answering mid-trace.
    private struct Lost: Encodable {
        let sequence: Int
        let nanoseconds: UInt64 = 0
        let pid: String = ""
        let kind = "stopped"
        let detail: String
    }
    private static func lost(after: Int, node: String) -> Lost {
        Lost(sequence: after + 1, detail: "lost contact with \(node)")
    }
}
