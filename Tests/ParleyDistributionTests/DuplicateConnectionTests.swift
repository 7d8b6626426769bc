import Foundation
import ParleyTestSupport
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

/// A node that dials a node it is already up with: dist_util's `alive` exchange (OTP 25
/// lib/kernel/src/dist_util.erl `mark_pending` → `do_alive`, the initiator's `recv_status`
/// → net_kernel's `is_pending`). The acceptor answers `alive`; the dialler says `true` if its
/// dial is still pending (it restarted, or the old connection died unseen), and the new
/// connection replaces the old one once the cookie is proved; `false` if its connection came
/// up some other way (a simultaneous connect that already settled), and the old connection
/// is left alone. Before this, Parley answered `ok` and replaced a live connection whenever
/// a late dial of a simultaneous connect arrived, and both nodes saw a nodedown.
extension DistributionTests {
@Suite("Duplicate connections (dist_util alive)", .serialized)
struct DuplicateConnectionTests {
    /// A tick (an empty frame), so the node's net tick sees the raw connection alive.
    static let tick: [UInt8] = [0, 0, 0, 0]

    @Test("Parley as the acceptor: a second dial from an up node gets 'alive'; 'false' leaves the live connection up, 'true' replaces it")
    func parleyAnswersAlive() async throws {
        _ = try await Cluster.node()
        let port = try #require(Distribution.port)
        let node = Distribution.nodeName
        let name = ExternalNode.uniqueName("dup")
        try await offThread {
            let first = try RawClient(port: port)
            defer { first.close() }
            try first.handshake(as: name, with: node)
            #expect(first.statuses == ["ok"])

            let late = try RawClient(port: port)
            defer { late.close() }
            #expect(throws: HandshakeError.superseded(peer: node)) { try late.handshake(as: name, with: node, pending: false) }
            #expect(late.statuses == ["alive"])
            #expect(late.waitForClose(within: .seconds(5)) != nil)
            first.send(Self.tick)
            #expect(first.waitForClose(within: .milliseconds(300)) == nil, "the live connection was dropped for a dial that said false")

            let restarted = try RawClient(port: port)
            defer { restarted.close() }
            first.send(Self.tick)
            try restarted.handshake(as: name, with: node, pending: true)
            #expect(restarted.statuses == ["alive"])
            restarted.send(Self.tick)
            // Well inside the 4 s net tick timeout: closed because it was replaced.
            #expect(first.waitForClose(within: .seconds(2)) != nil, "the old connection stayed after the peer said its dial was pending")
            restarted.send(Self.tick)
            #expect(Distribution.nodes.contains(name))
        }
    }

    @Test("OTP 25 as the acceptor answers a second dial from a node it is up with by 'alive', keeps the connection on 'false', and replaces it on 'true'",
          .enabled(if: Cluster.erlInstalled))
    func erlangAnswersAlive() async throws {
        let me = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        #expect(Distribution.nodes.contains(erl.name))
        let alive = String(erl.name.prefix { $0 != "@" })
        let info = try #require(try await EPMDClient.lookup(name: alive, host: "127.0.0.1"))
        let port = Int(info.port)
        let raw = try await offThread { () throws -> RawClient in
            let late = try RawClient(port: port)
            defer { late.close() }
            #expect(throws: HandshakeError.superseded(peer: erl.name)) { try late.handshake(as: me, with: erl.name, pending: false) }
            #expect(late.statuses == ["alive"])
            return try RawClient(port: port)
        }
        defer { raw.close() }
        // 'false': our real connection is untouched.
        let pong = try await erl.rpc("erlang", "node", [])
        #expect(pong == .atom(Atom(erl.name)))
        // 'true': Erlang takes the cookie proof, kills the old connection (wait_pending),
        // and only then acknowledges.
        try await offThread {
            try raw.handshake(as: me, with: erl.name, pending: true)
            #expect(raw.statuses == ["alive"])
        }
        #expect(await eventually { !Distribution.nodes.contains(erl.name) })
    }
}
}
