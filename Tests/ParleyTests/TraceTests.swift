@testable import Parley
import Testing

/// Tracing a process, as `erlang:trace(Pid, true, [send, 'receive', procs])` does; checked
/// against OTP 25: a traced process that receives `go`, sends `hello`, spawns and links a
/// child, unlinks it and exits with `boom` reports, in order, `'receive' go`, `send hello`,
/// `spawn`, `link`, `unlink`, `exit boom`; one killed reports `exit killed`.
/// Limits follow recon_trace: a count, or a rate, after which tracing stops by itself.
@Suite("Tracing (erlang:trace/3, recon_trace's limits)", .serialized, .timeLimit(.minutes(1)))
struct TraceTests {
    /// Waits until `session` has stopped.
    func stopped(_ session: TraceSession) async -> Bool { await eventually { !session.isActive } }

    @Test("send, receive and procs events come in the order OTP 25 reports them, and the trace ends with the process's exit")
    func lifeInOrder() async throws {
        let events = try await Process.run { me -> [TraceEvent] in
            let parent = me.pid
            let traced = me.spawn { p in
                _ = try await p.receive(String.self)                       // go
                p.send("hello", to: parent)
                let child = p.spawnLink { c in try await c.sleep(for: .milliseconds(10)) }
                p.unlink(child)
                throw ProcessExit(.custom("boom"))
            }
            let session = try Process.trace(traced, .all, limit: .total(100))
            traced.send("go")
            #expect(try await me.receive(String.self) == "hello")
            #expect(await stopped(session))
            return session.events
        }
        let kinds = events.map(\.kind)
        #expect(kinds == [.receive, .send, .spawn, .link, .unlink, .exit, .stopped], "\(events)")
        #expect(events[0].detail == "go")
        #expect(events[1].detail == "hello")
        #expect(events[2].other == events[3].other && events[3].other == events[4].other, "the child's pid")
        #expect(events[5].detail?.contains("boom") == true)
        #expect(events.last?.detail == "the process exited")
        #expect(events.map(\.sequence) == Array(1...7))
        #expect(events[1].description.hasPrefix("{trace, \(events[1].pid), send, hello, <"))
    }

    @Test("exit(Pid, kill) on a traced process reports exit killed (OTP 25), and no receive event for the signal")
    func killed() async throws {
        let victim = Process.spawn { p in _ = try await p.receive() }
        let session = try Process.trace(victim, [.receive, .procs])
        Process.exit(victim, .kill)
        #expect(await stopped(session))
        #expect(session.events.map(\.kind) == [.exit, .stopped])
        #expect(session.events.first?.detail == ExitReason.killed.description)
    }

    @Test("Only the chosen flags are reported: receive only leaves sends and links out")
    func flags() async throws {
        let sink = Process.spawn { p in while true { _ = try await p.receive() } }
        defer { Process.exit(sink, .kill) }
        let echo = try Process.spawn(state: ()) { _, message, me in
            me.send(message, to: sink)
            return .continue
        }
        defer { Process.exit(echo, .kill) }
        let session = try Process.trace(echo, .receive, limit: .total(10))
        for i in 0..<3 { echo.send(i) }
        _ = await eventually { session.events.count >= 3 }
        #expect(session.events.map(\.kind) == [.receive, .receive, .receive])
        #expect(session.events.map(\.detail) == ["0", "1", "2"], "a callback process's messages, in order")
        session.stop()
        #expect(!session.isActive && session.stopReason == "stopped")
        echo.send(99)
        try await Task.sleep(for: .milliseconds(50))
        #expect(session.events.count == 4, "nothing after stop but its own event")
    }

    @Test("recon_trace's count limit: after n events tracing stops by itself, with a stopped event that says why")
    func totalLimit() async throws {
        let sink = Process.spawn { p in while true { _ = try await p.receive() } }
        defer { Process.exit(sink, .kill) }
        let session = try Process.trace(sink, .receive, limit: .total(5))
        for i in 0..<50 { sink.send(i) }
        #expect(await stopped(session))
        #expect(session.events.filter { $0.kind == .receive }.count == 5)
        #expect(session.stopReason == "limit: 5 events")
        #expect(Process.traceSession(of: sink) == nil, "the process forgot it")
        #expect(sink.isAlive, "stopping a trace leaves the process alone")
    }

    @Test("recon_trace's rate limit: more than n events within the window stops tracing (a flood cannot swamp the node)")
    func rateLimit() async throws {
        let sink = Process.spawn { p in while true { _ = try await p.receive() } }
        defer { Process.exit(sink, .kill) }
        let session = try Process.trace(sink, .receive, limit: .rate(20, per: .seconds(10)))
        for i in 0..<10_000 { sink.send(i) }
        #expect(await stopped(session))
        #expect(session.events.filter { $0.kind == .receive }.count == 20)
        #expect(session.stopReason?.hasPrefix("rate limit: more than 20 events") == true)
    }

    @Test("A reply to the traced process counts as received, its request as sent; onEvent sees each event as it happens")
    func callReplyAndCallback() async throws {
        let seen = Locked<[TraceEvent.Kind]>([])
        let server = try Process.spawn(state: 0) { n, message, me in
            if let (from, _) = message as? (Pid, Int) { me.send(n, to: from) }
            return .continue
        }
        defer { Process.exit(server, .kill) }
        let result = try await Process.run { me -> [TraceEvent] in
            let session = try Process.trace(me.pid, [.send, .receive], onEvent: { e in seen.withLock { $0.append(e.kind) } })
            me.send((me.pid, 1), to: server)
            _ = try await me.receive(Int.self)
            session.stop()
            return session.events
        }
        #expect(result.map(\.kind) == [.send, .receive, .stopped])
        #expect(seen.withLock { $0 } == [.send, .receive, .stopped])
    }

    @Test("Tracing a dead pid is noproc; a new trace replaces the running one, which stops")
    func errorsAndReplacement() async throws {
        let dead = Process.spawn { _ in }
        for _ in 0..<500 where dead.isAlive { try await Task.sleep(for: .milliseconds(10)) }
        #expect(throws: ProcessError.noproc(dead)) { try Process.trace(dead) }
        let p = Process.spawn { p in _ = try await p.receive() }
        defer { Process.exit(p, .kill) }
        let first = try Process.trace(p, .receive)
        let second = try Process.trace(p, .receive)
        #expect(!first.isActive && first.stopReason == "replaced by a new trace")
        #expect(second.isActive && Process.traceSession(of: p) === second)
        second.stop()
        #expect(Process.traceSession(of: p) == nil)

        // A negative rate window is taken as zero (as every Duration the runtime converts), not a trap.
        let odd = try Process.trace(p, .receive, limit: .rate(1_000, per: .seconds(-1)))
        p.send("still traced")
        #expect(await eventually { odd.events.first?.detail == "still traced" })
        odd.stop()
    }

    @Test("Senders on many threads, a stop and a kill racing: every session ends once, with one stopped event last, and no process keeps a session (run under the thread sanitizer in CI)")
    func races() async throws {
        for round in 0..<20 {
            let target = Process.spawn { p in while true { _ = try await p.receive() } }
            let session = try Process.trace(target, .all, limit: .rate(1_000, per: .seconds(1)))
            await withTaskGroup(of: Void.self) { group in
                for t in 0..<3 {
                    group.addTask {
                        _ = try? await Process.run { me in for i in 0..<200 { me.send(t * 1000 + i, to: target) } }
                    }
                }
                group.addTask { if round % 2 == 0 { session.stop() } else { Process.exit(target, .kill) } }
            }
            Process.exit(target, .kill)
            #expect(await stopped(session))
            let events = session.events
            #expect(events.filter { $0.kind == .stopped }.count == 1)
            #expect(events.last?.kind == .stopped)
            #expect(events.map(\.sequence) == Array(1...events.count))
            #expect(Process.traceSession(of: target) == nil)
        }
    }
}
