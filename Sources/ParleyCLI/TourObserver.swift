import Foundation
import Parley
import ParleyObserver
import ParleyOTP

// Chapter 12: the observer. The same JSON a browser's page reads, fetched over HTTP from an
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
    print("  `parley observer` serves it with this demo tree; open the address it prints.")
    Process.exit(demo.pid, .shutdown)
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
