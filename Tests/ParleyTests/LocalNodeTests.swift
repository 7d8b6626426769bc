import Foundation
@testable import Parley
import Testing

/// Several nodes in one OS process (`LocalNode`): each has its own process table and
/// registered names, as separate BEAM nodes do (`register/2`, `whereis/1`, `registered/0`
/// and `processes/0` are per node), and code running in a process acts on its node.
@Suite("Nodes as values (LocalNode)", .timeLimit(.minutes(1)))
struct LocalNodeTests {
    static func uniqueName(_ prefix: String) -> String { "\(prefix)_\(UUID().uuidString.prefix(8))@127.0.0.1" }

    @Test("register/2 and whereis/1 are per node: the same name on two nodes names two processes, and each node lists only its own processes")
    func namesAndProcessesArePerNode() async throws {
        let b = try LocalNode(name: Self.uniqueName("b"))
        let name = "same_\(UUID().uuidString.prefix(8))"
        let onB = try b.spawn(SpawnOptions(name: name)) { me in _ = try await me.receive() }
        let onDefault = try Process.spawn(SpawnOptions(name: name)) { me in _ = try await me.receive() }
        defer { Process.exit(onB, .kill); Process.exit(onDefault, .kill) }

        #expect(b.whereis(name) == onB)
        #expect(Process.whereis(name) == onDefault)
        #expect(LocalNode.default.whereis(name) == onDefault)
        #expect(b.registered() == [name])
        #expect(b.list() == [onB])
        #expect(!Process.list().contains(onB))
        #expect(Process.list().contains(onDefault))
        // A pid of another node of this OS process carries that node.
        #expect(onB.nodeName == b.name)
        #expect(onDefault.nodeName == Node.localNodeName)
        // Code running in b's process sees b's registry through the plain API.
        let seen = try await b.run { _ in (Process.whereis(name), Process.registered()) }
        #expect(seen.0 == onB)
        #expect(seen.1.contains(name))
        // The name is freed on its node when the process exits, and only there.
        Process.exit(onB, .kill)
        #expect(await eventually { b.whereis(name) == nil })
        #expect(Process.whereis(name) == onDefault)
    }

    @Test("A process spawns onto its own node: me.spawn, the static Process.spawn from its body, and a GenServer it starts all live on that node")
    func spawnsStayOnTheirNode() async throws {
        let c = try LocalNode(name: Self.uniqueName("c"))
        let homes = try await c.run { me -> [Bool] in
            let viaMe = me.spawn { p in _ = try await p.receive() }
            let viaStatic = Process.spawn { p in _ = try await p.receive() }
            let (viaMonitor, _) = me.spawnMonitor { p in _ = try await p.receive() }
            defer { for p in [viaMe, viaStatic, viaMonitor] { Process.exit(p, .kill) } }
            return [viaMe, viaStatic, viaMonitor].map { c.list().contains($0) && !LocalNode.default.list().contains($0) }
                + [me.node === c, LocalNode.current === c]
        }
        #expect(homes == [true, true, true, true, true])
        let explicit = try Process.spawn(SpawnOptions(node: c)) { me in _ = try await me.receive() }
        defer { Process.exit(explicit, .kill) }
        #expect(c.list().contains(explicit))
    }

    @Test("Node names are name@host and unique in the OS process: a bad or taken name is a typed error, and a released node frees its name")
    func nodeNames() throws {
        #expect(throws: ProcessError.badNodeName("nohost")) { try LocalNode(name: "nohost") }
        #expect(throws: ProcessError.badNodeName("@h")) { try LocalNode(name: "@h") }
        let name = Self.uniqueName("d")
        do {
            let d = try LocalNode(name: name)
            #expect(throws: ProcessError.nodeExists(name)) { try LocalNode(name: name) }
            #expect(d.name == name)
        }
        // The first one is gone (no process held it): the name is free again.
        _ = try LocalNode(name: name)
    }

    @Test("Without distribution, a message to a pid of another node that arrived without its process is dropped, as to an unconnected node (send never fails)")
    func unconnectedNodesDropMessages() async throws {
        let e = try LocalNode(name: Self.uniqueName("e"))
        let stranger = Pid(node: Node.named(e.name), id: 999_999, serial: 0, creation: 1)
        // From a process of the default node: routed to e's node, which is not connected.
        try await Process.run { me in
            me.send("lost", to: stranger)
            let ref = me.monitor(stranger)
            let down = try await me.down(ref)
            #expect(down.reason.description == "noconnection")
        }
    }
}
