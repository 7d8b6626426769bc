import Foundation
import Parley
import ParleyObserver
import ParleyOTP

// Chapter 13: the observer. The same JSON a browser's page reads, fetched over HTTP from an
// observer serving this node on a free loopback port.

@Sendable func observerChapter(_ me: Process) async throws {
    let demo = try await ObserverDemo.start()
    let observer = try Observer(.init(port: 0, refresh: .milliseconds(200)))
    let server = Task { try await observer.run() }
    defer { server.cancel() }
    let port = await observer.waitUntilListening()
    print("  Observer(.init(port: 0)).run()  # \(await observer.url()): the page a person opens; below, what it reads")
    try await me.sleep(for: .milliseconds(600))   // let the demo's caller tick and its flood fill a mailbox

    let system = try await get(port, "/api/system")
    let schedulers = (system["schedulers"] as? [[String: Any]] ?? []).map { w in
        "sched-\(w["index"] ?? "?") \(String(format: "%.1f", (w["utilization"] as? Double ?? 0) * 100)) % busy"
    }
    print("  System: \(system["processCount"] ?? "?") processes, \(schedulers.joined(separator: ", ")), resident \((system["residentBytes"] as? Int ?? 0) / 1_048_576) MiB")

    let page = try await get(port, "/api/processes?sort=queue&order=desc&limit=3")
    print("  Processes, sorted by mailbox (of \(page["total"] ?? "?"); walked in \(String(format: "%.2f", page["walkMilliseconds"] as? Double ?? 0)) ms):")
    for row in page["rows"] as? [[String: Any]] ?? [] {
        let named = [row["name"], row["label"], row["behaviour"]].compactMap { $0 as? String }
        let who = named.isEmpty ? "(\(row["kind"] ?? "") process)" : named.joined(separator: " · ")
        print("    \(row["pid"] ?? "") \(who): mailbox \(row["queue"] ?? 0), reductions \(row["reductions"] ?? 0)")
    }

    let channels = try await get(port, "/api/channels")
    let described = (channels["channels"] as? [[String: Any]] ?? []).filter { ($0["name"] as? String ?? "").hasPrefix("demo-") }.map { c in
        "\(c["name"] ?? "") \(c["buffer"] ?? "") holds \(c["count"] ?? 0), \(c["pendingSends"] ?? 0) sends and \(c["pendingReceives"] ?? 0) receives waiting"
    }
    print("  Channels (those made with .observed(as:)): \(described.joined(separator: "; "))")

    let ticker = try requireTour(Process.whereis("demo-ticker"))
    let detail = try await get(port, "/api/processes/\(String(ticker.description.dropFirst().dropLast()))")
    print("  A GenServer's page: \(detail["name"] ?? "") links \(detail["links"] ?? []), state (sys:get_status) \(detail["state"] ?? "")")

    // Tracing, as erlang:trace/3 with recon_trace's limit: the ticker's next three receives.
    let trace = try Process.trace(ticker, [.receive, .send], limit: .total(4))
    while trace.isActive { try await me.sleep(for: .milliseconds(20)) }
    print("  Process.trace(ticker, [.receive, .send], limit: .total(4)), as the page's Tracing box does:")
    for e in trace.events { print("    \(e)") }

    let caller = try requireTour(try await demo.child("caller").pid)
    _ = try await Scheduler.shared.blocking.run {
        try LoopbackHTTP.request(port: port, method: "POST", path: "/api/processes/\(String(caller.description.dropFirst().dropLast()))/kill",
                                 headers: [("Content-Type", "application/json"), ("X-Parley-Observer", "1")], body: #"{"reason":"kill"}"#)
    }
    while try await demo.child("caller").pid == caller { try await me.sleep(for: .milliseconds(5)) }
    let trees = try await get(port, "/api/supervision")
    print("  Kill the caller from the page; the Supervision tab then shows:")
    func show(_ node: [String: Any], _ depth: Int) {
        let extra = (node["restarts"] as? Int ?? 0) > 0 ? " restarts \(node["restarts"]!), last exit \(node["lastExitReason"] ?? "")" : ""
        print("    " + String(repeating: "  ", count: depth) + "\(node["id"] ?? "") \(node["pid"] ?? "") \(node["type"] ?? "")\(extra)")
        for c in node["children"] as? [[String: Any]] ?? [] { show(c, depth + 1) }
    }
    for t in trees["trees"] as? [[String: Any]] ?? [] where t["id"] as? String == "demo" { show(t, 0) }

    let metrics = try await Scheduler.shared.blocking.run { try LoopbackHTTP.request(port: port, path: "/metrics") }
    let lines = metrics.body.split(separator: "\n").filter { $0.hasPrefix("parley_processes ") || $0.hasPrefix("parley_scheduler_utilization") }
    print("  /metrics for Prometheus: \(lines.joined(separator: "; "))")
    try await anotherNode()
    print("  `parley observer` serves it with this demo tree; open the address it prints.")
    Process.exit(demo.pid, .shutdown)
}

/// Another node's pages: two nodes of this OS process, one observing the other over a real
/// connection through the other's observer agent (the page's node picker does the same).
private func anotherNode() async throws {
    let suffix = UInt32.random(in: 0...UInt32.max)
    let a = try LocalNode(name: "tour_obs_a_\(suffix)@127.0.0.1")
    let b = try LocalNode(name: "tour_obs_b_\(suffix)@127.0.0.1")
    func stop() async {
        await a.stopDistribution()
        await b.stopDistribution()
    }
    do {
        for n in [a, b] { try await n.startDistribution(.init(name: n.name, cookie: "tour-observer")) }
        let agent = try Observer(.init(node: b))
        try agent.startAgent()
        let label = "b's worker"
        _ = try b.spawn(SpawnOptions(name: "tour_b_worker", label: label)) { me in _ = try await me.receive() }
        let observer = try Observer(.init(port: 0, node: a))
        let server = Task { try await observer.run() }
        defer { server.cancel() }
        let port = await observer.waitUntilListening()
        guard await a.ping(b.name) else { throw TourFailure("\(a.name) could not reach \(b.name)") }
        let t0 = MonotonicClock.now
        let system = try await get(port, "/api/system?node=\(b.name)")
        let ms = Double(MonotonicClock.now - t0) / 1e6
        let rows = try await get(port, "/api/processes?q=tour_b_worker&node=\(b.name)")["rows"] as? [[String: Any]] ?? []
        print("  Another node: the observer of \(a.name), with \(b.name) picked in its header (?node=),")
        print("    shows that node's pages, fetched over distribution from its observer agent (parley_observer):")
        print("    System: node \(system["node"] ?? "?"), \(system["processCount"] ?? "?") processes (\(String(format: "%.1f", ms)) ms);"
              + " Processes, searched there: \(rows.map { "\($0["pid"] ?? "") \($0["name"] ?? "") · \($0["label"] ?? "")" }.joined(separator: ", "))")
        withExtendedLifetime(agent) {}
    } catch {
        await stop()
        throw error
    }
    await stop()
}

private func get(_ port: Int, _ path: String) async throws -> [String: Any] {
    let reply = try await Scheduler.shared.blocking.run { try LoopbackHTTP.request(port: port, path: path) }
    guard reply.status == 200, let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any] else {
        throw TourFailure("GET \(path): \(reply.status) \(reply.body.prefix(200))")
    }
    return object
}

struct TourFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

private func requireTour<T>(_ value: T?, _ what: String = "a value") throws -> T {
    guard let value else { throw TourFailure("the tour expected \(what)") }
    return value
}
