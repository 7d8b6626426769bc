import Foundation
import Logging
import ParleyDistribution
@testable import ParleyObserver
import ServiceLifecycle
import ParleyOTP
import ParleyTestSupport
import Testing

@Suite("Observer: the HTTP API behind the page", .serialized, .timeLimit(.minutes(2)))
struct ObserverAPITests {
    @Test("System: node, schedulers (utilization 0...1 as scheduler:utilization/1), live process count, memory")
    func system() async throws {
        try await withObserver { _, port in
            let pids = (0..<5).map { _ in Process.spawn { me in _ = try await me.receive() } }
            defer { pids.forEach { Process.exit($0, .kill) } }
            let s = try json(try await http(port, "api/system"))
            let schedulers = try #require(s["schedulers"] as? [[String: Any]])
            #expect(schedulers.count == Scheduler.shared.count)
            for w in schedulers {
                let u = try #require(w["utilization"] as? Double)
                #expect((0...1).contains(u))
            }
            #expect((s["processCount"] as? Int ?? 0) >= 5)
            #expect((s["residentBytes"] as? Int ?? 0) > 0)
            #expect((s["node"] as? String)?.isEmpty == false, "the node's name (other suites may rename the default node meanwhile)")
        }
    }

    @Test("Processes: sorted by mailbox length, searched by name, paged on the server")
    func processTable() async throws {
        try await withObserver(.init(refresh: .milliseconds(1))) { _, port in
            let tag = "obs-\(UInt32.random(in: 0...UInt32.max))"
            let full = try Process.spawn(SpawnOptions(name: "\(tag)-full")) { me in try await me.sleep(for: .seconds(60)) }
            let quiet = try (0..<12).map { i in try Process.spawn(SpawnOptions(label: "\(tag)-quiet-\(i)")) { me in _ = try await me.receive() } }
            defer { ([full] + quiet).forEach { Process.exit($0, .kill) } }
            for i in 0..<300 { full.send(i) }
            #expect(await eventually { Process.info(full)?.messageQueueLength == 300 })

            // Searched by the tag: other suites' processes run beside this one.
            let byQueue = try json(try await http(port, "api/processes?q=\(tag)&sort=queue&order=desc&limit=1"))
            let top = try #require((byQueue["rows"] as? [[String: Any]])?.first)
            #expect(top["pid"] as? String == full.description, "the fullest mailbox comes first")
            #expect(top["queue"] as? Int == 300)

            let found = try json(try await http(port, "api/processes?q=\(tag)-QUIET&limit=5&sort=pid&order=asc"))
            #expect(found["matched"] as? Int == 12, "search is case-insensitive over names and labels")
            let page1 = (found["rows"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
            let page2 = (try json(try await http(port, "api/processes?q=\(tag)-quiet&limit=5&offset=5&sort=pid&order=asc"))["rows"]
                         as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
            #expect(page1.count == 5 && page2.count == 5)
            #expect(Set(page1).isDisjoint(with: page2))
            #expect(page1 == quiet.prefix(5).map(\.description), "ascending pids, first page")
        }
    }

    @Test("The table's top-k selection orders as a full sort does")
    func topK() {
        let values = (0..<2000).map { _ in Int.random(in: 0..<100) }
        for k in [1, 7, 50, 999, 1500] {
            #expect(ProcessTableCache.top(values, count: k, by: >) == Array(values.sorted(by: >).prefix(k)))
        }
    }

    @Test("Process page: links, monitors, the mailbox head in order, and a GenServer's state through formatStatus (sys:get_status)")
    func processPage() async throws {
        try await withObserver { _, port in
            let vault = try Vault().start()
            let vaultPid = try #require(vault.pid)
            defer { Process.exit(vaultPid, .kill) }
            let detail = try json(try await http(port, "api/processes/\(urlForm(vaultPid))"))
            #expect(detail["behaviour"] as? String == "gen_server")
            let state = try #require(detail["state"] as? String)
            #expect(state.contains("<redacted>") && !state.contains("sk_live_SECRET"), "formatStatus hides the key: \(state)")

            let sink = Process.spawn { me in try await me.sleep(for: .seconds(60)) }
            defer { Process.exit(sink, .kill) }
            for i in 0..<30 { sink.send("m\(i)") }
            // Parked again after the last delivery woke it: only a parked owner's own queue
            // can be read (a running one's is its own), so the page shows every message then.
            #expect(await eventually { Process.info(sink).map { $0.messageQueueLength == 30 && $0.status == .waiting } ?? false })
            let d = try json(try await http(port, "api/processes/\(urlForm(sink))"))
            let mailbox = try #require(d["mailbox"] as? [String])
            #expect(mailbox == (0..<ProcessDetail.mailboxHead).map { "m\($0)" }, "the first messages, oldest first, bounded")
            #expect(d["queue"] as? Int == 30)
            #expect(d["state"] == nil || d["state"] is NSNull, "a plain process has no behaviour state")
        }
    }

    @Test("A dead, unknown or malformed pid is 404")
    func unknownPid() async throws {
        try await withObserver { _, port in
            let dead = try Process.spawn { _ in }
            #expect(await eventually { Process.info(dead) == nil })
            #expect(try await http(port, "api/processes/\(urlForm(dead))").status == 404)
            #expect(try await http(port, "api/processes/1.2.3").status == 404)
            #expect(try await http(port, "api/processes/%3Cscript%3E").status == 404)
        }
    }

    @Test("Kill: needs the action header; sends the exit signal with the reason (a monitor sees it)")
    func kill() async throws {
        try await withObserver { _, port in
            let target = Process.spawn { me in _ = try await me.receive() }
            let reason = Locked<ExitReason?>(nil)
            let watcher = Process.spawn { me in
                let ref = me.monitor(target)
                let down = try await me.receive(DownMessage.self) { $0.ref == ref }
                reason.withLock { $0 = down.reason }
            }
            #expect(await eventually { Process.info(target)?.monitoredBy.contains(watcher) == true })
            let body = #"{"reason":"maintenance"}"#
            let refused = try await http(port, "POST", "api/processes/\(urlForm(target))/kill",
                                         headers: [("Content-Type", "application/json")], body: body)
            #expect(refused.status == 403)
            #expect(Process.info(target) != nil)
            let done = try await http(port, "POST", "api/processes/\(urlForm(target))/kill",
                                      headers: [("Content-Type", "application/json"), ("X-Parley-Observer", "1")], body: body)
            #expect(done.status == 200)
            #expect(await eventually { reason.withLock { $0 } != nil })
            #expect("\(reason.withLock { $0 }!)" == "\(ExitReason.custom("maintenance"))")
        }
    }

    @Test("Send: the process receives the text as a String")
    func send() async throws {
        try await withObserver { _, port in
            let got = Locked<String?>(nil)
            let target = Process.spawn { me in
                let s = try await me.receive(String.self)
                got.withLock { $0 = s }
            }
            let reply = try await http(port, "POST", "api/processes/\(urlForm(target))/send",
                                       headers: [("Content-Type", "application/json"), ("X-Parley-Observer", "1")],
                                       body: #"{"message":"hello from the page"}"#)
            #expect(reply.status == 200)
            #expect(await eventually { got.withLock { $0 } == "hello from the page" })
        }
    }

    @Test("allowActions: false refuses kill and send, and the process lives on")
    func readOnly() async throws {
        try await withObserver(.init(allowActions: false)) { _, port in
            let target = Process.spawn { me in _ = try await me.receive() }
            defer { Process.exit(target, .kill) }
            for action in ["kill", "send"] {
                let r = try await http(port, "POST", "api/processes/\(urlForm(target))/\(action)",
                                       headers: [("Content-Type", "application/json"), ("X-Parley-Observer", "1")],
                                       body: #"{"reason":"kill","message":"x"}"#)
                #expect(r.status == 403, "\(action)")
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(Process.info(target) != nil)
            #expect(Process.info(target)?.messageQueueLength == 0)
        }
    }

    @Test("Token: every request needs it (Bearer, cookie, or ?token= which sets the cookie and redirects); a wrong one is 401")
    func token() async throws {
        try await withObserver(.init(token: "t0k3n-for-tests")) { _, port in
            #expect(try await http(port, "api/system").status == 401)
            #expect(try await http(port, "/").status == 401)
            #expect(try await http(port, "metrics").status == 401)
            #expect(try await http(port, "api/system", headers: [("Authorization", "Bearer wrong-token-here")]).status == 401)
            #expect(try await http(port, "api/system", headers: [("Authorization", "Bearer t0k3n-for-tests")]).status == 200)
            let login = try await http(port, "/?token=t0k3n-for-tests")
            #expect(login.status == 303)
            let cookie = try #require(login.header("Set-Cookie"))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            #expect(login.header("Location") == "/", "the token leaves the address bar")
            let pair = String(cookie.split(separator: ";")[0])
            #expect(try await http(port, "api/system", headers: [("Cookie", pair)]).status == 200)
        }
    }

    @Test("Any address but loopback gets a token made for it; an empty token or a bad port is refused")
    func configuration() throws {
        let open = try Observer(.init(host: "0.0.0.0", port: 0))
        let token = try #require(open.token)
        #expect(token.count == 32 && token.allSatisfy(\.isHexDigit))
        #expect(try Observer(.init(host: "0.0.0.0", port: 0)).token != token, "made afresh each time")
        #expect(try Observer(.init(host: "127.0.0.1", port: 0)).token == nil)
        #expect(throws: ObserverError.emptyToken) { try Observer(.init(token: "")) }
        #expect(throws: ObserverError.invalidPort(70000)) { try Observer(.init(port: 70000)) }
    }

    @Test("Security headers: scripts from the observer only, no sniffing, no framing")
    func headers() async throws {
        try await withObserver { _, port in
            let page = try await http(port, "/")
            #expect(page.status == 200)
            let csp = try #require(page.header("Content-Security-Policy"))
            #expect(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"))
            #expect(page.header("X-Content-Type-Options") == "nosniff")
            #expect(!WebAssets.script.contains("innerHTML"), "the page never parses data as HTML")
        }
    }

    @Test("Supervision trees: nested supervisors expanded; a crashed child's restart count and last exit reason")
    func supervision() async throws {
        try await withObserver { _, port in
            let tag = "obs-sup-\(UInt32.random(in: 0...UInt32.max))"
            let sup = try await Supervisor.start([
                ChildSpec(id: "crasher") { me in try me.spawn(SpawnOptions(link: true)) { p in _ = try await p.receive() } },
                Supervisor.childSpec(id: "inner", [
                    ChildSpec(id: "leaf") { me in try me.spawn(SpawnOptions(link: true)) { p in _ = try await p.receive() } },
                ], strategy: .oneForOne),
            ], strategy: .oneForOne, name: .local(tag))
            defer { Process.exit(sup.pid, .kill) }
            let first = try await sup.child("crasher").pid!
            Process.exit(first, .custom("crash for the test"))
            #expect(try await eventually { try await sup.child("crasher").pid.map { $0 != first } ?? false })
            let reply = try json(try await http(port, "api/supervision"))
            let trees = try #require(reply["trees"] as? [[String: Any]])
            let mine = try #require(trees.first { $0["pid"] as? String == sup.pid.description })
            let children = try #require(mine["children"] as? [[String: Any]])
            let crasher = try #require(children.first { $0["id"] as? String == "crasher" })
            #expect(crasher["restarts"] as? Int == 1)
            #expect((crasher["lastExitReason"] as? String)?.contains("crash for the test") == true)
            let inner = try #require(children.first { $0["id"] as? String == "inner" })
            #expect((inner["children"] as? [[String: Any]])?.first?["id"] as? String == "leaf")
            #expect(!trees.contains { $0["pid"] as? String == inner["pid"] as? String }, "a nested supervisor is not a root")
        }
    }

    @Test("Metrics: Prometheus text with the scheduler, process and memory series")
    func metrics() async throws {
        try await withObserver { _, port in
            let r = try await http(port, "metrics")
            #expect(r.status == 200)
            #expect(r.header("Content-Type")?.hasPrefix("text/plain") == true)
            for series in ["parley_processes ", "parley_scheduler_utilization{scheduler=\"0\"}", "parley_scheduler_jobs_total{scheduler=\"0\"}",
                           "parley_memory_resident_bytes ", "# TYPE parley_scheduler_steals_total counter"] {
                #expect(r.body.contains(series), "\(series)")
            }
        }
    }

    @Test("Cluster: each connection with its state, type, address and traffic (net_kernel:node_info/1), live in the system sample and as Prometheus counters per node")
    func cluster() async throws {
        try await withTwoNodes { b, c in
            try await withObserver(.init(node: b)) { _, port in
                let before = try json(try await http(port, "api/system"))
                #expect(before["distributed"] as? Bool == true)
                #expect((before["peers"] as? [Any])?.isEmpty == true)

                #expect(await b.ping(c.name))
                let sink = try c.spawn(SpawnOptions(name: "obs_sink")) { me in for _ in 0..<50 { _ = try await me.receive() } }
                try await b.run { p in for i in 0..<50 { p.send(Term.integer(i), to: "obs_sink", on: Node.named(c.name)) } }
                #expect(await eventually { !sink.isAlive })

                let s = try json(try await http(port, "api/system"))
                let peer = try #require((s["peers"] as? [[String: Any]])?.first)
                #expect(peer["name"] as? String == c.name)
                #expect(["up", "silent"].contains(peer["state"] as? String ?? ""))
                #expect(peer["hidden"] as? Bool == true)
                #expect((peer["address"] as? String)?.hasPrefix("127.0.0.1:") == true)
                #expect((peer["framesOut"] as? Int ?? 0) >= 51, "ping's call and 50 messages")
                #expect((peer["framesIn"] as? Int ?? 0) >= 1, "ping's reply")
                #expect((peer["bytesOut"] as? Int ?? 0) > 50 * 6)

                let m = try await http(port, "metrics")
                #expect(m.body.contains("parley_distribution_frames_total{node=\"\(c.name)\",direction=\"out\"}")
                        || m.body.contains("parley_distribution_frames_total{direction=\"out\",node=\"\(c.name)\"}"), "\(m.body.suffix(600))")
                #expect(m.body.contains("parley_distribution_connections 1"))
            }
        }
    }

    @Test("Channels: the channels that opted into introspection, with buffer, fill and waiters; text in a name stays text in JSON")
    func channels() async throws {
        try await withObserver { _, port in
            let name = "obs-chan-<b>\(UInt32.random(in: 0...UInt32.max))</b>"
            let ch = Channel<Int>(buffer: .fixed(4)).observed(as: name)
            for i in 0..<3 { #expect(ch.offer(i)) }
            let reply = try json(try await http(port, "api/channels"))
            let row = try #require((reply["channels"] as? [[String: Any]])?.first { $0["name"] as? String == name })
            #expect(row["buffer"] as? String == "fixed(4)")
            #expect(row["capacity"] as? Int == 4 && row["count"] as? Int == 3)
            #expect(row["pendingSends"] as? Int == 0 && row["isClosed"] as? Bool == false)
            withExtendedLifetime(ch) {}
        }
    }

    @Test("Tracing: start needs the action header; events arrive (receive with the message as text), the rate limit stops it, and the download is one JSON event per line")
    func tracing() async throws {
        try await withObserver { _, port in
            let target = Process.spawn { me in while true { _ = try await me.receive() } }
            defer { Process.exit(target, .kill) }
            let path = "api/processes/\(urlForm(target))/trace"
            let body = #"{"flags":["receive"],"limit":5,"perSeconds":60}"#
            let refused = try await http(port, "POST", path, headers: [("Content-Type", "application/json")], body: body)
            #expect(refused.status == 403)
            #expect(Process.traceSession(of: target) == nil)
            let bad = try await http(port, "POST", path, headers: [("Content-Type", "application/json"), ("X-Parley-Observer", "1")],
                                     body: #"{"flags":["calls"],"limit":5}"#)
            #expect(bad.status == 400, "an unknown flag is refused")
            let started = try await http(port, "POST", path, headers: [("Content-Type", "application/json"), ("X-Parley-Observer", "1")], body: body)
            #expect(started.status == 200)
            for i in 0..<20 { target.send("m\(i) <script>") }
            #expect(await eventually { Process.traceSession(of: target) == nil }, "more than 5 events a minute: stopped")
            let reply = try json(try await http(port, path))
            #expect(reply["active"] as? Bool == false)
            #expect((reply["stopReason"] as? String)?.hasPrefix("rate limit") == true)
            let events = try #require(reply["events"] as? [[String: Any]])
            #expect(events.count == 6 && events.first?["kind"] as? String == "receive" && events.last?["kind"] as? String == "stopped")
            #expect(events.first?["detail"] as? String == "m0 <script>", "as text: the page shows it with textContent")
            let after = try json(try await http(port, path + "?after=5"))
            #expect((after["events"] as? [[String: Any]])?.count == 1)
            let download = try await http(port, path + "/download")
            #expect(download.status == 200 && download.header("Content-Disposition")?.hasPrefix("attachment") == true)
            #expect(download.body.split(separator: "\n").count == 6)
            let missing = try await http(port, "api/processes/0.999999.0/trace")
            #expect(missing.status == 404)
        }
    }

    @Test("The observer is a swift-service-lifecycle Service: in a ServiceGroup, the group's graceful shutdown stops it")
    func serviceGroup() async throws {
        let observer = try Observer(.init(port: 0))
        let group = ServiceGroup(configuration: .init(services: [observer], gracefulShutdownSignals: [], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let port = await observer.waitUntilListening()
        #expect(try await http(port, "api/config").status == 200)
        await group.triggerGracefulShutdown()
        // The group returns once the observer has shut down (bounded: a hang fails the suite's time limit).
        _ = try? await running.value
        let refused = (try? await http(port, "api/config")) == nil
        #expect(refused, "the server stopped listening")
    }
    @Test("Another node's pages: with ?node=, a connected node's data comes from its observer agent over distribution (as Erlang's observer reads a node through observer_backend); actions pass this observer's checks and the other node's; no agent, or no connection, is a clear error")
    func remoteNode() async throws {
        try await withTwoNodes { b, c in
            try await withObserver(.init(node: b)) { observer, port in
                #expect(await b.ping(c.name))
                let none = try await http(port, "api/system?node=\(c.name)")
                #expect(none.status == 502 && none.body.contains("runs no observer agent"), "\(none.status) \(none.body)")
                #expect(try await http(port, "api/live?node=\(c.name)").status == 502, "a stream too: an error, not an empty stream")
                #expect(try await http(port, "api/system?node=nobody@127.0.0.1").status == 404)

                // Whatever answers as parley_observer there, only data is served from this origin.
                let fake = try c.spawn(SpawnOptions(name: "parley_observer"), state: ()) { _, message, _ in
                    if let call = message as? Gen.CallMessage {
                        Gen.reply(call.from, Term.tuple([.atom("http"), .integer(200), .binary(Array("text/html".utf8)),
                                                         .binary(Array("<script>alert(1)</script>".utf8))]))
                    }
                    return .continue
                }
                let page = try await http(port, "api/system?node=\(c.name)")
                #expect(page.status == 502 && !page.body.contains("<script>"), "\(page.status) \(page.body)")
                Process.exit(fake, .kill)
                #expect(await eventually { c.whereis("parley_observer") == nil })

                // c serves no page, but answers other nodes' observers, read-only first.
                let readOnly = try Observer(.init(allowActions: false, node: c))
                let firstAgent = try readOnly.startAgent()
                #expect(c.whereis("parley_observer") == firstAgent)
                #expect(try readOnly.startAgent() == firstAgent, "once per observer")
                let nodes = try json(try await http(port, "api/nodes"))
                #expect(nodes["node"] as? String == b.name && (nodes["connected"] as? [String])?.contains(c.name) == true)
                let systemReply = try await http(port, "api/system?node=\(c.name)")
                #expect(systemReply.status == 200, "\(systemReply.status) \(systemReply.body.prefix(300))")
                let system = try json(systemReply)
                #expect(system["node"] as? String == c.name)
                #expect(try json(try await http(port, "api/system"))["node"] as? String == b.name)
                // The live stream of c: c's samples, polled over the wire.
                let live = try await Scheduler.shared.blocking.run {
                    try LoopbackHTTP.request(port: port, path: "/api/live?node=\(c.name)", until: { $0.contains("event: system") && $0.contains("\"uptimeSeconds\"") })
                }
                #expect(live.header("Content-Type") == "text/event-stream" && live.body.contains(c.name), "\(live.body.prefix(300))")

                // A process of c: in c's table, not in b's; its page; c refuses to kill it.
                let tag = "remote-\(UInt32.random(in: 0...UInt32.max))"
                let worker = try c.spawn(SpawnOptions(label: tag)) { me in while true { _ = try await me.receive() } }
                let rows = try #require(try json(try await http(port, "api/processes?q=\(tag)&node=\(c.name)"))["rows"] as? [[String: Any]])
                #expect(rows.count == 1)
                #expect((try json(try await http(port, "api/processes?q=\(tag)"))["rows"] as? [Any])?.isEmpty == true)
                let pidText = try #require(rows.first?["pid"] as? String).filter { $0 != "<" && $0 != ">" }
                let detail = try json(try await http(port, "api/processes/\(pidText)?node=\(c.name)"))
                #expect(detail["label"] as? String == tag)
                #expect(try await http(port, "api/processes/\(pidText)/trace/stream?node=\(c.name)").status == 404, "no trace there: 404, not an empty stream")
                let kill = "api/processes/\(pidText)/kill?node=\(c.name)"
                let plain = [("Content-Type", "application/json")]
                let action = plain + [("X-Parley-Observer", "1")]
                #expect(try await http(port, "POST", kill, headers: plain, body: #"{"reason":"kill"}"#).status == 403, "this observer's action header")
                let refused = try await http(port, "POST", kill, headers: action, body: #"{"reason":"kill"}"#)
                #expect(refused.status == 403 && refused.body.contains("switched off"), "c's observer is read-only: \(refused.body)")
                #expect(worker.isAlive)

                // c's agent replaced by one that allows actions: send, trace and kill through b.
                Process.exit(firstAgent, .kill)
                #expect(await eventually { c.whereis("parley_observer") == nil })
                let writable = try Observer(.init(node: c))
                try writable.startAgent()
                let trace = "api/processes/\(pidText)/trace?node=\(c.name)"
                let started = try await http(port, "POST", trace, headers: action, body: #"{"flags":["receive"],"limit":10}"#)
                #expect(started.status == 200, "\(started.body)")
                let sent = try await http(port, "POST", "api/processes/\(pidText)/send?node=\(c.name)", headers: action, body: #"{"message":"over the wire"}"#)
                #expect(sent.status == 200, "\(sent.body)")
                let traced = try await eventually(every: .milliseconds(50)) {
                    let t = try json(try await http(port, "api/processes/\(pidText)/trace?node=\(c.name)&after=0"))
                    return ((t["events"] as? [[String: Any]]) ?? []).contains { ($0["detail"] as? String)?.contains("over the wire") == true }
                }
                #expect(traced, "the receive event, read through b")
                // Stopped, the stream from c gives its events and the stop, then ends.
                #expect(try await http(port, "POST", "api/processes/\(pidText)/trace/stop?node=\(c.name)", headers: action).status == 200)
                let stream = try await http(port, "api/processes/\(pidText)/trace/stream?node=\(c.name)")
                #expect(stream.body.contains("over the wire") && stream.body.contains("\"stopped\""), "\(stream.body.prefix(400))")
                let download = try await http(port, "api/processes/\(pidText)/trace/download?node=\(c.name)")
                #expect(download.status == 200 && download.header("Content-Disposition")?.contains(".ndjson") == true)
                #expect(download.body.contains("over the wire"))
                #expect(try await http(port, "POST", kill, headers: action, body: #"{"reason":"kill"}"#).status == 200)
                #expect(await eventually { !worker.isAlive })
                withExtendedLifetime((observer, readOnly, writable)) {}
            }
        }
    }

    @Test("From Erlang: the agent is a plain gen_server call, {http, Method, Path, Action, Body} answered with {http, Status, ContentType, Body}; anything else is {error, badarg}",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/erl")))
    func agentFromErlang() async throws {
        let epmd = Browser.freePort()
        let b = try LocalNode(name: "obs_erl_b_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1")
        var config = Distribution.Configuration(name: b.name, cookie: "observer-test")
        config.epmdPort = epmd
        config.embeddedEPMDAddress = "127.0.0.1"
        try await b.startDistribution(config)
        defer { Task { await b.stopDistribution() } }
        let agent = try Observer(.init(node: b))
        try agent.startAgent()
        let script = """
            B = '\(b.name)',
            {http, S, CT, Body} = gen_server:call({parley_observer, B}, {http, <<"GET">>, <<"/api/system">>, false, <<>>}),
            io:format("status=~p type=~s node_named=~p~n", [S, CT, binary:match(Body, atom_to_binary(B)) =/= nomatch]),
            {http, S2, _, _} = gen_server:call({parley_observer, B}, {http, <<"GET">>, <<"/api/processes/0.999999.0">>, false, <<>>}),
            io:format("missing=~p~n", [S2]),
            io:format("bad=~p~n", [gen_server:call({parley_observer, B}, hello)]),
            halt().
            """
        let erl = try await runChild(["/usr/bin/erl", "-name", "obs_erl_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1", "-setcookie", "observer-test",
                                      "-noshell", "-eval", script], environment: ["ERL_EPMD_PORT": "\(epmd)"], timeout: .seconds(30))
        let text = erl.output
        #expect(text.contains("status=200 type=application/json; charset=utf-8 node_named=true"), "erl printed: \(text)")
        #expect(text.contains("missing=404"), "erl printed: \(text)")
        #expect(text.contains("bad={error,badarg}"), "erl printed: \(text)")
        withExtendedLifetime(agent) {}
    }

}
