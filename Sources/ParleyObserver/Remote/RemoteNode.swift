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
        if api == "/api/live" { return remote.liveStream(every: routes.observer.configuration.refresh) }
        if api.hasSuffix("/trace/stream") { return remote.traceStream(String(api.dropLast("/stream".count))) }
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
        if let r = path.firstRange(of: "/api/") { return String(path[r.lowerBound...]) }
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

    /// One request to the node's agent.
    /// - Throws: `HTTPError`: 502 if the node runs no agent or the call failed, 504 on a timeout.
    func get(_ path: String, method: HTTPRequest.Method = .get, action: Bool = false, body: [UInt8] = []) async throws -> Reply {
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
                  let status = items[1].intValue, (100...599).contains(status), let contentType = items[2].stringValue,
                  case .binary(let bytes) = items[3] else {
                throw HTTPError(.badGateway, message: "\(name) answered with something that is not an observer reply")
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

    /// Server-sent events: the node's system snapshot every `refresh`, until the page goes.
    func liveStream(every refresh: Duration) -> Response {
        let body = ResponseBody { writer in
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if let reply = try? await get("/api/system"), reply.status == 200 {
                    var buffer = ByteBuffer(string: "event: system\ndata: ")
                    buffer.writeBytes(reply.body)
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                }
                try await Task.sleep(for: refresh)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    private struct TracePoll: Decodable {
        let active: Bool
        let events: [TraceEvent]
    }

    /// Server-sent events: a remote trace's new events, polled every 250 ms, until it stops
    /// or the page goes.
    func traceStream(_ tracePath: String) -> Response {
        let body = ResponseBody { writer in
            let encoder = JSONEncoder()
            let decoder = JSONDecoder()
            var after = 0
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                guard let reply = try? await get(tracePath + "?after=\(after)"), reply.status == 200,
                      let poll = try? decoder.decode(TracePoll.self, from: Data(reply.body)) else { break }
                if let last = poll.events.last {
                    after = last.sequence
                    var buffer = ByteBuffer(string: "event: trace\ndata: ")
                    buffer.writeBytes(try encoder.encode(poll.events))
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                    if last.kind == .stopped { break }
                    continue
                }
                if !poll.active { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }
}
