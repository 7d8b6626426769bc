@_spi(Distribution) import Parley
import ParleyRuntime

/// What `global`'s ETS tables hold (`global_names`, `global_names_ext`, `global_locks`),
/// written only by the node's `global_name_server` process and read by anyone: lookups
/// (``Global/whereis(_:)``) need no message.
final class GlobalTables: Sendable {
    struct Name: Sendable {
        var pid: Pid
        /// The resolve method as the registering node sent it (a fun; opaque bytes when it
        /// came from Erlang).
        var method: Term
        var ref: Reference
    }

    struct Lock: Sendable {
        var requester: Term
        var holders: [(pid: Pid, ref: Reference)]
    }

    struct State: Sendable {
        var names: [Term: Name] = [:]
        /// Names registered by a node for a process elsewhere (`register_name_external`).
        var namesExt: [Term: (pid: Pid, regNode: String)] = [:]
        var pidNames: [Pid: Set<Term>] = [:]
        var refNames: [Reference: Term] = [:]
        var locks: [Term: Lock] = [:]
        var refLocks: [Reference: Term] = [:]
        var pidLocks: [Pid: Set<Term>] = [:]
    }

    let state = Locked(State())

    /// `global:whereis_name/1`: the pid, or nil. A local pid whose process has exited is
    /// nil at once (its name goes when the server sees the DOWN).
    func whereis(_ name: Term, home: String) -> Pid? {
        guard let pid = state.withLock({ $0.names[name]?.pid }) else { return nil }
        if (pid.node?.name ?? home) == home, !Process.isAlive(pid) { return nil }
        return pid
    }

    /// `can_set_lock/1`: nil when another requester holds the resource, else its holders.
    func canSetLock(_ id: (resource: Term, requester: Term)) -> [(pid: Pid, ref: Reference)]? {
        state.withLock { s in
            guard let lock = s.locks[id.resource] else { return [] }
            return lock.requester == id.requester ? lock.holders : nil
        }
    }

    var isGlobalLockSet: Bool { state.withLock { $0.locks[Global.resource] != nil } }

    /// `[{Name, Pid, Method}]`, what `exchange` carries.
    var nameList: [Term] {
        state.withLock { s in s.names.map { .tuple([$0.key, .pid($0.value.pid), $0.value.method]) } }
    }

    /// `[{Name, Pid, RegNode}]` (`get_names_ext/0`).
    var namesExtList: [Term] {
        state.withLock { s in s.namesExt.map { .tuple([$0.key, .pid($0.value.pid), .atom(Atom($0.value.regNode))]) } }
    }

    func names(of pid: Pid) -> Set<Term> { state.withLock { $0.pidNames[pid] ?? [] } }
}

/// `gen_server:multi_call/3` as `global` uses it: the request goes to `global_name_server`
/// on every node, each watched by a monitor on that name; a node whose server is gone (or
/// whose connection drops) is a bad node and the call moves on. No timeout, as in global.
enum MultiCall {
    static let server = "global_name_server"

    static func call(_ me: Process, _ nodes: [String], _ request: Term) async throws -> (replies: [(String, Term)], bad: [String]) {
        if nodes.isEmpty { return ([], []) }
        let tag = Reference.make()
        var pending: [Reference: String] = [:]
        var byNode: [String: Reference] = [:]
        for n in nodes where byNode[n] == nil {
            let node = Node.named(n)
            let mref = me.monitor(server, on: node)
            pending[mref] = n
            byNode[n] = mref
            let from = Term.tuple([.pid(me.pid), .tuple([.reference(tag), .atom(Atom(n))])])
            me.send(Term.tuple([.atom("$gen_call"), from, request]), to: server, on: node)
        }
        var replies: [(String, Term)] = []
        var bad: [String] = []
        enum Got { case reply(String, Term), down(Reference) }
        while !pending.isEmpty {
            let got: Got = try await me.receive { m in
                if let t = m as? Term, case .tuple(let r) = t, r.count == 2, case .tuple(let k) = r[0], k.count == 2,
                   k[0] == .reference(tag), case .atom(let n) = k[1], byNode[n.name] != nil {
                    return .reply(n.name, r[1])
                }
                if let d = m as? DownMessage, pending[d.ref] != nil { return .down(d.ref) }
                return nil
            }
            switch got {
            case .reply(let n, let reply):
                guard let mref = byNode.removeValue(forKey: n) else { continue }
                pending[mref] = nil
                me.demonitor(mref, flush: true)
                replies.append((n, reply))
            case .down(let mref):
                if let n = pending.removeValue(forKey: mref) {
                    byNode[n] = nil
                    bad.append(n)
                }
            }
        }
        return (replies, bad)
    }
}
