import Foundation
import Synchronization
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

extension DistributionTests {
/// Three Parley nodes as separate OS processes on loopback: this test process and two
/// test node processes (`Tests/ParleyTestNode`; the three-node test puts each on its own loopback address).
@Suite("Parley cluster", .serialized)
struct ParleyClusterTests {
    @Test("Three Parley nodes on three loopback addresses (127.0.0.1, .2, .3): calls to each node's counter, and a message relayed node to node over a connection made on demand")
    func threeNodes() async throws {
        let me = try await Cluster.node()
        let n2 = try await ExternalNode.parley(host: "127.0.0.2")
        let n3 = try await ExternalNode.parley(host: "127.0.0.3")
        defer { n2.kill(); n3.kill() }
        #expect(Set(Distribution.nodes).isSuperset(of: [n2.name, n3.name]))

        // GenServer calls (gen_server wire shapes between Parley nodes).
        #expect(try await Gen.call("counter", on: Node.named(n2.name), Term.tuple([.atom("add"), 2])) as? Term == 2)
        #expect(try await Gen.call("counter", on: Node.named(n3.name), Term.tuple([.atom("add"), 30])) as? Term == 30)
        Gen.cast("counter", on: Node.named(n2.name), Term.atom("reset"))
        #expect(await eventually { (try? await Gen.call("counter", on: Node.named(n2.name), Term.atom("get"))) as? Term == 0 })

        // n2's echo sends to a process on n3 that forwards to us: n2 connects to n3 on demand.
        let relayed = try await Process.run { (p: Parley.Process) async throws -> Term in
            let forwarder = try await Distribution.spawn(on: n3.name, "forward", args: .pid(p.pid))
            #expect(forwarder.nodeName == n3.name)
            p.send(Term.tuple([.pid(forwarder), .string("through n2 and n3")]), to: "echo", on: Node.named(n2.name))
            return try await p.receive(Term.self)
        }
        #expect(relayed == .string("through n2 and n3"))
        _ = me
    }

    @Test("A call to another node whose request has no term form (neither Term nor Codable) fails at once with badRequest, by pid and by name, instead of waiting for its timeout; the connection stays up")
    func unencodableCall() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley(host: "127.0.0.2")
        defer { n2.kill() }
        struct NoTermForm: Sendable { let x = 1 }
        let remote = try await Process.run { (p: Parley.Process) async throws -> Pid in
            try await Distribution.spawn(on: n2.name, "forward", args: .pid(p.pid))
        }
        #expect(remote.nodeName == n2.name)
        let t0 = ContinuousClock.now
        for target in ["by name", "by pid"] {
            do {
                if target == "by name" {
                    _ = try await Gen.call("counter", on: Node.named(n2.name), NoTermForm(), timeout: .seconds(30))
                } else {
                    _ = try await Gen.call(remote, NoTermForm(), timeout: .seconds(30))
                }
                Issue.record("\(target): a request with no term form was answered")
            } catch {
                guard case .badRequest(let why) = error else { Issue.record("\(target): expected badRequest, got \(error)"); continue }
                #expect(why.contains("NoTermForm"), "\(target): \(why)")
            }
        }
        #expect(ContinuousClock.now - t0 < .seconds(10), "at once, not after the 30 s timeout")
        #expect(try await Gen.call("counter", on: Node.named(n2.name), Term.atom("get")) as? Term != nil, "the connection still serves calls")
    }

    @Test("Remote spawn with a link: killing the other node's OS process delivers noconnection to the linked process, and nodedown")
    func remoteSpawnLinkAndNodeLoss() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        let (exit, nodedown) = try await Process.run { (p: Parley.Process) async throws -> (ExitMessage, Term) in
            p.trapExit = true
            Distribution.monitorNodes(p.pid)
            defer { Distribution.monitorNodes(p.pid, false) }
            let pong = try await Distribution.spawn(on: n2.name, "pong", linkedTo: p.pid)
            // The spawned process works (remote-pp's shape) before its node dies.
            p.send(Term.tuple([.pid(p.pid), 7]), to: pong)
            #expect(try await p.receive(Term.self) == 7)
            n2.kill()
            let e = try await p.receive(ExitMessage.self)
            let d = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("nodedown") }; return false }
            #expect(e.from == pong)
            return (e, d)
        }
        #expect(exit.reason.description == "noconnection")
        #expect(nodedown == .tuple([.atom("nodedown"), .atom(Atom(n2.name))]))
    }

    @Test("A process woken by a message from another node runs on the connection's I/O thread (as the BEAM's polling scheduler runs it); a burst it sends from there arrives whole and in order (per-pair ordering)")
    func wokenFromTheWireRunsOnTheIOThread() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        let n = 20_000
        let (thread, inOrder) = try await Process.run { (me: Parley.Process) async throws -> (String, Bool) in
            let top = me.pid
            // Q checks that the burst comes back through n2 whole and in order.
            let q = spawnOrderChecker(me, count: n, reportTo: top)
            let toQ = try await Distribution.spawn(on: n2.name, "forward", args: .pid(q))
            // P waits for `go` from n2, then sends the whole burst without waiting once.
            let p = me.spawn { p in
                _ = try await p.receive(Term.self) { $0 == .atom("go") }
                // The calling thread's name, as the kernel has it (Linux).
                let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "unknown"
                p.send(Term.tuple([.atom("thread"), .string(name)]), to: top)
                for i in 0..<n { p.send(Term.integer(i), to: toQ) }
            }
            let toP = try await Distribution.spawn(on: n2.name, "forward", args: .pid(p))
            me.send(Term.atom("go"), to: toP)
            let t = try await me.receive(Term.self) { if case .tuple(let x) = $0 { return x.first == .atom("thread") }; return false }
            let o = try await me.receive(Term.self, after: .seconds(60)) { if case .tuple(let x) = $0 { return x.first == .atom("ordered") }; return false }
            guard case .tuple(let tt) = t, case .tuple(let oo)? = o else { return ("", false) }
            return (tt[1].stringValue ?? "", oo[1] == .atom("true"))
        }
        // SwiftNIO names its event loop threads NIO-ELT-…; Parley's own are parley-sched-….
        #expect(thread.hasPrefix("NIO-ELT"), "woken on \(thread)")
        #expect(inOrder)
    }

    @Test("busy_dist_port (dist_buf_busy_limit, 1 MiB): a sender to a node that stops reading is held once the limit is queued, not left to fill memory; it goes on when the node reads again, and every message arrives in order. Losing the connection releases a held sender")
    func busyConnectionHoldsTheSender() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        let n = 2000
        let size = 16 << 10  // 2000 × 16 KiB = 32 MiB, far past the limit and the kernel's socket buffers
        let payload = Term.binary(Array(repeating: 7, count: size))
        let result = try await Process.run { (me: Parley.Process) async throws -> (held: Int, ordered: Bool, releasedAfterLoss: Bool) in
            let top = me.pid
            // Q counts what comes back through n2 and checks the order.
            let q = spawnOrderChecker(me, count: n, reportTo: top)
            let forward = try await Distribution.spawn(on: n2.name, "forward", args: .pid(q))

            // n2 stops reading: SIGSTOP its OS process. The sender is a plain thread (it may
            // be held; a scheduler thread would be too, but the tests share two of them).
            let send: @Sendable (Int) -> Void = { i in forward.send(Term.tuple([.integer(i), payload])) }
            kill(n2.process.processIdentifier, SIGSTOP)
            let sender = SenderThread(count: n, send)
            // Held: the count stops moving well before all 32 MiB are queued. (Stay well
            // inside the 4 s net tick timeout, which would close the connection.)
            let held = await sender.countOnceStill() ?? -1
            kill(n2.process.processIdentifier, SIGCONT)
            let o = try await me.receive(Term.self, after: .seconds(60)) { if case .tuple(let x) = $0 { return x.first == .atom("ordered") }; return false }
            let ordered = o == .tuple([.atom("ordered"), .atom("true")])
            #expect(await sender.waitDone(within: .seconds(30)))

            // Held again, then the node dies: the held sender goes on (its messages are
            // dropped, as messages to a node we cannot reach are).
            kill(n2.process.processIdentifier, SIGSTOP)
            let second = SenderThread(count: n, send)
            _ = await second.countOnceStill()
            n2.kill()
            let released = await second.waitDone(within: .seconds(30))
            return (held, ordered, released)
        }
        #expect(result.held > 0 && result.held * size < 16 << 20, "sender held after \(result.held) messages")
        #expect(result.ordered)
        #expect(result.releasedAfterLoss)
    }

    @Test("busy_dist_port suspends the sender (erlang:send_nosuspend/2's docs: a send to a busy distribution port suspends the caller; checked on OTP 25, where the sender's status reads suspended): sendSuspending from a process woken on the connection's I/O thread stops once about the limit is queued and gives the thread back (another node's round trip goes through that thread meanwhile), goes on when the node reads again, and every message arrives in order")
    func sendSuspendingFromTheIOThread() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        let n3 = try await ExternalNode.parley()
        defer { n3.kill() }
        let n = 2000
        let size = 16 << 10  // 2000 × 16 KiB = 32 MiB, far past the 1 MiB limit and the socket buffers
        let payload = Term.binary(Array(repeating: 7, count: size))
        let sent = Locked(0)
        let stopped = n2.process.processIdentifier
        let result = try await Process.run { (me: Parley.Process) async throws -> (woken: String, held: Int, roundTrip: Bool, ordered: Bool) in
            let top = me.pid
            // Q checks that the burst comes back through n2 whole and in order.
            let q = spawnOrderChecker(me, count: n, reportTo: top)
            let toQ = try await Distribution.spawn(on: n2.name, "forward", args: .pid(q))
            let pong = try await Distribution.spawn(on: n3.name, "pong")
            // P is woken on the I/O thread by `go` from n2, stops n2 (SIGSTOP: it no longer
            // reads), then sends the whole burst with sendSuspending.
            let p = me.spawn { p in
                _ = try await p.receive(Term.self) { $0 == .atom("go") }
                let thread = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "unknown"
                p.send(Term.tuple([.atom("thread"), .string(thread)]), to: top)
                kill(stopped, SIGSTOP)
                for i in 0..<n {
                    await p.sendSuspending(Term.tuple([.integer(i), payload]), to: toQ)
                    sent.withLock { $0 += 1 }
                }
            }
            let toP = try await Distribution.spawn(on: n2.name, "forward", args: .pid(p))
            me.send(Term.atom("go"), to: toP)
            let t = try await me.receive(Term.self) { if case .tuple(let x) = $0 { return x.first == .atom("thread") }; return false }
            // Suspended: the count stops moving well before the 32 MiB are queued (inside the
            // 4 s net tick timeout, which would close the connection).
            let held = await countOnceStill { sent.withLock { $0 } } ?? -1
            // The I/O thread is free meanwhile: a round trip to n3 goes through it.
            me.send(Term.tuple([.pid(me.pid), 1]), to: pong)
            let roundTrip = try await me.receive(Term.self, after: .seconds(3)) { $0 == 1 } != nil
            kill(stopped, SIGCONT)
            let o = try await me.receive(Term.self, after: .seconds(60)) { if case .tuple(let x) = $0 { return x.first == .atom("ordered") }; return false }
            guard case .tuple(let tt) = t else { return ("", held, roundTrip, false) }
            return (tt[1].stringValue ?? "", held, roundTrip, o == .tuple([.atom("ordered"), .atom("true")]))
        }
        kill(stopped, SIGCONT)
        // SwiftNIO names its event loop threads NIO-ELT-…; Parley's own are parley-sched-….
        #expect(result.woken.hasPrefix("NIO-ELT"), "woken on \(result.woken)")
        #expect(result.held > 0 && result.held * size < 16 << 20, "sender suspended after \(result.held) messages")
        #expect(result.roundTrip)
        #expect(result.ordered)
        #expect(sent.withLock { $0 } == n)
    }

    @Test("A process killed while sendSuspending waits sends nothing more and ends at once (Erlang: exit(Pid, kill) ends a process suspended on a busy port, and it sends nothing after; checked on OTP 25 with the receiver stopped): its task finishes while the node still does not read, and only what it sent before the kill arrives")
    func killedWhileSuspendedSendsNothing() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        let size = 16 << 10
        let payload = Term.binary(Array(repeating: 7, count: size))
        let sent = Locked(0), finished = Locked(false)
        let stopped = n2.process.processIdentifier
        let (before, ended, arrived) = try await Process.run { (me: Parley.Process) async throws -> (Int, Bool, Int) in
            let toMe = try await Distribution.spawn(on: n2.name, "forward", args: .pid(me.pid))
            kill(stopped, SIGSTOP)
            let p = me.spawn { p in
                defer { finished.withLock { $0 = true } }
                for i in 0..<2000 {
                    await p.sendSuspending(Term.tuple([.integer(i), payload]), to: toMe)
                    sent.withLock { $0 += 1 }
                }
            }
            _ = await countOnceStill { sent.withLock { $0 } }
            let before = sent.withLock { $0 }  // it is suspended: no more until the kill
            Process.exit(p, .kill)
            // The kill resumes its suspended send, which sends nothing, and so do the rest:
            // its task ends though n2 still reads nothing.
            let ended = await eventually { finished.withLock { $0 } }
            kill(stopped, SIGCONT)
            // What was sent before the kill comes back; then nothing more.
            var arrived = 0
            while try await me.receive(Term.self, after: .seconds(arrived < before ? 30 : 1)) != nil { arrived += 1 }
            return (before, ended, arrived)
        }
        kill(stopped, SIGCONT)
        #expect(before > 0 && before < 2000)
        #expect(ended, "the killed sender's task ended while the connection was still busy")
        #expect(arrived == before)
    }

    @Test("Spawning a function the remote node does not offer is a typed error")
    func unknownSpawnable() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        await #expect(throws: DistributionError.unknownSpawnable("no_such_function")) {
            _ = try await Distribution.spawn(on: n2.name, "no_such_function")
        }
    }

    @Test("A link exit crosses nodes both ways: a process killed on one node takes its linked partner on the other with it")
    func linkExitAcrossParleyNodes() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        defer { n2.kill() }
        let exit = try await Process.run { (p: Parley.Process) async throws -> ExitMessage in
            p.trapExit = true
            let pong = try await Distribution.spawn(on: n2.name, "pong", linkedTo: p.pid)
            p.send(Term.tuple([.pid(p.pid), 1]), to: pong)
            _ = try await p.receive(Term.self)
            p.exit(pong, .custom(Term.atom("shoo")))
            return try await p.receive(ExitMessage.self)
        }
        #expect(exit.reason.description == "shoo")
    }
}
}

/// A process that receives `n` messages, each `i` or a tuple that starts with `i`, for `i`
/// from 0 on, then sends `{ordered, true|false}` to `top`: whether they came whole and in
/// order.
private func spawnOrderChecker(_ me: Parley.Process, count n: Int, reportTo top: Pid) -> Pid {
    me.spawn { q in
        var next = 0, ordered = true
        while next < n {
            let v = try await q.receive(Term.self)
            let index: Term? = if case .tuple(let t) = v { t.first } else { v }
            if index != .integer(next) { ordered = false }
            next += 1
        }
        q.send(Term.tuple([.atom("ordered"), .atom(ordered ? "true" : "false")]), to: top)
    }
}
