import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

/// The pg scope's machine against the rules of kernel's `pg.erl` (OTP 25, kernel 8.5.3),
/// line by line: what each message does to the table, and what goes out.
@Suite("pg scope state (pg.erl's rules)")
struct ProcessGroupsStateTests {
    typealias S = ProcessGroupsState

    let me = Pid(node: Node.named("parley@host"), id: 100, serial: 0, creation: 1)
    func local(_ n: UInt32) -> Pid { Pid(node: Node.named("parley@host"), id: n, serial: 0, creation: 1) }
    func remote(_ n: UInt32, _ node: String = "erl@host") -> Pid { Pid(node: Node.named(node), id: n, serial: 0, creation: 7) }
    let lobby = Term.atom("lobby"), kitchen = Term.atom("kitchen")

    func sends(_ actions: [S.Action]) -> [([Pid], Term)] {
        actions.compactMap { if case .send(let to, let m) = $0 { return (to, m) } else { return nil } }
    }

    @Test("join_local: a join puts its pids in front (get_members order), a process may join twice and then counts twice; each new member is monitored once")
    func joinOrderAndMultiplicity() {
        var s = S(me: me)
        let a = local(1), b = local(2)
        let j1 = s.join(lobby, .one(a))
        #expect(j1.contains(.monitor(a)))
        _ = s.join(lobby, .many([b, a]))
        #expect(s.rows[lobby] == S.Row(all: [b, a, a], local: [b, a, a]))
        let j3 = s.join(kitchen, .one(a))
        #expect(!j3.contains(.monitor(a)), "already monitored")
        #expect(s.local[a]?.groups == [kitchen, lobby, lobby])
    }

    @Test("leave_local: not_joined when none of the pids is a member; a member that leaves its last group is demonitored; a group with no members is gone (pg has no empty groups)")
    func leaveRules() {
        var s = S(me: me)
        let a = local(1), ref = Reference.make()
        _ = s.join(lobby, .one(a))
        s.monitored(a, ref: ref)
        #expect(s.leave(kitchen, .one(a)) == .failure(.notJoined))
        guard case .success(let actions) = s.leave(lobby, .one(a)) else { Issue.record("leave refused"); return }
        #expect(actions.contains(.demonitor(ref)))
        #expect(actions.contains(.row(lobby, nil)))
        #expect(s.rows[lobby] == nil && s.local[a] == nil)
        #expect(s.leave(lobby, .one(a)) == .failure(.notJoined))
    }

    @Test("discover: the answer is the sync cast {sync, Self, [{Group, [Pid]}]}; an unknown peer is monitored and discovered back (noconnect), a known one is not")
    func discover() {
        var s = S(me: me)
        let a = local(1), peer = remote(50)
        _ = s.join(lobby, .one(a))
        let first = s.discover(peer)
        #expect(first.first == .cast(peer, .tuple([.atom("sync"), .pid(me), .list([.tuple([lobby, .list([.pid(a)])])])])))
        #expect(first.contains(.monitor(peer)))
        #expect(first.contains(.send([peer], .tuple([.atom("discover"), .pid(me)]))))
        let again = s.discover(peer)
        #expect(again.count == 1, "a known peer gets the sync only")
    }

    @Test("join and leave are broadcast to every known peer scope in pg's shapes: {join, Self, Group, PidOrPids} and {leave, Self, PidOrPids, [Group]}")
    func broadcastShapes() {
        var s = S(me: me)
        let a = local(1), b = local(2), peer = remote(50)
        _ = s.discover(peer)
        let j = sends(s.join(lobby, .one(a)))
        #expect(j.count == 1 && j[0].0 == [peer] && j[0].1 == .tuple([.atom("join"), .pid(me), lobby, .pid(a)]))
        let jm = sends(s.join(lobby, .many([b])))
        #expect(jm[0].1 == .tuple([.atom("join"), .pid(me), lobby, .list([.pid(b)])]))
        guard case .success(let l) = s.leave(lobby, .one(a)) else { Issue.record("leave refused"); return }
        #expect(sends(l)[0].1 == .tuple([.atom("leave"), .pid(me), .pid(a), .list([lobby])]))
    }

    @Test("sync replaces everything known of the peer: new groups join, changed ones are rewritten (Pids ++ AllOld -- Old), groups it no longer lists leave")
    func syncReplaces() {
        var s = S(me: me)
        let peer = remote(50), x = remote(1), y = remote(2), z = remote(3), a = local(1)
        _ = s.join(lobby, .one(a))
        _ = s.sync(peer, [(lobby, [x]), (kitchen, [y])])
        #expect(s.rows[lobby] == S.Row(all: [x, a], local: [a]))
        #expect(s.rows[kitchen] == S.Row(all: [y], local: []))
        _ = s.sync(peer, [(lobby, [z, x])])
        #expect(s.rows[lobby] == S.Row(all: [z, x, a], local: [a]))
        #expect(s.rows[kitchen] == nil, "the peer no longer lists it")
        #expect(s.remote[peer]?.groups == [lobby: [z, x]])
    }

    @Test("{join, Peer, ...} and {leave, Peer, ...} from a peer the scope does not know are ignored (pg.erl: a flickering node, or one outside the overlay)")
    func unknownPeerIgnored() {
        var s = S(me: me)
        #expect(s.remoteJoin(remote(50), lobby, .one(remote(1))).isEmpty)
        #expect(s.remoteLeave(remote(50), .one(remote(1)), [lobby]).isEmpty)
        #expect(s.rows.isEmpty)
    }

    @Test("a leave for a group the peer never joined, which crashes an OTP scope (maps:get badkey), is refused whole and changes nothing")
    func leaveForUnknownGroupRefused() {
        var s = S(me: me)
        let peer = remote(50), x = remote(1)
        _ = s.sync(peer, [(lobby, [x])])
        #expect(s.remoteLeave(peer, .one(x), [lobby, kitchen]).isEmpty)
        #expect(s.takeIgnored().count == 1)
        #expect(s.rows[lobby]?.all == [x], "nothing of the message applied")
        #expect(!s.remoteLeave(peer, .one(x), [lobby]).isEmpty)
        #expect(s.rows[lobby] == nil)
    }

    @Test("a local member's DOWN: it leaves every group it joined and the peers get one {leave, Self, Pid, Groups}; a peer scope's DOWN takes all its members; a stale reference does nothing")
    func downs() {
        var s = S(me: me)
        let a = local(1), peer = remote(50), x = remote(1), refA = Reference.make(), refPeer = Reference.make()
        _ = s.discover(peer)
        s.monitored(peer, ref: refPeer)
        _ = s.join(lobby, .one(a))
        _ = s.join(kitchen, .one(a))
        s.monitored(a, ref: refA)
        _ = s.remoteJoin(peer, lobby, .one(x))
        #expect(s.down(Reference.make(), a).isEmpty)
        let d = s.down(refA, a)
        #expect(sends(d).map(\.1) == [.tuple([.atom("leave"), .pid(me), .pid(a), .list([kitchen, lobby])])])
        #expect(s.rows[lobby]?.all == [x] && s.rows[kitchen] == nil)
        _ = s.down(refPeer, peer)
        #expect(s.rows.isEmpty && s.remote.isEmpty)
    }

    @Test("monitor_scope and monitor(Group) (OTP 25.1): {Ref, join | leave, Group, [Pid]} for each change; demonitor ends it; a subscriber's DOWN ends it")
    func subscriptions() {
        var s = S(me: me)
        let sub = local(9), a = local(1), refScope = Reference.make(), refGroup = Reference.make()
        #expect(s.monitorScope(sub, ref: refScope).isEmpty)
        #expect(s.monitorGroup(kitchen, sub, ref: refGroup).isEmpty)
        let j = sends(s.join(lobby, .one(a)))
        #expect(j.map(\.1) == [.tuple([.reference(refScope), .atom("join"), lobby, .list([.pid(a)])])], "the kitchen subscription hears nothing of the lobby")
        let k = sends(s.join(kitchen, .one(a)))
        #expect(k.count == 2, "both subscriptions hear of the kitchen")
        let first = s.demonitor(refScope), second = s.demonitor(refScope)
        #expect(first && !second)
        _ = s.down(refGroup, sub)
        #expect(sends(s.join(kitchen, .one(local(2)))).isEmpty)
    }
}
