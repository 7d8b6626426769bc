import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP

/// A cluster for global's tests: an EPMD of its own (a free port, loopback only), Erlang
/// nodes started against it, and visible Parley nodes in this process. Everything it
/// starts goes in `shutdown()`, which every test runs on every path.
final class GlobalCluster: @unchecked Sendable {
    // Unchecked: used from one test task at a time; the arrays are only touched there.
    let epmd: EmbeddedEPMD
    var erlangNodes: [ExternalNode] = []
    var parleyNodes: [LocalNode] = []
    static let cookie = "globaltest"

    init() async throws {
        epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
    }

    /// Runs `body` with a fresh cluster, and shuts it down whether `body` returns or throws.
    static func run(_ body: (GlobalCluster) async throws -> Void) async throws {
        let cluster = try await GlobalCluster()
        do {
            try await body(cluster)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    /// An Erlang node (Debian's OTP 25 with its defaults: connect_all and
    /// prevent_overlapping_partitions on) registered with this cluster's EPMD.
    func erlang(_ prefix: String = "erl", eval: String = "ok") async throws -> ExternalNode {
        let name = ExternalNode.uniqueName(prefix)
        let beams = try await Cluster.beamDirectory()
        let node = try ExternalNode.launch(name: name, executable: "/usr/bin/erl", arguments: [
            "-name", name, "-setcookie", Self.cookie, "-noshell", "-start_epmd", "false", "-pa", beams, "-eval", eval,
        ], environment: ["ERL_EPMD_PORT": String(epmd.boundPort)])
        erlangNodes.append(node)
        let up = await eventually(within: .seconds(30)) {
            (try? await EPMDClient.lookup(name: String(name.prefix { $0 != "@" }), epmdPort: self.epmd.boundPort)) != nil
        }
        if !up { throw DistributionError.connectFailed(node: name, reason: "did not register: \(node.output.withLock { $0 })") }
        return node
    }

    /// A visible Parley node in this OS process.
    func parley(_ prefix: String) async throws -> LocalNode {
        try await node(ExternalNode.uniqueName(prefix), hidden: false)
    }

    /// A Parley node on this cluster's EPMD, kept for `shutdown()`.
    func node(_ name: String, hidden: Bool) async throws -> LocalNode {
        let node = try LocalNode(name: name)
        var c = Distribution.Configuration(name: name, cookie: Self.cookie)
        c.hidden = hidden
        c.epmdPort = epmd.boundPort
        c.embeddedEPMD = false
        c.handshakeTimeout = .seconds(5)
        try await node.startDistribution(c)
        parleyNodes.append(node)
        return node
    }

    /// A hidden Parley node on this cluster's EPMD (takes no part in global).
    func hidden(_ prefix: String) async throws -> LocalNode {
        try await node(ExternalNode.uniqueName(prefix), hidden: true)
    }

    /// A hidden Parley node for looking at Erlang nodes with rpc: its connections take no
    /// part in global, so looking does not join partitions.
    var observer: LocalNode?

    /// `rpc:call(Node, M, F, A)` from the hidden observer node, through the Erlang node's rex.
    func rpc(_ node: String, _ m: String, _ f: String, _ args: [Term], timeout: Duration = .seconds(20)) async throws -> Term {
        if observer == nil { observer = try await self.node(ExternalNode.uniqueName("observer"), hidden: true) }
        return try await rpc(observer!, node, m, f, args, timeout: timeout)
    }

    /// `rpc:call(Node, M, F, A)` from `via`, through the Erlang node's rex.
    func rpc(_ via: LocalNode, _ node: String, _ m: String, _ f: String, _ args: [Term], timeout: Duration = .seconds(20)) async throws -> Term {
        try await via.run { me in
            let call = Term.tuple([.atom("call"), .atom(Atom(m)), .atom(Atom(f)), .list(args), .pid(me.pid)])
            return try await Gen.call("rex", on: Node.named(node), call, timeout: timeout) as! Term
        }
    }

    func shutdown() async {
        for n in erlangNodes { n.kill() }
        for n in parleyNodes { await n.stopDistribution() }
        await epmd.stop()
    }
}

extension DistributionTests {
@Suite("global (OTP 25 global.erl, protocol 8)", .serialized)
struct GlobalTests {
    static let haveErl = FileManager.default.isExecutableFile(atPath: "/usr/bin/erl")

    @Test("Erlang's term order for pids: serial, then number, then node, then creation (checked on OTP 25.2.3); node names as atoms")
    func pidOrder() {
        let a = Node.named("a@h"), b = Node.named("b@h"), c = Node.named("c@h")
        let pids = [Pid(node: b, id: 5, serial: 0, creation: 1), Pid(node: a, id: 5, serial: 0, creation: 1),
                    Pid(node: a, id: 5, serial: 1, creation: 1), Pid(node: a, id: 4, serial: 9, creation: 9),
                    Pid(node: a, id: 5, serial: 0, creation: 2), Pid(node: c, id: 3, serial: 0, creation: 1),
                    Pid(node: a, id: 100_000, serial: 0, creation: 1), Pid(node: a, id: 5, serial: 0, creation: 0)]
        let sorted = pids.sorted { ErlangOrder.less($0, $1, home: "x@h") }
        // erl: lists:sort/1 of the same pids built with NEW_PID_EXT.
        let expected: [(String, UInt32, UInt32, UInt32)] = [("c@h", 3, 0, 1), ("a@h", 5, 0, 0), ("a@h", 5, 0, 1), ("a@h", 5, 0, 2),
                                                            ("b@h", 5, 0, 1), ("a@h", 100_000, 0, 1), ("a@h", 5, 1, 1), ("a@h", 4, 9, 9)]
        #expect(sorted.map { "\($0.node!.name)/\($0.id)/\($0.serial)/\($0.creation)" } == expected.map { "\($0.0)/\($0.1)/\($0.2)/\($0.3)" })
        #expect(ErlangOrder.boss(["erl1@h", "parley@h", "a@h"]) == "parley@h")
        #expect(ErlangOrder.less("Z@h", "a@h"))
    }

    @Test("A hidden node takes no part in global: the API says so with a typed error")
    func hiddenNode() async throws {
        let node = try LocalNode(name: ExternalNode.uniqueName("hiddenglobal"))
        await #expect(throws: Global.Failure.notVisible) { try await Global.register("x", Pid(node: Node.named("a@b"), id: 1, serial: 0, creation: 1), on: node) }
        #expect(Global.whereis("x", on: node) == nil)
        #expect(throws: Global.Failure.notRegistered(.atom("x"))) { try Global.send(Term.ok, to: "x", on: node) }
    }

    @Test("Two Parley nodes: a name registered on one is found on the other, a taken name is refused, one pid has one name, and a name goes everywhere when its process dies (global.erl register_name/2, DOWN)",
          .timeLimit(.minutes(2)))
    func parleyPair() async throws {
        try await GlobalCluster.run { cluster in
            let p1 = try await cluster.parley("pga"), p2 = try await cluster.parley("pgb")
            try await p1.connect(p2.name)
            try await Global.sync(on: p1)
            try await Global.sync(on: p2)
            let worker = try p1.spawn(SpawnOptions()) { me in _ = try await me.receive() }
            #expect(try await Global.register("worker", worker, on: p1))
            #expect(Global.whereis("worker", on: p2) == worker)
            let other = try p2.spawn(SpawnOptions()) { me in _ = try await me.receive() }
            #expect(try await Global.register("worker", other, on: p2) == false)
            #expect(try await Global.register("second_name", worker, on: p2) == false)
            // Sent by name from p2, it reaches the process on p1 (global:send/2).
            try Global.send(Term.atom("stop"), to: "worker", on: p2)
            #expect(await eventually { Global.whereis("worker", on: p1) == nil && Global.whereis("worker", on: p2) == nil })
            #expect(try await Global.register("worker", other, on: p2))
            #expect(await eventually { Global.whereis("worker", on: p1) == other })
            try await Global.unregister("worker", on: p1)
            #expect(Global.whereis("worker", on: p2) == nil)
            Process.exit(other, .kill)
        }
    }

    @Test("A hidden node registers and looks up global names through an Erlang node (global:register_name_external/2 by rex, the C-node path); the name goes when the process exits",
          .enabled(if: haveErl), .timeLimit(.minutes(2)))
    func hiddenThroughRex() async throws {
        try await GlobalCluster.run { cluster in
            let e1 = try await cluster.erlang("erlh")
            let h = try await cluster.hidden("hid")
            let worker = try h.spawn(SpawnOptions()) { me in _ = try await me.receive() }
            #expect(try await Global.register("hidden_worker", worker, through: e1.name, on: h))
            #expect(try await cluster.rpc(e1.name, "global", "whereis_name", [.atom("hidden_worker")]) == .pid(worker))
            #expect(try await Global.whereis("hidden_worker", through: e1.name, on: h) == worker)
            #expect(try await Global.register("hidden_worker", worker, through: e1.name, on: h) == false)
            // Erlang's global:send reaches the hidden node's process, which then exits.
            _ = try await cluster.rpc(e1.name, "global", "send", [.atom("hidden_worker"), .atom("stop")])
            #expect(await eventually { (try? await cluster.rpc(e1.name, "global", "whereis_name", [.atom("hidden_worker")])) == .atom(.undefined) })
            await #expect(throws: Global.Failure.self) { try await Global.whereis("x", through: "nobody@127.0.0.1", on: h) }
        }
    }

    @Test("Resolve methods run here as OTP's do (global.erl: minmax/2 orders by node; random_exit_name/3 kills the other, random_notify_name/3 tells it {global_name_conflict, Name}, notify_all_name/3 tells both with the other pid and returns none); a Swift closure picks; an unknown method is an error, so the name goes",
          .timeLimit(.minutes(1)))
    func resolveMethods() async throws {
        try await GlobalCluster.run { cluster in
            let node = try await cluster.parley("rm")
            let seen = Locked<[Pid: [Term]]>([:])
            @Sendable func holder() throws -> Pid {
                try node.spawn(SpawnOptions()) { me in
                    while true { let t = try await me.receive(Term.self); seen.withLock { $0[me.pid, default: []].append(t) } }
                }
            }
            let name = Term.atom("c")
            let results = try await node.run { me -> [Term] in
                var out: [Term] = []
                // Both pids on one node: minmax gives {P2, P1}, so P2 is Min and keeps the name.
                let (a1, a2) = (try holder(), try holder())
                out.append(Global.runMethod(Global.method(.randomExit, name: name, node: node), name: name, a1, a2, home: node.name, me: me))
                let (b1, b2) = (try holder(), try holder())
                out.append(Global.runMethod(Global.method(.randomNotify, name: name, node: node), name: name, b1, b2, home: node.name, me: me))
                let (c1, c2) = (try holder(), try holder())
                out.append(Global.runMethod(Global.method(.notifyAll, name: name, node: node), name: name, c1, c2, home: node.name, me: me))
                let (d1, d2) = (try holder(), try holder())
                out.append(Global.runMethod(Global.method(.custom { _, first, _ in first }, name: name, node: node), name: name, d1, d2, home: node.name, me: me))
                out.append(Global.runMethod(.export(module: "erlang", function: "nope", arity: 3), name: name, d1, d2, home: node.name, me: me))
                #expect(out[0] == .pid(a2))
                #expect(await eventually { !Process.isAlive(a1) })
                #expect(Process.isAlive(a2))
                #expect(out[1] == .pid(b2))
                #expect(await eventually { seen.withLock { $0[b1] } == [.tuple([.atom("global_name_conflict"), name])] })
                #expect(out[2] == .atom("none"))
                #expect(await eventually { seen.withLock { $0[c1] == [.tuple([.atom("global_name_conflict"), name, .pid(c2)])] && $0[c2] == [.tuple([.atom("global_name_conflict"), name, .pid(c1)])] } })
                #expect(out[3] == .pid(d1))
                return out
            }
            // Not a pid and not none: exchange_names logs it and deletes the name.
            #expect(results[4].tupleElements?.first == .atom("EXIT"))
        }
    }

    @Test("A mixed cluster (two Erlang nodes with OTP 25's defaults, two Parley nodes) forms a full mesh from one connection each; global:sync() returns on the Erlang nodes; names registered on either side are found, sent to and called from the other, and from an Elixir node (GenServer.call({:global, name}, ...))",
          .enabled(if: haveErl), .timeLimit(.minutes(3)))
    func mixedCluster() async throws {
        try await GlobalCluster.run { cluster in
            let e1 = try await cluster.erlang("erla")
            let e2 = try await cluster.erlang("erlb", eval: """
                true = net_kernel:connect_node('\(e1.name)'), \
                P = spawn(fun L() -> receive {From, M} -> From ! {echoed, M}, L() end end), \
                yes = global:register_name(erl_echo, P)
                """)
            let p1 = try await cluster.parley("pla"), p2 = try await cluster.parley("plb")
            try await p1.connect(e2.name)
            try await p2.connect(p1.name)
            let all = Set([e1.name, e2.name, p1.name, p2.name])
            // The mesh: every node is connected to the three others (global's connect_all).
            #expect(await eventually(within: .seconds(30)) {
                let n1 = (try? await cluster.rpc(e1.name, "erlang", "nodes", []))?.listElements?.compactMap(\.atomName) ?? []
                let n2 = (try? await cluster.rpc(e2.name, "erlang", "nodes", []))?.listElements?.compactMap(\.atomName) ?? []
                return Set(n1) == all.subtracting([e1.name]) && Set(n2) == all.subtracting([e2.name])
                    && Set(p1.connectedNodes) == all.subtracting([p1.name]) && Set(p2.connectedNodes) == all.subtracting([p2.name])
            })
            // global:sync() returns on both Erlang nodes (it hangs forever beside a visible node that does not speak global).
            #expect(try await cluster.rpc(e1.name, "global", "sync", []) == .ok)
            #expect(try await cluster.rpc(e2.name, "global", "sync", []) == .ok)
            try await Global.sync(on: p1)
            try await Global.sync(on: p2)

            // Erlang registered, Parley finds and sends.
            let erlEcho = try #require(Global.whereis("erl_echo", on: p2))
            #expect(erlEcho.node?.name == e2.name)
            let echoed = try await p2.run { me -> Term in
                try Global.send(Term.tuple([.pid(me.pid), .atom("hello")]), to: "erl_echo", on: p2)
                return try await me.receive(Term.self)
            }
            #expect(echoed == .tuple([.atom("echoed"), .atom("hello")]))

            // Parley registers a GenServer; Erlang finds it and calls it through {global, Name}.
            let counter = try #require(try Counter().start(options: GenServerOptions(node: p2)).pid)
            #expect(try await Global.register("parley_counter", counter, on: p2))
            #expect(try await cluster.rpc(e1.name, "global", "whereis_name", [.atom("parley_counter")]) == .pid(counter))
            let reply = try await cluster.rpc(e1.name, "gen_server", "call", [.tuple([.atom("global"), .atom("parley_counter")]), .tuple([.atom("add"), 5])])
            #expect(reply == 5)
            // Elixir 1.14 joins through one Erlang node, finds the Parley name and calls it.
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/elixir") {
                let exName = ExternalNode.uniqueName("ex")
                let ex = try ExternalNode.launch(name: exName, executable: "/usr/bin/elixir", arguments: [
                    "--name", exName, "--cookie", GlobalCluster.cookie, "--erl", "-start_epmd false", "-e", """
                    true = Node.connect(:"\(e1.name)")
                    :ok = :global.sync()
                    IO.puts("whereis=#{inspect(:global.whereis_name(:parley_counter) |> node())}")
                    IO.puts("call=#{inspect(GenServer.call({:global, :parley_counter}, {:add, 2}))}")
                    """,
                ], environment: ["ERL_EPMD_PORT": String(cluster.epmd.boundPort)])
                cluster.erlangNodes.append(ex)
                #expect(await eventually(within: .seconds(60)) { !ex.process.isRunning })
                let out = ex.output.withLock { $0 }
                #expect(out.contains("whereis=:\"\(p2.name)\""), "\(out)")
                #expect(out.contains("call=7"), "\(out)")
            }
            // A name registered from an Erlang node for an Erlang process, seen by Parley at once after its call returns.
            _ = try await cluster.rpc(e1.name, "global", "register_name", [.atom("late"), cluster.rpc(e1.name, "erlang", "whereis", [.atom("rex")])])
            #expect(Global.whereis("late", on: p1)?.node?.name == e1.name)
            #expect(Global.whereis("late", on: p2)?.node?.name == e1.name)
            // Unregistered from Parley, gone on Erlang.
            try await Global.unregister("parley_counter", on: p1)
            #expect(try await cluster.rpc(e2.name, "global", "whereis_name", [.atom("parley_counter")]) == .atom(.undefined))
            let info = try await Global.info(on: p1)
            #expect(Set(info.known) == all.subtracting([p1.name]))
        }
    }

    @Test("After a partition heals, a name held on both sides is resolved as OTP resolves it: the node whose name sorts lower runs random_exit_name/3, the pid on the lower node keeps the name and the other is killed; both directions (a Parley node and an Erlang node deciding)",
          .enabled(if: haveErl), .timeLimit(.minutes(3)), arguments: ["aparley", "zparley"])
    func clashOnHeal(prefix: String) async throws {
        try await GlobalCluster.run { cluster in
            let e1 = try await cluster.erlang("erlc", eval: "register(holder_maker, self()), receive never -> ok end")
            let p1 = try await cluster.parley(prefix)
            try await p1.connect(e1.name)
            try await Global.sync(on: p1)
            #expect(try await cluster.rpc(e1.name, "global", "sync", []) == .ok)
            p1.disconnect(e1.name)
            // Apart on both sides before either registers (else the registration would reconnect them).
            #expect(await eventually {
                if p1.connectedNodes.contains(e1.name) { return false }
                // global has seen the nodedown too (else a registration would multi-call e1 and reconnect).
                if (try? await Global.info(on: p1))?.known.contains(e1.name) != false { return false }
                let seen = try? await cluster.rpc(e1.name, "erlang", "nodes", [])
                return seen?.listElements?.contains(.atom(Atom(p1.name))) == false
            })

            // Each side registers the name while apart.
            let mine = try p1.spawn(SpawnOptions()) { me in _ = try await me.receive() }
            #expect(try await Global.register("clash", mine, on: p1))
            let erlPid = try await cluster.rpc(e1.name, "erlang", "spawn", [.atom("timer"), .atom("sleep"), .list([.atom("infinity")])])
            #expect(try await cluster.rpc(e1.name, "global", "register_name", [.atom("clash"), erlPid]) == .atom("yes"))
            // Heal: global syncs the two partitions.
            try await p1.connect(e1.name)
            try await Global.sync(on: p1)
            #expect(try await cluster.rpc(e1.name, "global", "sync", []) == .ok)

            let parleyLower = ErlangOrder.less(p1.name, e1.name)
            let winner: Term = parleyLower ? .pid(mine) : erlPid
            #expect(await eventually(within: .seconds(20)) { Global.whereis("clash", on: p1).map { Term.pid($0) } == winner })
            #expect(try await cluster.rpc(e1.name, "global", "whereis_name", [.atom("clash")]) == winner)
            // The loser was killed.
            if parleyLower {
                #expect(await eventually { (try? await cluster.rpc(e1.name, "erlang", "is_process_alive", [erlPid])) == .false })
            } else {
                #expect(await eventually { !Process.isAlive(mine) })
            }
        }
    }
}
}

private struct Counter: GenServer {
    var value = 0
    typealias Call = Term
    typealias Reply = Term
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if case .tuple(let t) = request, t.count == 2, t[0] == .atom("add"), let n = t[1].intValue { value += n }
        return .reply(.integer(value))
    }
}
