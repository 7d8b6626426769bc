import Testing
@testable import ParleyDistribution

/// The failure detector's state machine (SWIM's probe and ping-req, Lifeguard's local
/// health), driven with a fake clock: 100 ms rounds, indirect probes after 400 ms of
/// silence, suspect after 600 ms, down after 1500 ms (the defaults).
@Suite("Failure detector state machine")
struct FailureDetectorStateTests {
    typealias FD = FailureDetectorState
    static let ms: UInt64 = 1_000_000
    static let settings: FD.Settings = {
        let d = Distribution.FailureDetection()
        return FD.Settings(probeInterval: d.probeInterval, indirectAfter: d.indirectAfter, suspectAfter: d.suspectAfter,
                           downAfter: d.downAfter, indirectProbes: d.indirectProbes)
    }()

    /// Rounds every 100 ms from `from` to `to` (inclusive); `heard` says who was heard in
    /// the round at a time. Returns every action with its time.
    static func run(_ fd: inout FD, from: UInt64, to: UInt64, heard: (UInt64) -> Set<String> = { _ in [] }) -> [(UInt64, FD.Action)] {
        var out: [(UInt64, FD.Action)] = []
        var t = from
        while t <= to {
            out += fd.tick(now: t * ms, heard: heard(t)).map { (t, $0) }
            t += 100
        }
        return out
    }

    static func verdicts(_ actions: [(UInt64, FD.Action)]) -> [(UInt64, FD.Action)] {
        actions.filter {
            switch $0.1 {
            case .suspect, .reachable, .down: return true
            default: return false
            }
        }
    }

    @Test("A silent peer is pinged every round, suspect once after 600 ms and down once after 1500 ms (invariants 1 and 2)")
    func silentPeer() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("b@h", now: 0)
        let actions = Self.run(&fd, from: 100, to: 3000)
        let v = Self.verdicts(actions)
        #expect(v.count == 2)
        #expect(v.first?.0 == 600)
        #expect(v.first?.1 == .suspect("b@h", silentFor: .milliseconds(600)))
        #expect(v.last?.0 == 1500)
        #expect(v.last?.1 == .down("b@h", silentFor: .milliseconds(1500)))
        // Pinged in every round until down, never after.
        let pings = actions.filter { $0.1 == .ping("b@h") }.map(\.0)
        #expect(pings == Array(stride(from: 100, through: 1400, by: 100)))
        #expect(fd.peers.isEmpty)
    }

    @Test("A peer heard from while suspect becomes reachable and is not declared down")
    func suspectThenHeard() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("b@h", now: 0)
        let actions = Self.run(&fd, from: 100, to: 3000) { $0 == 1000 ? ["b@h"] : [] }
        let v = Self.verdicts(actions).map(\.1)
        #expect(v == [.suspect("b@h", silentFor: .milliseconds(600)), .reachable("b@h"),
                      .suspect("b@h", silentFor: .milliseconds(600)), .down("b@h", silentFor: .milliseconds(1500))])
        #expect(Self.verdicts(actions).last?.0 == 2500)
    }

    @Test("SWIM ping-req: after 400 ms of silence two healthy peers are asked to probe; their word keeps the peer up though we hear nothing directly")
    func indirectProbe() {
        var fd = FD(settings: Self.settings)
        for n in ["b@h", "c@h", "d@h"] { fd.peerSpeaks(n, now: 0) }
        var actions: [(UInt64, FD.Action)] = []
        var t: UInt64 = 100
        while t <= 3000 {
            // c and d are heard every round; b only through them, from 500 ms on.
            actions += fd.tick(now: t * Self.ms, heard: ["c@h", "d@h"]).map { (t, $0) }
            if t >= 500 { actions += fd.heardIndirectly("b@h", now: t * Self.ms).map { (t, $0) } }
            t += 100
        }
        let asks = actions.filter { if case .pingRequest(_, "b@h") = $0.1 { return true } else { return false } }
        #expect(asks.first?.0 == 400)
        #expect(Set(asks.filter { $0.0 == 400 }.map { if case .pingRequest(let via, _) = $0.1 { return via } else { return "" } }) == ["c@h", "d@h"])
        #expect(Self.verdicts(actions).isEmpty)
    }

    @Test("Without another healthy peer there is no one to ask: no ping-req goes out")
    func noOneToAsk() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("b@h", now: 0)
        let actions = Self.run(&fd, from: 100, to: 1000)
        #expect(!actions.contains { if case .pingRequest = $0.1 { return true } else { return false } })
    }

    @Test("A ping-req for a peer heard within two rounds is answered at once; otherwise the peer is pinged and the answer goes when it is heard")
    func relays() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("t@h", now: 0)
        fd.peerSpeaks("a@h", now: 0)
        #expect(fd.pingRequested(by: "a@h", target: "t@h", now: 150 * Self.ms) == [.alive(to: "a@h", target: "t@h")])
        #expect(fd.pingRequested(by: "a@h", target: "t@h", now: 500 * Self.ms) == [.ping("t@h")])
        let later = fd.tick(now: 600 * Self.ms, heard: ["t@h"])
        #expect(later.contains(.alive(to: "a@h", target: "t@h")))
        // Asked about a node we do not monitor (an Erlang node): nothing.
        #expect(fd.pingRequested(by: "a@h", target: "erl@h", now: 700 * Self.ms).isEmpty)
    }

    @Test("Lifeguard's local health: a round that comes 5 s late (this node was stopped or starved) blames nobody for the time it lost")
    func lateRoundForgives() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("b@h", now: 0)
        _ = Self.run(&fd, from: 100, to: 300, heard: { _ in ["b@h"] })
        // Nothing for 5 s: this process did not run.
        let late = fd.tick(now: 5300 * Self.ms, heard: [])
        #expect(Self.verdicts(late.map { (5300, $0) }).isEmpty)
        // From there on the silence counts again.
        let after = Self.run(&fd, from: 5400, to: 7000)
        #expect(Self.verdicts(after).last?.1 == .down("b@h", silentFor: .milliseconds(1500)))
        #expect(Self.verdicts(after).last?.0 == 6700)
    }

    @Test("Late rounds never bank credit: a peer heard just before a run of late rounds is down 1500 ms after its last word once rounds are on time again, not later")
    func lateRoundsDoNotBank() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("b@h", now: 0)
        // Heard at 100; then every round comes 300 ms late, ten times over (each one would
        // forgive 200 ms: 2 s in all).
        _ = fd.tick(now: 100 * Self.ms, heard: ["b@h"])
        var t: UInt64 = 100
        var verdicts: [(UInt64, FD.Action)] = []
        for _ in 0..<10 {
            t += 400
            verdicts += Self.verdicts(fd.tick(now: t * Self.ms, heard: ["b@h"]).map { (t, $0) })
        }
        // b speaks last at t; rounds are on time from here: down at t + 1500.
        let last = t
        let after = Self.run(&fd, from: t + 100, to: t + 3000)
        #expect(Self.verdicts(after).last?.1 == .down("b@h", silentFor: .milliseconds(1500)))
        #expect(Self.verdicts(after).last?.0 == last + 1500)
        #expect(verdicts.isEmpty)
    }

    @Test("A peer whose connection closed gets no probes and no verdicts; a node that never spoke the protocol is never monitored (invariant 3)")
    func goneAndSilentErlang() {
        var fd = FD(settings: Self.settings)
        fd.peerSpeaks("b@h", now: 0)
        _ = fd.pingRequested(by: "b@h", target: "b@h", now: 0)
        fd.peerGone("b@h")
        #expect(Self.run(&fd, from: 100, to: 3000).isEmpty)
        #expect(fd.relays.isEmpty)
    }
}
