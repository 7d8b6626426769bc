import Foundation
import ParleyDistribution
import ParleyObserver
import ParleyOTP
@_exported import ParleyTestSupport
import Testing

/// An observer serving on a free loopback port for the length of `body`; stopped on every path.
func withObserver<T>(_ configuration: Observer.Configuration = .init(port: 0),
                     _ body: (Observer, Int) async throws -> T) async throws -> T {
    var config = configuration
    config.port = 0
    let observer = try Observer(config)
    let server = Task { try await observer.run() }
    let port = await observer.waitUntilListening()
    do {
        let result = try await body(observer, port)
        server.cancel()
        _ = try? await server.value
        return result
    } catch {
        server.cancel()
        _ = try? await server.value
        throw error
    }
}

/// One HTTP request to the observer, off the schedulers (the client blocks). It holds a
/// thread of the blocking pool while it waits, and the observer's table handler takes one
/// too: the API suite is serialized so that it never holds more than a couple of the
/// threads other suites' `thread` blocks need.
func http(_ port: Int, _ method: String, _ path: String, headers: [(String, String)] = [],
          body: String = "") async throws -> LoopbackHTTP.Reply {
    let target = path.hasPrefix("/") ? path : "/" + path
    return try await Scheduler.shared.blocking.run {
        try LoopbackHTTP.request(port: port, method: method, path: target, headers: headers, body: body)
    }
}

/// A GET.
func http(_ port: Int, _ path: String, headers: [(String, String)] = []) async throws -> LoopbackHTTP.Reply {
    try await http(port, "GET", path, headers: headers)
}

/// The reply's body as JSON.
func json(_ reply: LoopbackHTTP.Reply) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8))
    return try #require(object as? [String: Any], "not a JSON object: \(reply.body.prefix(200))")
}

/// A pid in the observer's URL form (`0.ID.SERIAL`).
func urlForm(_ pid: Pid) -> String { String(pid.description.dropFirst().dropLast()) }

/// A GenServer with a secret its formatStatus hides (OTP: sys:get_status goes through
/// format_status, as crash reports do).
struct Vault: GenServer, Sendable {
    var items = ["<b>bold</b>", "<script>document.title='pwned'</script>"]
    var apiKey = "sk_live_SECRET"
    enum Call: Sendable { case count }
    typealias Reply = Int
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(items.count) }
    func formatStatus(_ status: ServerStatus) -> ServerStatus {
        var s = status
        s.state = "Vault(items: \(items), apiKey: <redacted>)"
        return s
    }
}

/// Two distributed nodes of this OS process (`b` and `c`, hidden, connected) on an EPMD port
/// of their own, so that they never meet other suites' nodes or an Erlang node's epmd;
/// stopped on every path.
func withTwoNodes<T>(_ body: (LocalNode, LocalNode) async throws -> T) async throws -> T {
    let epmd = Browser.freePort()
    let b = try LocalNode(name: "obs_b_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1")
    let c = try LocalNode(name: "obs_c_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1")
    do {
        for n in [b, c] {
            var config = Distribution.Configuration(name: n.name, cookie: "observer-test")
            config.epmdPort = epmd
            config.embeddedEPMDAddress = "127.0.0.1"
            try await n.startDistribution(config)
        }
        let result = try await body(b, c)
        await b.stopDistribution()
        await c.stopDistribution()
        return result
    } catch {
        await b.stopDistribution()
        await c.stopDistribution()
        throw error
    }
}
