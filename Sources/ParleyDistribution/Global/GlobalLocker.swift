@_spi(Distribution) import Parley

/// What the name server tells its locker (global.erl's `the_locker` messages).
enum LockerMessage: Sendable {
    /// A peer's locker, learnt from its `init_connect`.
    case hisTheLocker(locker: Pid, vsn: Int, hisTag: Term, myTag: Term)
    /// Stop trying to lock for `node`'s session `tag` (nil: `undefined`, ignored); run
    /// `then` (the `new_nodes` broadcast) before the lock goes.
    case cancel(node: String, tag: Term?, then: (@Sendable (Process) -> Void)?)
    /// A peer locker's `lock_set`, forwarded by the server; `tag` nil for the 4-tuple form.
    case lockSet(pid: Pid, isSet: Bool, tag: Term?)
    case addToKnown([String])
    case removeFromKnown(String)
}

/// The locker (global.erl `loop_the_locker`): when two nodes connect, each side's locker
/// tries to take the lock `{global, sort([LockerA, LockerB])}` on every node of its
/// partition (the boss, the highest node name, first), tells the other side with
/// `lock_set`, and holds the lock until the name server has exchanged names and says
/// `cancel`. One locker of the pair leads (it picked the other), the other follows (it
/// locks its own partition when the leader's `lock_set` arrives).
struct GlobalLocker {
    struct Him: Equatable {
        var node: String
        var locker: Pid
        var vsn: Int
        var myTag: Term
        var hisTag: Term
    }

    let me: Process
    let home: String
    let tables: GlobalTables
    let server: Pid
    var local: [Him] = []
    var remote: [Him] = []
    var known: [String] = []
    var boss: String
    var justSynced = false

    init(me: Process, home: String, tables: GlobalTables, server: Pid) {
        self.me = me
        self.home = home
        self.tables = tables
        self.server = server
        self.boss = home
    }

    static func run(_ me: Process, home: String, tables: GlobalTables, server: Pid) async throws {
        var locker = GlobalLocker(me: me, home: home, tables: tables, server: server)
        try await locker.loop()
    }

    mutating func loop() async throws {
        while true {
            if let m = try await me.receive(after: .zero, { $0 as? LockerMessage }) {
                try await handle(m)
                continue
            }
            let timeout: Duration?
            if local.isEmpty && remote.isEmpty {
                timeout = nil
            } else if justSynced {
                timeout = .zero
            } else if known.isEmpty {
                timeout = .milliseconds(200)
            } else {
                timeout = .milliseconds(min(1000 + 100 * known.count, 3000))
            }
            justSynced = false
            let m: LockerMessage?
            if let timeout {
                m = try await me.receive(after: timeout, { $0 as? LockerMessage })
            } else {
                m = try await me.receive { $0 as? LockerMessage }
            }
            if let m {
                try await handle(m)
            } else if !tables.isGlobalLockSet {
                try await selectNode()
            }
        }
    }

    mutating func handle(_ m: LockerMessage) async throws {
        switch m {
        case .hisTheLocker(let locker, let vsn, let hisTag, let myTag):
            let him = Him(node: nodeName(locker), locker: locker, vsn: vsn, myTag: myTag, hisTag: hisTag)
            if isLocalHost(him.node) { local.insert(him, at: 0) } else { remote.insert(him, at: 0) }
        case .cancel(_, nil, _):
            // A cancel for `undefined` may come from an old nodedown; acting on it could
            // cancel a new nodeup.
            break
        case .cancel(let node, let tag?, _):
            removeNode(node, tag)
        case .lockSet(_, false, _):
            break
        case .lockSet(let pid, true, let tag):
            // The other locker locked its partition and asks us to lock ours.
            let node = nodeName(pid)
            guard let him = find(node), tag == nil || tag == him.myTag else {
                sendLockSet(false, to: pid, vsn: 5, hisTag: .integer(0))
                return
            }
            let lockId = lockId(with: pid)
            let isSet = try await lockNodesSafely(lockId, extra: [])
            sendLockSet(isSet, to: pid, vsn: him.vsn, hisTag: him.hisTag)
            if isSet {
                server.send(GlobalInternal.lockIsSet(node: node, tag: him.myTag, lockId: lockId))
                try await waitCancelLock(node: node, lockId: lockId, myTag: him.myTag, known: [home] + known)
                justSynced = true
                removeNode(node, him.myTag)
            } else {
                justSynced = false
            }
        case .addToKnown(let nodes):
            updateKnown(add: nodes)
        case .removeFromKnown(let node):
            updateKnown(remove: node)
        }
    }

    /// `select_node/1`: lead the lock for one waiting peer, local host first.
    mutating func selectNode() async throws {
        let useRemote = local.isEmpty
        let others = (useRemote ? remote : local).filter { !known.contains($0.node) }
        if useRemote { remote = others } else { local = others }
        guard let him = others.randomElement() else { return }
        let lockId = lockId(with: him.locker)
        // [his node] as the extra prevents deadlock: both partitions hold the same id there.
        let isSet = try await lockNodesSafely(lockId, extra: [him.node])
        guard isSet else { return }
        let known1 = [home, him.node] + known
        sendLockSet(true, to: him.locker, vsn: him.vsn, hisTag: him.hisTag)
        try await lockIsSet(him, known: known1, lockId: lockId)
    }

    /// `lock_is_set/5`: wait for the other locker's answer, leaving other messages queued.
    mutating func lockIsSet(_ him: Him, known known1: [String], lockId: Term) async throws {
        enum Step { case accepted, rejected, stale, cancelled((@Sendable (Process) -> Void)?) }
        while true {
            let step: Step = try await me.receive { m in
                guard let l = m as? LockerMessage else { return nil }
                switch l {
                case .lockSet(let p, let isSet, let tag) where self.nodeName(p) == him.node:
                    if let tag, tag != him.myTag { return .stale }
                    return isSet ? .accepted : .rejected
                case .cancel(let node, let tag?, let then) where node == him.node && tag == him.myTag:
                    return .cancelled(then)
                default:
                    return nil
                }
            }
            switch step {
            case .stale:
                continue
            case .accepted:
                server.send(GlobalInternal.lockIsSet(node: him.node, tag: him.myTag, lockId: lockId))
                try await waitCancelLock(node: him.node, lockId: lockId, myTag: him.myTag, known: known1)
                justSynced = true
                local.removeAll { $0 == him }
                remote.removeAll { $0 == him }
            case .rejected:
                try await deleteGlobalLock(lockId, known1)
            case .cancelled(let then):
                then?(me)
                try await deleteGlobalLock(lockId, known1)
                removeNode(him.node, him.myTag)
            }
            return
        }
    }

    /// Hold the lock until the server cancels this session (after names are exchanged).
    func waitCancelLock(node: String, lockId: Term, myTag: Term, known: [String]) async throws {
        let then: (@Sendable (Process) -> Void)? = try await me.receive { m in
            if let l = m as? LockerMessage, case .cancel(let n, let tag?, let then) = l, n == node, tag == myTag {
                return .some(then)
            }
            return nil
        }
        then?(me)
        try await deleteGlobalLock(lockId, known)
    }

    /// `lock_nodes_safely/3`: the boss first, then this node and `extra`, then every known node.
    mutating func lockNodesSafely(_ lockId: Term, extra: [String]) async throws -> Bool {
        let first = [boss]
        guard first == [home] || tables.canSetLock(Global.split(lockId)) != nil else { return false }
        guard try await Global.setLockOnNodes(me, lockId, first, home: home, tables: tables) else { return false }
        try await drainKnownUpdates()
        let second = ([home] + extra).filter { !first.contains($0) }
        guard try await Global.setLockOnNodes(me, lockId, second, home: home, tables: tables) else {
            try await Global.delLock(me, lockId, first)
            return false
        }
        guard try await Global.setLockOnNodes(me, lockId, known.filter { !first.contains($0) }, home: home, tables: tables) else {
            try await Global.delLock(me, lockId, first + second)
            return false
        }
        return true
    }

    /// The boss's lock goes last, so that a locker that got the boss rarely fails on the rest.
    func deleteGlobalLock(_ lockId: Term, _ nodes: [String]) async throws {
        try await Global.deleteLock(me, lockId, nodes)
    }

    func sendLockSet(_ isSet: Bool, to locker: Pid, vsn: Int, hisTag: Term) {
        let known = Term.list(self.known.map { .atom(Atom($0)) })
        let message: Term = vsn < 8
            ? .tuple([.atom("lock_set"), .pid(me.pid), .atom(isSet ? .true : .false), known])
            : .tuple([.atom("lock_set"), .pid(me.pid), .atom(isSet ? .true : .false), known, hisTag])
        me.send(Term.tuple([.atom("$gen_cast"), message]), to: MultiCall.server, on: Node.named(nodeName(locker)))
    }

    func lockId(with other: Pid) -> Term {
        .tuple([.atom("global"), .list(ErlangOrder.sorted(me.pid, other, home: home).map { .pid($0) })])
    }

    func nodeName(_ pid: Pid) -> String { pid.node?.name ?? home }

    func find(_ node: String) -> Him? {
        local.first { $0.node == node } ?? remote.first { $0.node == node }
    }

    mutating func removeNode(_ node: String, _ tag: Term) {
        local.removeAll { $0.node == node && $0.myTag == tag }
        remote.removeAll { $0.node == node && $0.myTag == tag }
    }

    mutating func drainKnownUpdates() async throws {
        while let m = try await me.receive(after: .zero, { m -> LockerMessage? in
            guard let l = m as? LockerMessage else { return nil }
            switch l {
            case .addToKnown, .removeFromKnown: return l
            default: return nil
            }
        }) {
            if case .addToKnown(let nodes) = m { updateKnown(add: nodes) }
            if case .removeFromKnown(let node) = m { updateKnown(remove: node) }
        }
    }

    mutating func updateKnown(add nodes: [String]) {
        known = nodes + known
        boss = ErlangOrder.boss([home] + known) ?? home
    }

    mutating func updateKnown(remove node: String) {
        if let i = known.firstIndex(of: node) { known.remove(at: i) }
        boss = ErlangOrder.boss([home] + known) ?? home
    }

    /// Whether `node` runs on this host (global's `is_node_local/1`: its host part is this
    /// machine's short host name).
    func isLocalHost(_ node: String) -> Bool {
        guard let at = node.firstIndex(of: "@") else { return false }
        return node[node.index(after: at)...] == Distribution.shortHostName()
    }
}
