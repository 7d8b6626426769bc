import Foundation
import Synchronization
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP

extension DistributionTests {
/// `DistributedSupervisor`: Horde's DynamicSupervisor API (start_child, terminate_child,
/// which_children, count_children) with OTP's restart rules (permanent, transient,
/// temporary; max_restarts 3 in max_seconds 5) on top of the registry's placement.
@Suite("Distributed supervisor", .serialized)
struct DistributedSupervisorTests {
    static func start(_ name: String, on nodes: [LocalNode], intensity: Int = 3) async throws -> [DistributedSupervisor] {
        var result: [DistributedSupervisor] = []
        for n in nodes {
            DistributedSupervisor(name, on: n).define("tally") { Tally(context: $0) }
            let s = try await DistributedSupervisor.start(name, on: n, intensity: intensity, period: .seconds(5))
            DistributedRegistryTests.running.withLock { $0.append(s.registry) }
            result.append(s)
        }
        return result
    }

    static func crash(_ s: DistributedSupervisor, _ id: String) async -> Gen.CallError? {
        do { _ = try await s.call(id, Term.atom("crash"), timeout: .seconds(5)); return nil } catch { return error }
    }

    @Test("OTP's restart types, cluster-wide: a permanent child that crashes restarts on its node from its checkpoint, and every node sees the new pid; a transient one restarts after a crash but not after a normal stop; a temporary one never; which_children and count_children list the cluster's children; terminate_child stops one wherever it runs")
    func restartTypes() async throws {
        try await DistributedRegistryTests.withCluster(3) { nodes in
            let sups = try await Self.start("sup_\(UInt32.random(in: 0...UInt32.max))", on: nodes)
            try await sups[0].startChild("perm", start: "tally", arguments: .atom("checkpoint"), restart: .permanent)
            try await sups[1].startChild("trans", start: "tally", arguments: .atom("checkpoint"), restart: .transient)
            try await sups[2].startChild("temp", start: "tally", restart: .temporary)
            #expect(sups[1].whichChildren().map(\.id) == ["perm", "temp", "trans"])
            #expect(sups[2].countChildren().active == 3)
            for id in ["perm", "trans"] { _ = try await sups[0].call(id, Term.atom("bump")) }

            let perm = sups[0].registry.lookup("perm")!
            #expect(await Self.crash(sups[1], "perm") != nil)
            #expect(await eventually { sups.allSatisfy { s in s.registry.lookup("perm").map { $0 != perm && $0.nodeName == perm.nodeName } ?? false } })
            #expect(await DistributedRegistryTests.get(sups[2].registry, "perm") == 1, "restarted from its checkpoint")
            #expect(sups[0].registry.entry("perm")?.epoch == 2)

            let trans = sups[0].registry.lookup("trans")!
            #expect(await Self.crash(sups[0], "trans") != nil)
            #expect(await eventually { sups[2].registry.lookup("trans").map { $0 != trans } ?? false })
            _ = try await sups[0].call("trans", Term.atom("stop"))
            #expect(await eventually { sups.allSatisfy { $0.registry.lookup("trans") == nil } }, "a transient child that stops normally is not restarted")

            #expect(await Self.crash(sups[0], "temp") != nil)
            #expect(await eventually { sups.allSatisfy { $0.registry.lookup("temp") == nil } })

            let p = sups[0].registry.lookup("perm")!
            try await sups[2].terminateChild("perm")
            #expect(sups.allSatisfy { $0.whichChildren().isEmpty })
            #expect(await eventually { !p.isAlive })
            await #expect(throws: DistributedRegistry.Failure.notRegistered("perm")) { try await sups[1].terminateChild("perm") }
        }
    }

    @Test("Restart intensity (max_restarts 3 in max_seconds 5, per node): a permanent child that crashes a fourth time within the period is given up")
    func intensity() async throws {
        try await DistributedRegistryTests.withCluster(2) { nodes in
            let sups = try await Self.start("sup_\(UInt32.random(in: 0...UInt32.max))", on: nodes)
            try await sups[0].startChild("loop", start: "tally", restart: .permanent)
            for round in 1...3 {
                let before = sups[0].registry.lookup("loop")
                #expect(await Self.crash(sups[0], "loop") != nil)
                #expect(await eventually { sups[0].registry.lookup("loop").map { $0 != before } ?? false }, "restart \(round)")
            }
            #expect(await Self.crash(sups[0], "loop") != nil)
            #expect(await eventually { sups.allSatisfy { $0.registry.lookup("loop") == nil } }, "the fourth crash in 5 s is not restarted")
        }
    }

    @Test("A member dies: its children restart on the others (Horde #172: they vanished), and which_children on every node lists each child once")
    func nodeLoss() async throws {
        try await DistributedRegistryTests.withCluster(3) { nodes in
            let sups = try await Self.start("sup_\(UInt32.random(in: 0...UInt32.max))", on: nodes)
            for i in 0..<30 { try await sups[0].startChild("c\(i)", start: "tally", restart: .permanent) }
            let onC = sups[0].whichChildren().filter { $0.node == nodes[2].name }
            #expect(!onC.isEmpty)
            await DistributedRegistryTests.kill(nodes[2], sups.map(\.registry))
            #expect(await eventually {
                sups[0..<2].allSatisfy { s in
                    let c = s.whichChildren()
                    return c.count == 30 && c.allSatisfy { $0.node != nodes[2].name } && Set(c.map(\.id)).count == 30
                }
            })
        }
    }
}
}
