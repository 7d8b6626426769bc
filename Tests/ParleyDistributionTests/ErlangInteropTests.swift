import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP
import CZlib

/// A GenServer on the Parley side for Erlang to call: `{add, N}`, `get`, `{sleep, Ms}`, `crash`.
struct InteropCounter: GenServer, Sendable {
    var value = 0
    typealias Call = Term
    typealias Reply = Term
    typealias Cast = Term
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        switch request {
        case .atom("get"): return .reply(.integer(value))
        case .atom("crash"): throw ProcessExit(.custom(Term.atom("crashed_in_swift")))
        case .tuple(let t) where t.count == 2 && t[0] == .atom("add"):
            value += t[1].intValue ?? 0
            return .reply(.integer(value))
        case .tuple(let t) where t.count == 2 && t[0] == .atom("sleep"):
            Thread.sleep(forTimeInterval: Double(t[1].intValue ?? 0) / 1000)
            return .reply(.atom("slept"))
        default: return .reply(.tuple([.atom("unknown"), request]))
        }
    }
    mutating func handleCast(_ request: Term, _ me: CallbackProcess) -> HandleResult {
        if request == .atom("reset") { value = 0 }
        return .noreply
    }

    /// Starts one registered under a fresh name made from `prefix`; returns it and
    /// `{Name, Node}`, how an Erlang caller names it on `node` (this process's node).
    static func startRegistered(_ prefix: String, on node: String) throws -> (ServerRef<InteropCounter>, Term) {
        let name = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
        let server = try InteropCounter().start(name: .local(name))
        return (server, .tuple([.atom(Atom(name)), .atom(Atom(node))]))
    }
}

extension DistributionTests {
/// Parley against a real Erlang/OTP 25 node, as separate OS processes on loopback.
@Suite("Erlang interop", .enabled(if: Cluster.erlInstalled), .serialized)
struct ErlangInteropTests {
    @Test("An Erlang node connects to a Parley node: net_adm:ping returns pong (net_kernel's is_auth answered yes)")
    func erlangPingsParley() async throws {
        let me = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        Distribution.disconnect(erl.name)
        #expect(await eventually { !Distribution.nodes.contains(erl.name) })
        // Now Erlang dials us (EPMD lookup, handshake as initiator, is_auth).
        let pong: Term
        pong = try await erl.rpc("parley_interop", "ping", [.atom(Atom(me))])
        #expect(pong == .atom("pong"))
        #expect(Distribution.nodes.contains(erl.name))
    }

    @Test("Elixir 1.14 talks to a Parley node: Node.ping, send to a registered name, GenServer.call and cast, and a Codable struct arrives as an Elixir map")
    func elixirTalksToParley() async throws {
        let me = try await Cluster.node()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/elixir") else { return }
        let server = "ex_counter_\(UInt32.random(in: 0...UInt32.max))"
        let echo = "ex_echo_\(UInt32.random(in: 0...UInt32.max))"
        _ = try InteropCounter().start(name: .local(server))
        struct Person: Codable { let name: String; let age: Int; let tags: [String] }
        try Process.spawn(SpawnOptions(name: echo), state: ()) { _, message, p in
            if let t = message as? Term, case .tuple(let items) = t, items.count == 2, let from = items[0].pidValue {
                if items[1] == .atom("person") {
                    p.send((try? TermEncoder().encode(Person(name: "Ada", age: 36, tags: ["math"]))) ?? .nil, to: from)
                } else {
                    p.send(items[1], to: from)
                }
            }
            return .continue
        }
        let script = """
        IO.puts("ping=#{inspect Node.ping(:"\(me)")}")
        send({:\(echo), :"\(me)"}, {self(), {:hi, [1, 2.5, "text"]}})
        receive do m -> IO.puts("echo=#{inspect m}") after 5000 -> IO.puts("echo=timeout") end
        send({:\(echo), :"\(me)"}, {self(), :person})
        receive do m -> IO.puts("person=#{inspect m}") after 5000 -> IO.puts("person=timeout") end
        IO.puts("add=#{inspect GenServer.call({:\(server), :"\(me)"}, {:add, 7})}")
        GenServer.cast({:\(server), :"\(me)"}, :reset)
        IO.puts("get=#{inspect GenServer.call({:\(server), :"\(me)"}, :get)}")
        IO.puts("hidden=#{inspect Node.list(:hidden)}")
        """
        let ex = try ExternalNode.launch(name: ExternalNode.uniqueName("ex"), executable: "/usr/bin/elixir", arguments: [
            "--name", ExternalNode.uniqueName("ex"), "--cookie", Cluster.cookie, "-e", script,
        ])
        defer { ex.kill() }
        #expect(await eventually(within: .seconds(30)) { !ex.process.isRunning })
        let out = ex.output.withLock { $0 }
        #expect(out.contains("ping=:pong"), "\(out)")
        #expect(out.contains("echo={:hi, [1, 2.5, \"text\"]}"), "\(out)")
        #expect(out.contains("person=%{age: 36, name: \"Ada\", tags: [\"math\"]}"), "\(out)")
        #expect(out.contains("add=7"), "\(out)")
        #expect(out.contains("get=0"), "\(out)")
        #expect(out.contains("hidden=[:\"\(me)\"]"), "\(out)")
    }

    @Test("A Parley node connects to an Erlang node: Node.ping returns pong and the peer shows as a visible node")
    func parleyPingsErlang() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        #expect(await Distribution.ping(erl.name))
        let peer = try #require(Distribution.peers.first { $0.name == erl.name })
        #expect(!peer.isHidden)
        #expect(peer.flags.isSuperset(of: .mandatory25))
    }

    @Test("Every term type round-trips through a real Erlang node unchanged (erl_ext_dist)")
    func termsRoundTrip() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let terms = try await erl.rpc("parley_interop", "all_terms", [])
        guard case .list(let items) = terms else { Issue.record("all_terms gave \(terms)"); return }
        #expect(items.count > 40)
        // Back through Erlang's echo and again: what Erlang sends, we send back identically.
        let echoed = try await Process.run { (me: Parley.Process) async throws -> Term in
            me.send(Term.tuple([.pid(me.pid), terms]), to: "erl_echo", on: Node.named(erl.name))
            return try await me.receive(Term.self)
        }
        #expect(echoed == terms)
        // And Erlang agrees that what we sent is exactly what it built (=:=).
        let diff = try await erl.rpc("parley_interop", "diff_terms", [terms])
        #expect(diff == .list([]), "differences (index, ours, Erlang's): \(diff)")
        #expect(try await erl.rpc("parley_interop", "check_terms", [terms]) == .true)
        // Terms Swift builds arrive as Erlang expects them.
        let ours: Term = .tuple([.integer(-5), .float(2.5), .string("héllo"), .atom("a tom"), .list([1, 2, 3]),
                                 .improperList([.atom("alias")], tail: .reference(Reference.make())), ["k": [1, 2]],
                                 .bigInteger(BigInteger(negative: true, magnitude: Array(repeating: 0xFF, count: 40)))])
        let back = try await Process.run { (me: Parley.Process) async throws -> Term in
            me.send(Term.tuple([.pid(me.pid), ours]), to: "erl_echo", on: Node.named(erl.name))
            return try await me.receive(Term.self)
        }
        #expect(back == ours)
    }

    @Test("GenServer.call from Parley to an Erlang gen_server: replies, timeouts, and a server crashing mid-call")
    func callErlangGenServer() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let node = Node.named(erl.name)
        #expect(try await Gen.call("erl_counter", on: node, Term.tuple([.atom("add"), 5])) as? Term == 5)
        #expect(try await Gen.call("erl_counter", on: node, Term.atom("get")) as? Term == 5)
        Gen.cast("erl_counter", on: node, Term.atom("reset"))
        #expect(await eventually { (try? await Gen.call("erl_counter", on: node, Term.atom("get"))) as? Term == 0 })
        // By pid: whereis on the Erlang node, then a call to the pid.
        let pid = try #require(try await erl.rpc("erlang", "whereis", [.atom("erl_counter")]).pidValue)
        #expect(try await Gen.call(pid, Term.tuple([.atom("add"), 2])) as? Term == 2)
        // gen:call's timeout: no reply in time.
        await #expect(throws: Gen.CallError.self) { try await Gen.call("erl_counter", on: node, Term.tuple([.atom("sleep"), 500]), timeout: .milliseconds(100)) }
        // The server dies during the call: the caller exits with the server's reason (via the monitor).
        do {
            _ = try await Gen.call(pid, Term.atom("crash"))
            Issue.record("a crashing server replied")
        } catch {
            guard case .exited(let reason) = error else { Issue.record("expected exited, got \(error)"); return }
            #expect(reason.description.contains("crashed_on_purpose"))
        }
        // A name nobody has there: noproc from the name monitor, at once.
        do {
            _ = try await Gen.call("nobody_here", on: node, Term.atom("x"), timeout: .seconds(5))
            Issue.record("a call to a missing name replied")
        } catch {
            guard case .exited(.noproc) = error else { Issue.record("expected noproc, got \(error)"); return }
        }
    }

    @Test("gen_server:call from Erlang to a Parley GenServer: replies, timeouts, and a Parley server crashing mid-call")
    func erlangCallsParleyGenServer() async throws {
        let me = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let (server, dest) = try InteropCounter.startRegistered("interop_counter", on: me)
        #expect(try await erl.rpc("parley_interop", "call", [dest, .tuple([.atom("add"), 3]), 5000]) == .tuple([.ok, 3]))
        #expect(try await erl.rpc("parley_interop", "call", [dest, .atom("get"), 5000]) == .tuple([.ok, 3]))
        _ = try await erl.rpc("parley_interop", "cast", [dest, .atom("reset")])
        #expect(await eventually { (try? await server.call(.atom("get"))) == 0 })
        #expect(try await erl.rpc("parley_interop", "call", [dest, .tuple([.atom("sleep"), 400]), 100]) == .atom("timeout"))
        let crash = try await erl.rpc("parley_interop", "call", [dest, .atom("crash"), 5000])
        #expect(crash == .tuple([.atom("exit"), .atom("crashed_in_swift")]))
        // An unknown registered name on the Parley node: noproc, and the connection stays up.
        let missing: Term = .tuple([.atom("no_such_server"), .atom(Atom(me))])
        #expect(try await erl.rpc("parley_interop", "call", [missing, .atom("get"), 2000]) == .tuple([.atom("exit"), .atom("noproc")]))
        #expect(Distribution.nodes.contains(erl.name))
    }

    @Test("Links both ways: a killed process on either side delivers {'EXIT', Pid, killed} on the other; unlink (UNLINK_ID) stops it")
    func linksBothWays() async throws {
        let me = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        // Parley links to an Erlang process that is then killed.
        let waiter = try #require(try await erl.rpc("parley_interop", "spawn_waiter", []).pidValue)
        let exit1 = try await Process.run { (p: Parley.Process) async throws -> ExitMessage in
            p.trapExit = true
            try p.link(waiter)
            try await p.sleep(for: .milliseconds(50))
            _ = try await erl.rpc("parley_interop", "exit_pid", [.pid(waiter), .atom("kill")])
            return try await p.receive(ExitMessage.self)
        }
        #expect(exit1.from == waiter)
        #expect(exit1.reason.description == "killed")

        // Erlang links to a Parley process that is then killed.
        let report = try await Process.run { (p: Parley.Process) async throws -> Term in
            let victim = p.spawn { v in _ = try await v.receive() }
            let linker = try await erl.rpc("parley_interop", "spawn_linker", [.pid(victim), .pid(p.pid)])
            _ = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("linked") }; return false }
            #expect(linker.pidValue != nil)
            Process.exit(victim, .kill)
            return try await p.receive(Term.self)
        }
        guard case .tuple(let t) = report else { Issue.record("got \(report)"); return }
        #expect(t.count == 3 && t[0] == .atom("EXIT") && t[2] == .atom("killed"))
        _ = me

        // Unlink before the exit: nothing arrives (UNLINK_ID / UNLINK_ID_ACK).
        let quiet = try await Process.run { (p: Parley.Process) async throws -> Term? in
            let victim = p.spawn { v in _ = try await v.receive() }
            _ = try await erl.rpc("parley_interop", "unlink_after", [.pid(victim), 100, .pid(p.pid)])
            _ = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("unlinked") }; return false }
            Process.exit(victim, .kill)
            return try await p.receive(Term.self, after: .milliseconds(500))
        }
        #expect(quiet == nil)
    }

    @Test("Monitors both ways: DOWN with the exit reason; noproc for a dead pid or unknown name (MONITOR_P, MONITOR_P_EXIT)")
    func monitorsBothWays() async throws {
        let me = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let waiter = try #require(try await erl.rpc("parley_interop", "spawn_waiter", []).pidValue)
        let down = try await Process.run { (p: Parley.Process) async throws -> DownMessage in
            let ref = p.monitor(waiter)
            try await p.sleep(for: .milliseconds(50))
            _ = try await erl.rpc("parley_interop", "exit_pid", [.pid(waiter), .atom("bye")])
            return try await p.receive(DownMessage.self) { $0.ref == ref }
        }
        #expect(down.pid == waiter)
        #expect(down.reason.description == "bye")
        // Monitoring the now-dead pid: DOWN noproc at once.
        let again = try await Process.run { (p: Parley.Process) async throws -> DownMessage in
            _ = p.monitor(waiter)
            return try await p.receive(DownMessage.self)
        }
        #expect(again.reason.description == "noproc")
        // Demonitor: nothing arrives.
        let waiter2 = try #require(try await erl.rpc("parley_interop", "spawn_waiter", []).pidValue)
        let none = try await Process.run { (p: Parley.Process) async throws -> DownMessage? in
            let ref = p.monitor(waiter2)
            p.demonitor(ref)
            _ = try await erl.rpc("parley_interop", "exit_pid", [.pid(waiter2), .atom("kill")])
            return try await p.receive(DownMessage.self, after: .milliseconds(300))
        }
        #expect(none == nil)

        // Erlang monitors a Parley process, by pid and by {Name, Node}.
        let report = try await Process.run { (p: Parley.Process) async throws -> [Term] in
            let victim = try p.spawn(SpawnOptions(name: "monitored_by_erl")) { v in _ = try await v.receive() }
            _ = try await erl.rpc("parley_interop", "spawn_monitor_reporter", [.pid(victim), .pid(p.pid)])
            _ = try await erl.rpc("parley_interop", "monitor_name", [.atom("monitored_by_erl"), .atom(Atom(me)), .pid(p.pid)])
            for _ in 0..<2 { _ = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("monitoring") }; return false } }
            Process.exit(victim, .custom(Term.atom("gone")))
            return [try await p.receive(Term.self), try await p.receive(Term.self)]
        }
        for d in report {
            guard case .tuple(let t) = d, t.count == 5 else { Issue.record("got \(d)"); continue }
            #expect(t[0] == .atom("DOWN") && t[4] == .atom("gone"))
        }
        // Erlang monitoring a name nobody has here: noproc.
        let missing = try await Process.run { (p: Parley.Process) async throws -> Term in
            _ = try await erl.rpc("parley_interop", "monitor_name", [.atom("nobody_here"), .atom(Atom(me)), .pid(p.pid)])
            _ = try await p.receive(Term.self)
            return try await p.receive(Term.self)
        }
        guard case .tuple(let t) = missing else { Issue.record("got \(missing)"); return }
        #expect(t.last == .atom("noproc"))
    }

    @Test("Killing the Erlang node's OS process: nodedown, and every link and monitor across the connection fires with noconnection")
    func killedNodeGivesNoconnection() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        let waiter = try #require(try await erl.rpc("parley_interop", "spawn_waiter", []).pidValue)
        let (exit, down, nodedown) = try await Process.run { (p: Parley.Process) async throws -> (ExitMessage, DownMessage, Term) in
            p.trapExit = true
            Distribution.monitorNodes(p.pid)
            defer { Distribution.monitorNodes(p.pid, false) }
            try p.link(waiter)
            let ref = p.monitor(waiter)
            try await p.sleep(for: .milliseconds(100))
            erl.kill()
            let e = try await p.receive(ExitMessage.self)
            let d = try await p.receive(DownMessage.self) { $0.ref == ref }
            let n = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("nodedown") }; return false }
            return (e, d, n)
        }
        #expect(exit.reason.description == "noconnection")
        #expect(down.reason.description == "noconnection")
        #expect(nodedown == .tuple([.atom("nodedown"), .atom(Atom(erl.name))]))
        #expect(!Distribution.nodes.contains(erl.name))
        // A later call to that node fails fast with noconnection or noproc, not a hang.
        let started = ContinuousClock.now
        await #expect(throws: Gen.CallError.self) { try await Gen.call("erl_counter", on: Node.named(erl.name), Term.atom("get"), timeout: .seconds(8)) }
        #expect(ContinuousClock.now - started < .seconds(8))
    }

    @Test("Large messages cross both ways unfragmented (no DFLAG_FRAGMENTS): a 16 MiB binary and a 200,000-element list through Erlang's echo")
    func largeMessages() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        // 256 blocks of 64 KiB, each stamped with its number, so a block out of place shows.
        // (Built with copies, not a byte loop: a debug build under the thread sanitizer would
        // hold a cooperative thread for seconds, and the suites beside this one with it.)
        let block = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(16 << 20)
        for k in 0..<256 {
            bytes.append(contentsOf: block)
            bytes[k << 16] = UInt8(k)
        }
        let big = Term.binary(bytes)
        let crc = bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        // Built by Erlang (lists:seq through rex), so the long list first crosses Erlang → Parley.
        let list = try await erl.rpc("lists", "seq", [1, 200_000], timeout: .seconds(30))
        guard case .list(let items) = list else { Issue.record("lists:seq gave \(list)"); return }
        #expect(items.count == 200_000 && items.last == .integer(200_000))
        let (b, l) = try await Process.run { (me: Parley.Process) async throws -> (Term, Term) in
            me.send(Term.tuple([.pid(me.pid), big]), to: "erl_echo", on: Node.named(erl.name))
            let b = try await me.receive(Term.self)
            me.send(Term.tuple([.pid(me.pid), list]), to: "erl_echo", on: Node.named(erl.name))
            return (b, try await me.receive(Term.self))
        }
        guard case .binary(let echoed) = b else { Issue.record("the echo of the binary is \(b)"); return }
        #expect(echoed.count == bytes.count && echoed.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) } == crc)
        #expect(l == list)
        // Erlang sees the same bytes we sent: its own byte_size and erlang:crc32 of the binary.
        #expect(try await erl.rpc("erlang", "byte_size", [big], timeout: .seconds(30)) == .integer(16 << 20))
        #expect(try await erl.rpc("erlang", "crc32", [big], timeout: .seconds(30)) == .integer(Int(crc)))
        #expect(Distribution.nodes.contains(erl.name))
    }

    @Test("Killing a Parley node's OS process: an Erlang node linked to and monitoring a process there gets noconnection, and nodedown (monitor_node)")
    func killedParleyNodeSeenFromErlang() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        let n2 = try await ExternalNode.parley()
        defer { erl.kill(); n2.kill() }
        let target = try await Distribution.spawn(on: n2.name, "pong")
        let got = try await Process.run { (p: Parley.Process) async throws -> [Term] in
            // The Erlang node connects to n2 on demand (the link), then watches it three ways.
            _ = try await erl.rpc("parley_interop", "spawn_linker", [.pid(target), .pid(p.pid)])
            _ = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("linked") }; return false }
            _ = try await erl.rpc("parley_interop", "spawn_monitor_reporter", [.pid(target), .pid(p.pid)])
            _ = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("monitoring") }; return false }
            _ = try await erl.rpc("parley_interop", "spawn_node_monitor", [.atom(Atom(n2.name)), .pid(p.pid)])
            _ = try await p.receive(Term.self) { if case .tuple(let t) = $0 { return t.first == .atom("monitoring_node") }; return false }
            n2.kill()
            var seen: [Term] = []
            for _ in 0..<3 {
                guard let m = try await p.receive(Term.self, after: .seconds(30)) else { break }
                seen.append(m)
            }
            return seen
        }
        func has(_ tag: String, _ check: ([Term]) -> Bool) -> Bool {
            got.contains { if case .tuple(let t) = $0 { return t.first == .atom(Atom(tag)) && check(t) }; return false }
        }
        #expect(has("EXIT") { $0 == [.atom("EXIT"), .pid(target), .atom("noconnection")] }, "got \(got)")
        #expect(has("DOWN") { $0.count == 5 && $0[3] == .pid(target) && $0[4] == .atom("noconnection") }, "got \(got)")
        #expect(has("nodedown") { $0 == [.atom("nodedown"), .atom(Atom(n2.name))] }, "got \(got)")
    }

    @Test("Short names: an Erlang -sname node pings a Parley node started with a bare name, calls its counter and talks to its echo")
    func shortNames() async throws {
        _ = try await Cluster.node()
        let short = "pshort\(getpid())"
        let n = try ExternalNode.launch(name: short, executable: Cluster.parleyExecutable, arguments: [
            "--name", short, "--cookie", Cluster.cookie,
        ])
        defer { n.kill() }
        #expect(await eventually(within: .seconds(20)) { n.output.withLock { $0.contains("ready on port") } })
        let script = """
            [_, H] = string:split(atom_to_list(node()), "@"), N = list_to_atom("\(short)@" ++ H), \
            io:format("ping=~p~n", [net_adm:ping(N)]), \
            io:format("call=~p~n", [gen_server:call({counter, N}, {add, 5})]), \
            {echo, N} ! {self(), hi}, io:format("echo=~p~n", [receive X -> X after 5000 -> timeout end]), \
            halt().
            """.replacingOccurrences(of: "\\\n", with: "")
        let erl = try ExternalNode.launch(name: "eshort", executable: "/usr/bin/erl", arguments: [
            "-sname", "eshort\(getpid())", "-setcookie", Cluster.cookie, "-noshell", "-eval", script,
        ])
        defer { erl.kill() }
        #expect(await eventually(within: .seconds(30)) { !erl.process.isRunning })
        let out = erl.output.withLock { $0 }
        #expect(out.contains("ping=pong"), "erl printed: \(out)")
        #expect(out.contains("call=5"), "erl printed: \(out)")
        #expect(out.contains("echo=hi"), "erl printed: \(out)")
    }

    @Test("A cookie mismatch is refused both ways, with a log line naming the cookie")
    func cookieMismatch() async throws {
        let me = try await Cluster.node()
        // Parley dials an Erlang node with another cookie: Erlang checks our digest and hangs up.
        let erl = try await ExternalNode.erlang(cookie: "not-the-cookie", waitForPing: false)
        defer { erl.kill() }
        #expect(await eventually(within: .seconds(15)) { (try? await EPMDClient.lookup(name: String(erl.name.prefix { $0 != "@" }), host: "127.0.0.1")) != nil })
        do {
            try await Distribution.connect(erl.name)
            Issue.record("connected despite the cookie mismatch")
        } catch {
            #expect("\(error)".contains("cookie mismatch"))
        }
        // An Erlang node with another cookie dials us (net_adm:ping at its start): we check its
        // digest, refuse, and say why.
        let dialler = try await ExternalNode.erlang(cookie: "not-the-cookie", waitForPing: false,
                                                    eval: "net_adm:ping('\(me)')")
        defer { dialler.kill() }
        #expect(await eventually { Cluster.logs.contains("refused: cookie mismatch") })
        #expect(!Distribution.nodes.contains(erl.name))
        #expect(!Distribution.nodes.contains(dialler.name))
    }

}
}
