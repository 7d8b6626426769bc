import Testing
@testable import ParleyDistribution

/// The acceptor's status and the initiator's answer to `alive`, as OTP 25's dist_util and
/// net_kernel run them (lib/kernel/src/dist_util.erl `mark_pending`, `do_alive`,
/// `recv_status`; net_kernel.erl `accept_pending`, `is_pending`). Two machines talk to each
/// other here; `ErlangInteropTests` checks the same exchange against a real OTP 25 node.
@Suite("Handshake status: simultaneous connects and alive")
struct HandshakeStatusTests {
    static let cookie = "c"

    /// Runs an initiator `a@h` against an acceptor `b@h` until neither has anything to
    /// send. Returns every frame each sent and how each ended.
    static func run(status: HandshakeMachine.Status, pending: @escaping () -> Bool)
        -> (fromA: [[UInt8]], fromB: [[UInt8]], a: HandshakeMachine.Action?, b: HandshakeMachine.Action?) {
        var a = HandshakeMachine(initiator: "a@h", flags: .parley, creation: 1, cookie: cookie, dialling: "b@h")
        var b = HandshakeMachine(acceptor: "b@h", flags: .parley, creation: 2, cookie: cookie)
        var fromA: [[UInt8]] = [], fromB: [[UInt8]] = []
        var endA: HandshakeMachine.Action?, endB: HandshakeMachine.Action?
        var toB: [[UInt8]] = [], toA: [[UInt8]] = []
        func take(_ actions: [HandshakeMachine.Action], out: inout [[UInt8]], sent: inout [[UInt8]], end: inout HandshakeMachine.Action?) {
            for action in actions {
                switch action {
                case .send(let f): out.append(f); sent.append(f)
                case .completed, .failed: end = action
                }
            }
        }
        take(a.start(), out: &toB, sent: &fromA, end: &endA)
        while !toA.isEmpty || !toB.isEmpty {
            if !toB.isEmpty {
                let f = toB.removeFirst()
                if endB == nil { take(b.receive(f, status: { _ in status }), out: &toA, sent: &fromB, end: &endB) }
            }
            if !toA.isEmpty {
                let f = toA.removeFirst()
                if endA == nil { take(a.receive(f, pending: pending), out: &toB, sent: &fromA, end: &endA) }
            }
        }
        return (fromA, fromB, endA, endB)
    }

    static func text(_ frame: [UInt8]) -> String { String(decoding: frame, as: UTF8.self) }

    @Test("dist_util mark_pending: a node up with the dialler answers 'alive'; the dialler's 'true' (its dial is pending: the old connection is stale) lets the handshake finish, to replace the old connection")
    func aliveTrueGoesOn() {
        let r = Self.run(status: .alive, pending: { true })
        #expect(Self.text(r.fromB[0]) == "salive")
        #expect(Self.text(r.fromA[1]) == "strue")
        #expect(r.a == .completed(PeerInfo(name: "b@h", flags: .parley, creation: 2)))
        guard case .completed(let peer) = r.b else { Issue.record("acceptor did not complete: \(String(describing: r.b))"); return }
        #expect(peer.name == "a@h")
    }

    @Test("dist_util recv_status: a dialler whose connection is no longer pending (the peer's own attempt brought it up) answers 'alive' with 'false', and both sides end the attempt without touching the live connection")
    func aliveFalseEnds() {
        let r = Self.run(status: .alive, pending: { false })
        #expect(r.fromA.map(Self.text).last == "sfalse")
        #expect(r.fromB.count == 1)  // "salive", and no challenge after the refusal
        #expect(r.a == .failed(.superseded(peer: "b@h")))
        #expect(r.b == .failed(.superseded(peer: "a@h")))
    }

    @Test("net_kernel accept_pending: 'nok' to the smaller node of a simultaneous connect, which then waits for the other's connection; 'ok_simultaneous' goes on as 'ok'")
    func nokAndOkSimultaneous() {
        let refused = Self.run(status: .nok, pending: { true })
        #expect(Self.text(refused.fromB[0]) == "snok")
        #expect(refused.a == .failed(.refused(peer: "b@h", status: "nok")))
        let joined = Self.run(status: .okSimultaneous, pending: { true })
        #expect(Self.text(joined.fromB[0]) == "sok_simultaneous")
        guard case .completed = joined.a, case .completed = joined.b else { Issue.record("ok_simultaneous did not complete"); return }
    }

    @Test("A dial that lost its connection to the peer's attempt (net_kernel kills a remarked setup process) stops at 'ok' rather than finish and knock the winner off")
    func supersededDialStops() {
        let r = Self.run(status: .ok, pending: { false })
        #expect(r.a == .failed(.superseded(peer: "b@h")))
        #expect(r.fromA.count == 1)  // only send_name: no challenge reply went out
    }

    @Test("The acceptor waiting for the answer to 'alive' rejects anything but 'strue' and 'sfalse'")
    func aliveReplyMalformed() {
        var b = HandshakeMachine(acceptor: "b@h", flags: .parley, creation: 2, cookie: Self.cookie)
        var a = HandshakeMachine(initiator: "a@h", flags: .parley, creation: 1, cookie: Self.cookie, dialling: "b@h")
        guard case .send(let name) = a.start().first else { Issue.record("no send_name"); return }
        _ = b.receive(name, status: { _ in .alive })
        let r = b.receive(Array("smaybe".utf8))
        guard case .failed(.malformed) = r.last else { Issue.record("accepted \(r)"); return }
    }
}
