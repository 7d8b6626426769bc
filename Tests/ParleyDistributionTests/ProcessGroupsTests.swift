import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import Synchronization

/// A Parley process's inbox: the terms it received, for the pg and PubSub tests.
final class TermInbox: Sendable {
    let terms = Locked<[Term]>([])
    /// A process that records every term it receives.
    func spawn() -> Pid {
        let terms = self.terms
        return try! Process.spawn(SpawnOptions(), state: ()) { _, m, _ in
            if let t = m as? Term { terms.withLock { $0.append(t) } }
            return .continue
        }
    }
    func has(_ t: Term) -> Bool { terms.withLock { $0.contains(t) } }
    func count(_ t: Term) -> Int { terms.withLock { $0.filter { $0 == t }.count } }
}

extension DistributionTests {
/// Process groups with the real thing: a scope of Debian's OTP 25 (`pg.erl`, kernel 8.5.3)
/// and a Parley scope of the same name see each other's members; a second Erlang scope with
/// the same group names stays apart; the Erlang scope never crashes (pg crashes its scope on
/// any message it does not expect, so that is the check that every shape we send is right).
@Suite("pg: Parley's scopes with Erlang's pg and with each other", .serialized, .enabled(if: Cluster.erlInstalled))
struct ProcessGroupsTests {
    func pids(_ t: Term) -> [Pid] { (t.listElements ?? []).compactMap(\.pidValue) }

    @Test("With an OTP 25 node: the scope finds Erlang's (discover, sync), members join and leave both ways, a process may join twice, an exit leaves, another Erlang scope stays apart, a lost connection drops the peer's members and a new one brings them back; Erlang's scope process is the same one throughout")
    func withErlang() async throws {
        _ = try await Cluster.node()
        let scope = "parley_pg_\(UInt32.random(in: 0...UInt32.max))", other = scope + "_other"
        let lobby = Term.atom("lobby")
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        // Erlang: the scope and another one, each with a member in lobby.
        let started = try await erl.rpc("pg", "start", [.atom(Atom(scope))])
        guard case .tuple(let ok) = started, ok.count == 2, let erlScope = ok[1].pidValue else {
            Issue.record("pg:start gave \(started)")
            return
        }
        _ = try await erl.rpc("pg", "start", [.atom(Atom(other))])
        let erlMember = try await erl.rpc("erlang", "spawn", [.atom("timer"), .atom("sleep"), .list([.atom("infinity")])])
        let otherMember = try await erl.rpc("erlang", "spawn", [.atom("timer"), .atom("sleep"), .list([.atom("infinity")])])
        let erlPid = try #require(erlMember.pidValue, "erlang:spawn gave \(erlMember)")
        let otherPid = try #require(otherMember.pidValue, "erlang:spawn gave \(otherMember)")
        #expect(try await erl.rpc("pg", "join", [.atom(Atom(scope)), lobby, erlMember]) == .ok)
        #expect(try await erl.rpc("pg", "join", [.atom(Atom(other)), lobby, otherMember]) == .ok)
        func erlMembers(_ s: String = scope) async throws -> [Pid] {
            pids(try await erl.rpc("pg", "get_members", [.atom(Atom(s)), lobby]))
        }

        // Parley's scope, started while connected: it discovers Erlang's, which syncs back.
        let pg = try ProcessGroups.start(scope: scope)
        defer { pg.stop() }
        #expect(await eventually { pg.members(lobby) == [erlPid] }, "\(pg.members(lobby))")
        #expect(pg.localMembers(lobby).isEmpty && pg.groups() == [lobby] && pg.localGroups().isEmpty)

        // A subscription sees Erlang's changes as pg's {Ref, join | leave, Group, Pids}.
        let watcher = TermInbox()
        let watcherPid = watcher.spawn()
        let (ref, now) = try await pg.monitorScope(for: watcherPid)
        #expect(now == [lobby: [erlPid]])

        // A Parley member: Erlang sees it, sends to it by the group, sees it leave.
        let inbox = TermInbox()
        let member = inbox.spawn()
        try await pg.join(lobby, member)
        #expect(pg.members(lobby) == [member, erlPid] && pg.localMembers(lobby) == [member])
        #expect(try await eventually { try await erlMembers().contains(member) })
        _ = try await erl.rpc("erlang", "send", [.pid(member), .atom("hello_from_erlang")])
        #expect(await eventually { inbox.has(.atom("hello_from_erlang")) })
        #expect(try await pg.leave(lobby, member))
        #expect(try await pg.leave(lobby, member) == false, "not_joined")
        #expect(try await eventually { try await erlMembers().contains(member) == false })
        // Twice is twice, on both sides.
        try await pg.join(lobby, member)
        try await pg.join(lobby, [member])
        #expect(try await eventually { try await erlMembers().filter { $0 == member }.count == 2 })
        // The other scope never hears of it.
        #expect(try await erlMembers(other) == [otherPid])

        // Erlang's joins and exits reach the subscription and the table.
        let second = try await erl.rpc("erlang", "spawn", [.atom("timer"), .atom("sleep"), .list([.atom("infinity")])])
        _ = try await erl.rpc("pg", "join", [.atom(Atom(scope)), .atom("kitchen"), second])
        #expect(await eventually { watcher.has(.tuple([.reference(ref), .atom("join"), .atom("kitchen"), .list([second])])) })
        _ = try await erl.rpc("erlang", "exit", [second, .atom("kill")])
        #expect(await eventually { watcher.has(.tuple([.reference(ref), .atom("leave"), .atom("kitchen"), .list([second])])) })
        #expect(await eventually { pg.members(.atom("kitchen")).isEmpty && !pg.groups().contains(.atom("kitchen")) })

        // Our member's exit leaves both of its memberships, on both sides.
        Process.exit(member, .kill)
        #expect(await eventually { pg.members(lobby) == [erlPid] })
        #expect(try await eventually { try await erlMembers() == [erlPid] })

        // A lost connection: each side drops the other's members (the scope's DOWN); a new
        // connection (nodeup) discovers again.
        let again = inbox.spawn()
        try await pg.join(lobby, again)
        #expect(try await eventually { try await erlMembers().contains(again) })
        Distribution.disconnect(erl.name)
        #expect(await eventually { pg.members(lobby) == [again] })
        #expect(await Distribution.ping(erl.name))
        #expect(await eventually { Set(pg.members(lobby)) == [again, erlPid] })
        #expect(try await eventually { try await erlMembers().contains(again) })

        // Erlang's scope took every message we sent without crashing.
        #expect(try await erl.rpc("erlang", "whereis", [.atom(Atom(scope))]) == .pid(erlScope))
        #expect(try await pg.demonitor(ref))
    }

    @Test("Between Parley nodes: a scope started before the connection discovers the other node's at nodeup; members go both ways; a killed node's members leave at once")
    func betweenParleyNodes() async throws {
        _ = try await Cluster.node()
        let scope = "parley_pg_\(UInt32.random(in: 0...UInt32.max))"
        let lobby = Term.atom("lobby")
        let pg = try ProcessGroups.start(scope: scope)
        defer { pg.stop() }
        let inbox = TermInbox()
        let mine = inbox.spawn()
        try await pg.join("lobby", mine)

        let other = try await ExternalNode.parley(["--pg", "\(scope):lobby"])
        defer { other.kill() }
        #expect(await eventually { other.output.withLock { $0 }.contains("pg member:") })
        #expect(await eventually { pg.members(lobby).contains { $0.nodeName == other.name } }, "\(pg.members(lobby))")
        let theirs = try #require(pg.members(lobby).first { $0.nodeName == other.name })
        // Their scope sees ours.
        let seen = try await Process.run { me -> [Pid] in
            for _ in 0..<200 {
                me.send(Term.tuple([.pid(me.pid), lobby]), to: "pg_members", on: Node.named(other.name))
                let list = self.pids(try await me.receive(Term.self))
                if list.contains(mine) { return list }
                try await me.sleep(for: .milliseconds(50))
            }
            return []
        }
        #expect(Set(seen) == [mine, theirs])
        // A message to the group reaches their member, which answers ours.
        theirs.send(Term.tuple([.pid(mine), .atom("hello_from_parley")]))
        #expect(await eventually { inbox.has(.atom("hello_from_parley")) })

        // SIGKILL: the connection closes, their scope's DOWN takes its members.
        other.kill()
        #expect(await eventually { pg.members(lobby) == [mine] })
    }

    @Test("Bad calls are typed errors: a pid of another node cannot join here ({nolocal, Pid}); a scope that is not running is noScope; a taken name refuses a second scope")
    func typedErrors() async throws {
        _ = try await Cluster.node()
        let scope = "parley_pg_\(UInt32.random(in: 0...UInt32.max))"
        let pg = try ProcessGroups.start(scope: scope)
        let away = Pid(node: Node.named("elsewhere@host"), id: 1, serial: 0, creation: 1)
        await #expect(throws: ProcessGroups.Failure.notLocal(away)) { try await pg.join("lobby", away) }
        #expect(throws: ProcessError.self) { try ProcessGroups.start(scope: scope) }
        pg.stop()
        #expect(await eventually { !pg.isRunning })
        await #expect(throws: ProcessGroups.Failure.noScope(scope)) { try await pg.join("lobby", Process.spawn { _ in }) }
        #expect(pg.members("lobby").isEmpty)
    }
}
}
