import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

extension DistributionTests {
/// Three Parley nodes as separate OS processes on loopback: this test process and two
/// `parley node` processes.
@Suite("Parley cluster", .serialized)
struct ParleyClusterTests {
    @Test("Three Parley nodes: calls to each node's counter, and a message relayed node to node over a connection made on demand")
    func threeNodes() async throws {
        let me = try await Cluster.node()
        let n2 = try await ExternalNode.parley()
        let n3 = try await ExternalNode.parley()
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
