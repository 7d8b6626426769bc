@_spi(Distribution) import Parley

/// One `pg` scope's state, as kernel's `pg.erl` (OTP 25) keeps it, as a machine that returns
/// actions: the scope process (``ProcessGroupsServer``) feeds it calls, the peers' messages
/// and DOWNs, and performs what it returns (sends, monitors, the table's rows) outside it.
///
/// Every rule is pg.erl's, including the order of members (a join puts its pids in front)
/// and the shapes on the wire: `{join, Peer, Group, PidOrPids}`,
/// `{leave, Peer, PidOrPids, [Group]}`, `{discover, Peer}` and the `sync` cast
/// `{sync, Peer, [{Group, [Pid]}]}`. Where pg.erl crashes its scope on a peer's message
/// (a leave for a group that peer never announced: `maps:get` badkey), this logs and goes on.
struct ProcessGroupsState {
    /// A single pid or a list, as the API was given it: the wire carries the same form.
    enum Members: Equatable, Sendable {
        case one(Pid)
        case many([Pid])

        var pids: [Pid] {
            switch self {
            case .one(let p): return [p]
            case .many(let ps): return ps
            }
        }

        var term: Term {
            switch self {
            case .one(let p): return .pid(p)
            case .many(let ps): return .list(ps.map { .pid($0) })
            }
        }

        init?(_ term: Term) {
            switch term {
            case .pid(let p): self = .one(p)
            case .list(let items):
                var pids: [Pid] = []
                pids.reserveCapacity(items.count)
                for item in items {
                    guard case .pid(let p) = item else { return nil }
                    pids.append(p)
                }
                self = .many(pids)
            default: return nil
            }
        }
    }

    /// A group's row of the scope's table (pg's ETS row `{Group, All, Local}`).
    struct Row: Equatable, Sendable {
        var all: [Pid]
        var local: [Pid]
    }

    /// What the scope process does for a step, in order.
    enum Action: Equatable {
        /// Monitor a local member or a peer scope, then report the reference with
        /// ``monitored(_:ref:)``.
        case monitor(Pid)
        case demonitor(Reference)
        /// `erlang:send(To, Message, [noconnect])` to each pid (pg's broadcast).
        case send([Pid], Term)
        /// `gen_server:cast(To, Request)`: `{'$gen_cast', Request}`.
        case cast(Pid, Term)
        /// A row changed (nil: the group is gone, pg has no empty groups).
        case row(Term, Row?)
    }

    enum Failure: Error, Equatable {
        case notJoined
    }

    struct LocalEntry {
        var ref: Reference?
        var groups: [Term]
    }

    struct RemoteEntry {
        var ref: Reference?
        var groups: [Term: [Pid]]
    }

    /// This scope's pid (the `Peer` of what it sends).
    let me: Pid
    private(set) var local: [Pid: LocalEntry] = [:]
    private(set) var remote: [Pid: RemoteEntry] = [:]
    private(set) var rows: [Term: Row] = [:]
    /// `monitor_scope` subscriptions: reference → subscriber.
    private(set) var scopeMonitors: [Reference: Pid] = [:]
    /// `monitor(Group)` subscriptions, both ways.
    private(set) var groupMonitors: [Reference: (pid: Pid, group: Term)] = [:]
    private(set) var monitoredGroups: [Term: [(pid: Pid, ref: Reference)]] = [:]
    /// Peer messages that pg.erl would have crashed on, for the log.
    private(set) var ignored: [String] = []

    init(me: Pid) { self.me = me }

    // MARK: The local API (gen_server calls in pg.erl)

    /// `join_local`: the pids join `group` (each may join more than once).
    mutating func join(_ group: Term, _ members: Members) -> [Action] {
        var actions: [Action] = []
        for pid in members.pids {
            if local[pid] != nil {
                local[pid]!.groups.insert(group, at: 0)
            } else {
                local[pid] = LocalEntry(ref: nil, groups: [group])
                actions.append(.monitor(pid))
            }
        }
        var row = rows[group] ?? Row(all: [], local: [])
        row.all.insert(contentsOf: members.pids, at: 0)
        row.local.insert(contentsOf: members.pids, at: 0)
        actions += setRow(group, row)
        notify(.join, group, members.pids, &actions)
        actions += broadcast(.tuple([.atom("join"), .pid(me), group, members.term]))
        return actions
    }

    /// `leave_local`: `.notJoined` if none of the pids was in `group`.
    mutating func leave(_ group: Term, _ members: Members) -> Result<[Action], Failure> {
        var actions: [Action] = []
        var changed = false
        for pid in members.pids {
            guard var entry = local[pid], let at = entry.groups.firstIndex(of: group) else { continue }
            changed = true
            entry.groups.remove(at: at)
            if entry.groups.isEmpty {
                if let ref = entry.ref { actions.append(.demonitor(ref)) }
                local[pid] = nil
            } else {
                local[pid] = entry
            }
        }
        guard changed else { return .failure(.notJoined) }
        leaveLocalRow(group, members, &actions)
        actions += broadcast(.tuple([.atom("leave"), .pid(me), members.term, .list([group])]))
        return .success(actions)
    }

    /// `monitor_scope`: the subscriber gets `{Ref, join | leave, Group, Pids}` from now on;
    /// returns every group's members (the reference is the scope's monitor of it).
    mutating func monitorScope(_ subscriber: Pid, ref: Reference) -> [Term: [Pid]] {
        scopeMonitors[ref] = subscriber
        return rows.mapValues(\.all)
    }

    /// `monitor(Group)`: the same for one group; returns its members.
    mutating func monitorGroup(_ group: Term, _ subscriber: Pid, ref: Reference) -> [Pid] {
        groupMonitors[ref] = (subscriber, group)
        monitoredGroups[group, default: []].insert((subscriber, ref), at: 0)
        return rows[group]?.all ?? []
    }

    /// `demonitor(Ref)`: whether it was a subscription (the caller then demonitors it).
    mutating func demonitor(_ ref: Reference) -> Bool {
        if scopeMonitors.removeValue(forKey: ref) != nil { return true }
        guard let (pid, group) = groupMonitors.removeValue(forKey: ref) else { return false }
        dropGroupMonitor(group, pid: pid, ref: ref)
        return true
    }

    /// The reference of a monitor an action asked for.
    mutating func monitored(_ pid: Pid, ref: Reference) {
        if local[pid] != nil, local[pid]!.ref == nil {
            local[pid]!.ref = ref
        } else if remote[pid] != nil, remote[pid]!.ref == nil {
            remote[pid]!.ref = ref
        }
    }

    // MARK: Peers

    /// `{discover, Peer}`: answer with our local members; a new peer is monitored and
    /// discovered back.
    mutating func discover(_ peer: Pid) -> [Action] {
        var actions: [Action] = [.cast(peer, .tuple([.atom("sync"), .pid(me), .list(allLocalPids())]))]
        if remote[peer] == nil {
            remote[peer] = RemoteEntry(ref: nil, groups: [:])
            actions.append(.monitor(peer))
            actions.append(.send([peer], .tuple([.atom("discover"), .pid(me)])))
        }
        return actions
    }

    /// The `sync` cast: everything known of the peer is replaced by what it says.
    mutating func sync(_ peer: Pid, _ groups: [(Term, [Pid])]) -> [Action] {
        var actions: [Action] = []
        var old: [Term: [Pid]]
        if let entry = remote[peer] {
            old = entry.groups
        } else {
            old = [:]
            remote[peer] = RemoteEntry(ref: nil, groups: [:])
            actions.append(.monitor(peer))
        }
        for (group, pids) in groups {
            if let oldPids = old.removeValue(forKey: group) {
                guard oldPids != pids else { continue }
                // pg.erl: `Pids ++ AllOldPids -- OldPids`, and no notification.
                let row = rows[group] ?? Row(all: [], local: [])
                actions += setRow(group, Row(all: pids + subtract(row.all, oldPids), local: row.local))
            } else {
                joinRemoteRow(group, pids, &actions)
            }
        }
        for (group, pids) in old { leaveRemoteRows(pids, [group], &actions) }
        var map: [Term: [Pid]] = [:]
        for (group, pids) in groups { map[group] = pids }
        remote[peer]!.groups = map
        return actions
    }

    /// `{join, Peer, Group, PidOrPids}`: ignored unless the peer is known (pg.erl: a node
    /// that flickers, or one outside the overlay network).
    mutating func remoteJoin(_ peer: Pid, _ group: Term, _ members: Members) -> [Action] {
        guard var entry = remote[peer] else { return [] }
        var actions: [Action] = []
        joinRemoteRow(group, members.pids, &actions)
        entry.groups[group, default: []].insert(contentsOf: members.pids, at: 0)
        remote[peer] = entry
        return actions
    }

    /// `{leave, Peer, PidOrPids, Groups}`: ignored unless the peer is known.
    mutating func remoteLeave(_ peer: Pid, _ members: Members, _ groups: [Term]) -> [Action] {
        guard var entry = remote[peer] else { return [] }
        // pg.erl's leave_remote does `maps:get(Group, Acc)`: a group the peer never announced
        // crashes its scope. Refused here, and nothing of the message applied.
        var check = entry.groups
        for group in groups {
            guard let pids = check[group] else {
                ignored.append("leave for \(group) from \(peer), which never joined it")
                return []
            }
            let rest = subtract(pids, members.pids)
            check[group] = rest.isEmpty ? nil : rest
        }
        var actions: [Action] = []
        leaveRemoteRows(members.pids, groups, &actions)
        entry.groups = check
        remote[peer] = entry
        return actions
    }

    /// The scope process's own nodeup: discover the peer scope there (sent by name).
    func discoverMessage() -> Term { .tuple([.atom("discover"), .pid(me)]) }

    // MARK: DOWN

    /// A monitored process went down: a local member leaves every group it joined (and the
    /// peers hear of it), a peer scope's members all go, a subscriber's subscription goes.
    mutating func down(_ ref: Reference, _ pid: Pid) -> [Action] {
        if let entry = local[pid], entry.ref == ref {
            local[pid] = nil
            var actions: [Action] = []
            for group in entry.groups { leaveLocalRow(group, .one(pid), &actions) }
            actions += broadcast(.tuple([.atom("leave"), .pid(me), .pid(pid), .list(entry.groups)]))
            return actions
        }
        if let entry = remote[pid], entry.ref == ref {
            remote[pid] = nil
            var actions: [Action] = []
            for (group, pids) in entry.groups { leaveRemoteRows(pids, [group], &actions) }
            return actions
        }
        if scopeMonitors.removeValue(forKey: ref) == nil, let (subscriber, group) = groupMonitors.removeValue(forKey: ref) {
            dropGroupMonitor(group, pid: subscriber, ref: ref)
        }
        return []
    }

    mutating func takeIgnored() -> [String] {
        defer { ignored = [] }
        return ignored
    }

    // MARK: Rows (pg.erl's *_update_ets)

    private mutating func setRow(_ group: Term, _ row: Row?) -> [Action] {
        rows[group] = row
        return [.row(group, row)]
    }

    private mutating func leaveLocalRow(_ group: Term, _ members: Members, _ actions: inout [Action]) {
        guard var row = rows[group] else { return }
        switch members {
        case .one(let pid):
            if row.all == [pid] && row.local == [pid] {
                actions += setRow(group, nil)
            } else {
                removeFirst(pid, from: &row.all)
                removeFirst(pid, from: &row.local)
                actions += setRow(group, row)
            }
        case .many(let pids):
            let all = subtract(row.all, pids)
            actions += setRow(group, all.isEmpty ? nil : Row(all: all, local: subtract(row.local, pids)))
        }
        notify(.leave, group, members.pids, &actions)
    }

    private mutating func joinRemoteRow(_ group: Term, _ pids: [Pid], _ actions: inout [Action]) {
        var row = rows[group] ?? Row(all: [], local: [])
        row.all.insert(contentsOf: pids, at: 0)
        actions += setRow(group, row)
        notify(.join, group, pids, &actions)
    }

    private mutating func leaveRemoteRows(_ pids: [Pid], _ groups: [Term], _ actions: inout [Action]) {
        for group in groups {
            guard var row = rows[group] else { continue }
            if pids.count == 1 {
                if row.all == pids && row.local.isEmpty {
                    actions += setRow(group, nil)
                } else {
                    removeFirst(pids[0], from: &row.all)
                    actions += setRow(group, row)
                }
            } else {
                let all = subtract(row.all, pids)
                actions += setRow(group, all.isEmpty && row.local.isEmpty ? nil : Row(all: all, local: row.local))
            }
            notify(.leave, group, pids, &actions)
        }
    }

    // MARK: Subscriptions

    enum Verb: String { case join, leave }

    /// notify_group: `{Ref, join | leave, Group, Pids}` to every scope subscriber and to the
    /// group's.
    private func notify(_ verb: Verb, _ group: Term, _ pids: [Pid], _ actions: inout [Action]) {
        let list = Term.list(pids.map { .pid($0) })
        for (ref, pid) in scopeMonitors {
            actions.append(.send([pid], .tuple([.reference(ref), .atom(Atom(verb.rawValue)), group, list])))
        }
        for (pid, ref) in monitoredGroups[group] ?? [] {
            actions.append(.send([pid], .tuple([.reference(ref), .atom(Atom(verb.rawValue)), group, list])))
        }
    }

    private mutating func dropGroupMonitor(_ group: Term, pid: Pid, ref: Reference) {
        guard var list = monitoredGroups[group] else { return }
        list.removeAll { $0.pid == pid && $0.ref == ref }
        monitoredGroups[group] = list.isEmpty ? nil : list
    }

    // MARK: Helpers

    /// pg's broadcast: the message to every known peer scope (none: no action).
    func broadcast(_ message: Term) -> [Action] {
        remote.isEmpty ? [] : [.send(Array(remote.keys), message)]
    }

    /// all_local_pids: `[{Group, [Pid]}]` of this scope's members.
    func allLocalPids() -> [Term] {
        var byGroup: [Term: [Term]] = [:]
        for (pid, entry) in local {
            for group in entry.groups { byGroup[group, default: []].insert(.pid(pid), at: 0) }
        }
        return byGroup.map { .tuple([$0.key, .list($0.value)]) }
    }

    /// Erlang's `--`: removes the first occurrence of each element of `b` from `a`.
    func subtract(_ a: [Pid], _ b: [Pid]) -> [Pid] {
        var result = a
        for p in b { removeFirst(p, from: &result) }
        return result
    }

    private func removeFirst(_ pid: Pid, from list: inout [Pid]) {
        if let i = list.firstIndex(of: pid) { list.remove(at: i) }
    }
}
