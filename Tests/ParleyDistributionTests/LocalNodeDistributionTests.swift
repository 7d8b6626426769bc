import Foundation
import Synchronization
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP

extension DistributionTests {
/// Three nodes in this one OS process (the test process's default node and two
/// `LocalNode`s), connected over real loopback connections as three BEAM nodes on one host
/// are: the distribution protocol's rules hold between them as between OS processes.
@Suite("Nodes as values over distribution", .serialized)
struct LocalNodeDistributionTests {
    /// Starts distribution on two new nodes of this OS process, runs `body`, and stops them
    /// on every path.
    static func withNodes(_ body: (LocalNode, LocalNode) async throws -> Void) async throws {
        _ = try await Cluster.node()
        let b = try LocalNode(name: ExternalNode.uniqueName("hosted_b"))
        let c = try LocalNode(name: ExternalNode.uniqueName("hosted_c"))
        do {
            for n in [b, c] {
                var config = Distribution.Configuration(name: n.name, cookie: Cluster.cookie)
                config.tickTime = .seconds(4)
                try await n.startDistribution(config)
            }
            try await body(b, c)
        } catch {
            await b.stopDistribution()
            await c.stopDistribution()
            throw error
        }
        await b.stopDistribution()
        await c.stopDistribution()
    }

    @Test("The default node cannot start distribution under the name of another node of the OS process: nameInUse, as LocalNode(name:) refuses the default node's name")
    func defaultNodeRefusesAHostedName() async throws {
        let name = ExternalNode.uniqueName("hosted_taken")
        let b = try LocalNode(name: name)
        await #expect(throws: DistributionError.nameInUse(name)) {
            try await Distribution.start(.init(name: name, cookie: Cluster.cookie))
        }
        #expect(b.name == name && !b.isDistributed)
    }

    @Test("Nodes of one OS process connect as BEAM nodes do: ping, connected-node lists, {Name, Node} sends and GenServer calls by name cross real connections; a pid that comes back over the wire equals the one in memory but is reached through the wire")
    func nodesTalkOverTheWire() async throws {
        try await Self.withNodes { b, c in
            let me = Distribution.nodeName
            #expect(await b.ping(me))
            #expect(await c.ping(b.name))
            #expect(Set(Distribution.nodes).isSuperset(of: [b.name]))
            #expect(b.connectedNodes.contains(me) && b.connectedNodes.contains(c.name))
            #expect(!b.connectedNodes.contains(b.name))

            // A registered echo on c answers with its own pid, encoded by c.
            let echo = try c.spawn(SpawnOptions(name: "hosted_echo"), state: ()) { _, message, me in
                if let t = message as? Term, case .tuple(let items) = t, items.count == 2, case .pid(let from) = items[0] {
                    me.send(Term.tuple([.pid(me.pid), items[1]]), to: from)
                }
                return .continue
            }
            defer { Process.exit(echo, .kill) }
            #expect(c.whereis("hosted_echo") == echo && Process.whereis("hosted_echo") == nil)
            let answer = try await Process.run { p -> Term in
                p.send(Term.tuple([.pid(p.pid), .string("hi")]), to: "hosted_echo", on: Node.named(c.name))
                return try await p.receive(Term.self)
            }
            guard case .tuple(let items) = answer, case .pid(let fromWire) = items[0] else {
                Issue.record("unexpected \(answer)")
                return
            }
            #expect(items[1] == .string("hi"))
            #expect(fromWire == echo)               // the same pid: node c, id, serial
            #expect(!fromWire.holdsProcess)          // but reached through c's connection
            #expect(echo.holdsProcess)

            // gen_server calls by {Name, Node} between the nodes, from a process of b.
            let counter = try TermCounter(count: 0).start(name: .local("hosted_counter"), options: GenServerOptions(node: c))
            defer { if let pid = counter.pid { Process.exit(pid, .kill) } }
            #expect(c.whereis("hosted_counter") != nil && b.whereis("hosted_counter") == nil)
            let sums = try await b.run { _ -> [Term?] in
                var out: [Term?] = []
                for n in [5, 7] {
                    out.append(try await Gen.call("hosted_counter", on: Node.named(c.name), Term.tuple([.atom("add"), .integer(n)])) as? Term)
                }
                return out
            }
            #expect(sums == [.integer(5), .integer(12)])
            // From the default node: the reply to a pid of the default node goes back through
            // c's connection, though the handler may run on c's I/O thread.
            let fromDefault = try await Process.run { _ in
                try await Gen.call("hosted_counter", on: Node.named(c.name), Term.tuple([.atom("add"), .integer(1)]), timeout: .seconds(10)) as? Term
            }
            #expect(fromDefault == .integer(13))
            // A plain `pid.send` in a handler of c to a pid from the wire goes through c's
            // connection too (the echo above answers with `me.send`; this one with `send`).
            let plain = try c.spawn(SpawnOptions(name: "hosted_plain"), state: ()) { _, message, _ in
                if let t = message as? Term, let from = t.pidValue { from.send(Term.atom("plain")) }
                return .continue
            }
            defer { Process.exit(plain, .kill) }
            let plainReply = try await Process.run { p -> Term? in
                p.send(Term.pid(p.pid), to: "hosted_plain", on: Node.named(c.name))
                return try await p.receive(Term.self, after: .seconds(10))
            }
            #expect(plainReply == .atom("plain"))
        }
    }

    @Test("nodesInfo tells each connection as net_kernel:node_info/1 does (state up, type hidden or normal, the peer's address, in and out frame counts), counts what crosses it both ways, and forgets a connection once it closes")
    func nodesInfoCountsTraffic() async throws {
        try await Self.withNodes { b, c in
            #expect(b.nodeInfo(c.name) == nil)              // not connected yet
            #expect(await b.ping(c.name))
            let before = try #require(b.nodeInfo(c.name))
            let cSide = try #require(c.nodeInfo(b.name))
            #expect(before.state == .up || before.state == .silent(ticks: 1))
            #expect(before.isHidden)                         // Configuration.hidden's default
            #expect(before.creation != 0)
            #expect(before.address?.hasPrefix("127.0.0.1:") == true)
            #expect(before.framesOut >= 1 && before.framesIn >= 1)   // ping's call and reply
            #expect(cSide.framesIn >= 1 && cSide.framesOut >= 1)
            #expect(b.nodesInfo.map(\.name).contains(c.name))

            // 100 messages from a process of b to a registered process of c.
            let sink = try c.spawn(SpawnOptions(name: "info_sink")) { me in
                for _ in 0..<100 { _ = try await me.receive() }
            }
            try await b.run { p in
                for i in 0..<100 { p.send(Term.integer(i), to: "info_sink", on: Node.named(c.name)) }
            }
            #expect(await eventually { !sink.isAlive })
            let after = try #require(b.nodeInfo(c.name))
            #expect(after.framesOut >= before.framesOut + 100)
            #expect(after.bytesOut > before.bytesOut + 100 * 6)   // a frame header is 6 bytes
            #expect(await eventually { (c.nodeInfo(b.name)?.framesIn ?? 0) >= cSide.framesIn + 100 })

            b.disconnect(c.name)
            #expect(await eventually { b.nodeInfo(c.name) == nil && c.nodeInfo(b.name) == nil })
        }
    }

    @Test("Losing a connection between two nodes of one OS process fires what crossed it with noconnection (Erlang's distribution protocol): a monitor's DOWN on one side, and a link's exit on both")
    func connectionLossBetweenHostedNodes() async throws {
        try await Self.withNodes { b, c in
            // A process of c, reached from the default node through the wire.
            let target = c.spawn { me in while true { _ = try await me.receive() } }
            let remoteTarget = try await Process.run { p -> Pid in
                _ = try c.spawn(SpawnOptions(name: "hosted_helper")) { h in
                    // The default node's pid, as c decoded it: reached through c's connection.
                    let from = try await h.receive(Term.self).pidValue!
                    #expect(!from.holdsProcess && from.nodeName == Distribution.nodeName)
                    h.send(Term.pid(target), to: from)
                }
                p.send(Term.pid(p.pid), to: "hosted_helper", on: Node.named(c.name))
                return try await p.receive(Term.self).pidValue!
            }
            #expect(remoteTarget == target && !remoteTarget.holdsProcess)

            let outcome = try await Process.run { p -> (String, String, Bool) in
                p.trapExit = true
                let ref = p.monitor(remoteTarget)
                try p.link(remoteTarget)
                // The link's other half is on c now (over the wire): wait until c holds it.
                _ = await eventually { target.process?.withShared { $0.extras?.links.count ?? 0 } == 1 }
                await c.stopDistribution()
                let down = try #require(try await p.receive(DownMessage.self, after: .seconds(10), where: { $0.ref == ref }))
                let exit = try #require(try await p.receive(ExitMessage.self, after: .seconds(10)))
                return (down.reason.description, exit.reason.description, exit.from == remoteTarget)
            }
            #expect(outcome.0 == "noconnection")
            #expect(outcome.1 == "noconnection")
            #expect(outcome.2)
            // c's half: its process linked to a pid of the default node (nil node in memory,
            // reached through c's connection) received noconnection and died, not trapping.
            #expect(await eventually { !target.isAlive })
            _ = b
        }
    }
}
}

/// A GenServer that speaks terms, so that its calls cross the wire: `{add, N}` → the sum.
struct TermCounter: GenServer {
    var count: Int
    typealias Call = Term
    typealias Reply = Term
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if case .tuple(let t) = request, t.count == 2, case .integer(let n) = t[1] { count += n }
        return .reply(.integer(count))
    }
}
