import Logging
@_spi(Distribution) import Parley

/// Messages between the parts of this node's `global` (server, locker, resolvers, the
/// router's node events).
enum GlobalInternal: Sendable {
    case lockIsSet(node: String, tag: Term, lockId: Term)
    case exchangeOps(node: String, tag: Term, ops: [Term], resolved: [Term])
    case extraNodedown(String)
    /// A visible node connected / disconnected (the router sends these, nodeup before any
    /// traffic of the connection, nodedown after all of it).
    /// The nodeup carries its connection: global's volatile sends go over that one only.
    case nodeup(String, Connection)
    case nodedown(String)
}

/// Requests Parley's own code makes of the server with `Gen.call`.
enum GlobalRequest: Sendable {
    case getKnown
    case sync([String])
    case synced
    case info
    /// `global:disconnect/0`: leave every node global knows, telling nobody of lost connections.
    case disconnect
}

/// The node's `global_name_server` (global.erl, protocol version 8): the names, the locks,
/// and the synchronisation of both with every visible node. Its state is its own (one
/// process); the tables are shared for reading.
final class GlobalServer {
    enum WaitLock { case lockIsSet, exchange([Term]) }
    enum SavedOps { case ops([Term]), resolved(hisKnown: [Term], namesExt: [Term], hisResolved: [Term]) }

    /// global.erl's process dictionary, per peer node.
    struct Session {
        var myTag: Term?
        var hisTag: Term?
        var protVsn: Int?
        var waitLock: WaitLock?
        var saveOps: SavedOps?
        var preConnect: (vsn: Int, initMsg: Term, hisTag: Term)?
        var lockId: Term?
    }

    struct Sync {
        var from: Gen.From
        var nodes: Set<String>
    }

    let me: Process
    let home: String
    let tables: GlobalTables
    let options: Global.Options
    let log: Logger
    var locker: Pid!
    var registrar: Pid!
    /// Node → protocol version (0: not yet known), the `known` map's node keys.
    var known: [String: Int] = [:]
    var pending: [String: Int] = [:]
    var removing: Set<String> = []
    var synced: [String] = []
    var resolvers: [String: (tag: Term, pid: Pid)] = [:]
    var sessions: [String: Session] = [:]
    var syncs: [Sync] = []
    var globalLockDown = false
    var lostConnections: [String: (xCreation: Term, opId: Int, at: ContinuousClock.Instant)] = [:]
    /// Each visible node's connection as of its last nodeup (until its nodedown).
    var connections: [String: Connection] = [:]
    let creationExtension: Term = .integer(Int.random(in: 1...Int(Int32.max)) << 8)
    static let vsn = 8

    init(me: Process, home: String, tables: GlobalTables, options: Global.Options, log: Logger) {
        self.me = me
        self.home = home
        self.tables = tables
        self.options = options
        self.log = log
    }

    func run() async throws {
        let server = me.pid, home = self.home, tables = self.tables
        me.trapExit = true
        locker = try me.spawn(SpawnOptions(link: true, label: "global locker")) { me in
            try await GlobalLocker.run(me, home: home, tables: tables, server: server)
        }
        registrar = try me.spawn(SpawnOptions(link: true, name: Global.registrarName, label: "global registrar")) { me in
            try await GlobalRegistrar.run(me, home: home, tables: tables, server: server)
        }
        while true {
            let m = try await me.receive()
            handle(m)
        }
    }

    func handle(_ m: any Sendable) {
        switch m {
        case let i as GlobalInternal: handleInternal(i)
        case let c as Gen.CallMessage:
            if let r = c.request as? GlobalRequest {
                handleOwn(r, from: c.from)
            } else if let t = c.request as? Term {
                let reply = handleCall(t, fromPid: c.from.pid)
                if let reply { Gen.reply(c.from, reply) }
            }
        case let c as Gen.CastMessage:
            if let t = c.request as? Term { handleCast(t) }
        case let d as DownMessage:
            deleteLock(ref: d.ref, down: true)
            delName(ref: d.ref)
        case is ExitMessage:
            break
        case let t as Term:
            // The wire's forms when they arrive as plain terms: a multi_call's
            // `{'$gen_call', {Pid, {Tag, Node}}, Request}`, a cast sent locally as a term.
            if case .tuple(let items) = t, items.count == 3, items[0] == .atom("$gen_call"),
               case .tuple(let from) = items[1], from.count == 2, case .pid(let caller) = from[0] {
                if let reply = handleCall(items[2], fromPid: caller) { caller.send(Term.tuple([from[1], reply])) }
            } else if case .tuple(let items) = t, items.count == 2, items[0] == .atom("$gen_cast") {
                handleCast(items[1])
            } else {
                handleInfo(t)
            }
        default:
            log.debug("global_name_server ignored \(type(of: m))")
        }
    }

    // MARK: Calls

    func handleCall(_ request: Term, fromPid: Pid) -> Term? {
        guard case .tuple(let r) = request, let op = r.first?.atomName else {
            switch request {
            case .atom("get_known"): return .list(knownNodes.map { .atom(Atom($0)) })
            case .atom("get_synced"): return .list(synced.map { .atom(Atom($0)) })
            case .atom("get_protocol_version"): return .integer(Self.vsn)
            case .atom("get_names_ext"): return .list(tables.namesExtList)
            default:
                log.warning("global_name_server: unexpected call \(DistributionRouter.summary(request))")
                return nil
            }
        }
        switch (op, r.count) {
        case ("register", 4):
            insName(r[1], pid: r[2].pidValue, method: r[3], from: .pid(fromPid), extra: [])
            return .atom("yes")
        case ("unregister", 2):
            deleteGlobalName(r[1])
            return .ok
        case ("register_ext", 5):
            guard let regNode = r[4].atomName else { return .atom("yes") }
            insNameExt(r[1], pid: r[2].pidValue, method: r[3], regNode: regNode, from: .pid(fromPid), extra: [])
            return .atom("yes")
        case ("set_lock", 2):
            return .atom(setLock(r[1], pid: fromPid) ? .true : .false)
        case ("del_lock", 2):
            delLock(r[1], pid: fromPid)
            return .true
        default:
            log.warning("global_name_server: unexpected call \(DistributionRouter.summary(request))")
            return nil
        }
    }

    func handleOwn(_ r: GlobalRequest, from: Gen.From) {
        switch r {
        case .getKnown: Gen.reply(from, knownNodes)
        case .synced: Gen.reply(from, synced)
        case .info: Gen.reply(from, Global.Info(known: knownNodes.sorted(), synced: synced.sorted(), pending: pending.keys.sorted()))
        case .disconnect:
            // As global:disconnect/0: each node is dropped from known first (handled as a
            // removal), so its nodedown reports no lost connection and no other node's
            // prevent_overlapping_partitions takes anything down.
            let nodes = Array(Set(known.keys).union(pending.keys))
            for n in nodes {
                handleNodedown(n, .removeConnection)
                me.node.disconnect(n)
            }
            Gen.reply(from, nodes.sorted())
        case .sync(let nodes):
            let waiting = Set(nodes).subtracting(synced).subtracting([home])
            if waiting.isEmpty { Gen.reply(from, Term.ok) } else { syncs.append(Sync(from: from, nodes: waiting)) }
        }
    }

    var knownNodes: [String] { Array(known.keys) }

    // MARK: Casts

    func handleCast(_ t: Term) {
        guard case .tuple(let c) = t, let op = c.first?.atomName else {
            log.warning("global_name_server: unexpected cast \(DistributionRouter.summary(t))")
            return
        }
        switch (op, c.count) {
        case ("init_connect", 4):
            guard let node = c[2].atomName, case .tuple(let v) = c[1], v.count >= 2, let hisVsn = v[0].intValue else {
                log.info("Illegal global protocol version \(DistributionRouter.summary(c[1]))")
                return
            }
            // Newer peers are understood as far as this version goes.
            let vsn = (v.count > 2 || hisVsn > Self.vsn) ? Self.vsn : hisVsn
            initConnect(vsn: vsn, node: node, initMsg: c[3], hisTag: v[1], hisVsn: hisVsn)
        case ("exchange", 5):
            guard let node = c[1].atomName, let names = c[2].listElements else { return malformed(t) }
            guard sessions[node]?.myTag == c[4] else { return cancelLocker(node, tag: c[4]) }
            exchange(node, names)
        case ("resolved", 7):
            guard let node = c[1].atomName, let hisResolved = c[2].listElements, let hisKnown = c[3].listElements,
                  let namesExt = c[5].listElements else { return malformed(t) }
            guard sessions[node]?.myTag == c[6] else { return cancelLocker(node, tag: c[6]) }
            if case .ops = sessions[node]?.saveOps {
                resolved(node, hisResolved: hisResolved, hisKnown: hisKnown, namesExt: namesExt)
            } else {
                sessions[node, default: Session()].saveOps = .resolved(hisKnown: hisKnown, namesExt: namesExt, hisResolved: hisResolved)
            }
        case ("new_nodes", 6):
            guard let node = c[1].atomName, let ops = c[2].listElements, let namesExt = c[3].listElements,
                  let nodes = c[4].listElements else { return malformed(t) }
            newNodes(ops: ops, connNode: node, namesExt: namesExt, nodes: nodes, extra: c[5].listElements ?? [])
        case ("in_sync", 3):
            guard let node = c[1].atomName else { return malformed(t) }
            notifySynced(node)
            if !synced.contains(node) { synced.insert(node, at: 0) }
            pending[node] = nil
            cancelLocker(node, tag: sessions[node]?.myTag)
            sessions[node] = nil
        case ("lock_set", 5):
            guard let pid = c[1].pidValue else { return malformed(t) }
            if sessions[nodeName(pid)]?.myTag == c[4] {
                locker.send(LockerMessage.lockSet(pid: pid, isSet: c[2] == .true, tag: c[4]))
            }
        case ("lock_set", 4):
            guard let pid = c[1].pidValue else { return malformed(t) }
            locker.send(LockerMessage.lockSet(pid: pid, isSet: c[2] == .true, tag: nil))
        case ("async_del_name", 3), ("async_del_lock", 3):
            break
        default:
            log.warning("global_name_server: unexpected cast \(DistributionRouter.summary(t))")
        }
    }

    // MARK: Plain messages

    func handleInfo(_ t: Term) {
        guard case .tuple(let c) = t, let op = c.first?.atomName else {
            log.warning("global_name_server: unexpected message \(DistributionRouter.summary(t))")
            return
        }
        switch (op, c.count) {
        case ("lost_connection", 5):
            guard let nodeA = c[1].atomName, let nodeB = c[4].atomName, let opId = c[3].intValue else { return malformed(t) }
            lostConnection(t, nodeA: nodeA, xCreation: c[2], opId: opId, nodeB: nodeB)
        case ("remove_connection", 2):
            guard let node = c[1].atomName else { return malformed(t) }
            if isPotentiallyKnown(node) {
                disconnectKnown(node)
                handleNodedown(node, .removeConnection)
                log.warning("'global' at node \(home) disconnected node \(node) in order to prevent overlapping partitions")
            }
        case ("cancel_connect", 3):
            guard let node = c[1].atomName else { return malformed(t) }
            if let myTag = sessions[node]?.myTag, myTag == c[2] {
                cancelLocker(node, tag: myTag)
                sessions[node] = nil
                pending[node] = nil
                restartConnect(node, myTag: myTag)
            }
        case ("init_connect_ack", 4):
            guard let node = c[1].atomName else { return malformed(t) }
            let myMyTag = sessions[node]?.myTag, myHisTag = sessions[node]?.hisTag
            if !(myMyTag == c[2] && myHisTag == c[3]) {
                // The connect attempt is out of sync: cancel it and start over.
                sendCancelConnectMessage(node, hisTag: c[3])
                restartConnect(node, myTag: myMyTag)
            }
        default:
            log.warning("global_name_server: unexpected message \(DistributionRouter.summary(t))")
        }
    }

    func handleInternal(_ i: GlobalInternal) {
        switch i {
        case .nodeup(let node, let connection):
            connections[node] = connection
            if options.connectAll { handleNodeup(node) }
        case .nodedown(let node):
            connections[node] = nil
            notifySynced(node)   // a sync waiting for a node that went down is done with it
            handleNodedown(node, .disconnected)
        case .extraNodedown(let node):
            notifySynced(node)
            handleNodedown(node, .disconnected)
        case .lockIsSet(let node, let tag, let lockId):
            guard sessions[node]?.myTag == tag else { return cancelLocker(node, tag: tag) }
            lockIsSet(node, lockId: lockId)
        case .exchangeOps(let node, let tag, let ops, let resolvedOps):
            guard sessions[node]?.myTag == tag else { return cancelLocker(node, tag: tag) }
            let knownList = mkKnownList(nodeVsn(node))
            cast(node, .tuple([.atom("resolved"), .atom(Atom(home)), .list(resolvedOps), .list(knownList), .atom("unused"),
                               .list(tables.namesExtList), sessions[node]?.hisTag ?? .atom(.undefined)]))
            if case .resolved(let hisKnown, let namesExt, let hisResolved) = sessions[node]?.saveOps {
                sessions[node, default: Session()].saveOps = .ops(ops)
                resolved(node, hisResolved: hisResolved, hisKnown: hisKnown, namesExt: namesExt)
            } else {
                sessions[node, default: Session()].saveOps = .ops(ops)
            }
        }
    }

    // MARK: Connecting

    func handleNodeup(_ node: String) {
        if known[node] != nil || resolvers[node] != nil { return }
        if let pre = sessions[node]?.preConnect {
            sessions[node]?.preConnect = nil
            me.pid.send(Term.tuple([.atom("$gen_cast"), .tuple([.atom("init_connect"), .tuple([.integer(pre.vsn), pre.hisTag]),
                                                               .atom(Atom(node)), pre.initMsg])]))
        }
        let myTag = Global.uniqueInteger()
        sessions[node, default: Session()].myTag = myTag
        let initMsg = Term.tuple([.atom("locker"), .atom("no_longer_a_pid"), .map([:]), .pid(locker)])
        cast(node, .tuple([.atom("init_connect"), .tuple([.integer(Self.vsn), myTag]), .atom(Atom(home)), initMsg]))
        let server = me.pid, home = self.home, tables = self.tables, log = self.log
        let resolver = me.spawn { me in
            try await GlobalResolver.run(me, peer: node, tag: myTag, home: home, tables: tables, server: server, log: log)
        }
        resolvers[node] = (myTag, resolver)
    }

    func initConnect(vsn: Int, node: String, initMsg: Term, hisTag: Term, hisVsn: Int) {
        if pending[node] != nil {
            // A second attempt while one is under way: cancel both and start again.
            sendCancelConnectMessage(node, hisTag: hisTag)
            restartConnect(node, myTag: sessions[node]?.myTag)
        }
        sessions[node, default: Session()].protVsn = vsn
        sessions[node, default: Session()].hisTag = hisTag
        if let r = resolvers[node], let myTag = sessions[node]?.myTag, r.tag == myTag {
            guard case .tuple(let l) = initMsg, l.count == 4, let hisLocker = l[3].pidValue else { return malformed(initMsg) }
            locker.send(LockerMessage.hisTheLocker(locker: hisLocker, vsn: vsn, hisTag: hisTag, myTag: myTag))
            volatileSend(node, .tuple([.atom("init_connect_ack"), .atom(Atom(home)), hisTag, myTag]))
            pending[node] = hisVsn
        } else {
            sessions[node, default: Session()].preConnect = (vsn, initMsg, hisTag)
        }
    }

    func restartConnect(_ node: String, myTag: Term?) {
        cancelLocker(node, tag: myTag)
        sessions[node] = nil
        pending[node] = nil
        // A tag means the node is up from our side (global.erl: is_integer(MyTag)): connect anew.
        if myTag != nil { handleNodeup(node) }
    }

    func lockIsSet(_ node: String, lockId: Term) {
        cast(node, .tuple([.atom("exchange"), .atom(Atom(home)), .list(tables.nameList), .nil, sessions[node]?.hisTag ?? .atom(.undefined)]))
        sessions[node, default: Session()].lockId = lockId
        if case .exchange(let names) = sessions[node]?.waitLock {
            sessions[node]?.waitLock = .lockIsSet
            exchange(node, names)
        } else {
            sessions[node, default: Session()].waitLock = .lockIsSet
        }
    }

    func exchange(_ node: String, _ names: [Term]) {
        let wait = sessions[node]?.waitLock
        sessions[node, default: Session()].waitLock = nil
        if case .lockIsSet = wait {
            resolvers[node]?.pid.send(GlobalResolver.Resolve(names: names, node: node))
        } else {
            sessions[node, default: Session()].waitLock = .exchange(names)
        }
    }

    func resolved(_ node: String, hisResolved: [Term], hisKnown: [Term], namesExt: [Term]) {
        var ops: [Term] = []
        if case .ops(let mine) = sessions[node]?.saveOps { ops = mine }
        sessions[node]?.saveOps = nil
        ops += hisResolved
        let knownBefore = known
        let newNodes = makeNodeVsnList([.atom(Atom(node))] + hisKnown)
        let hisKnownNodes = hisKnown.compactMap(Self.nodeOf)
        syncOthers(hisKnownNodes)
        let extra: [Term] = [.tuple([.atom("vsn"), .integer(sessions[node]?.protVsn ?? Self.vsn)]),
                             .tuple([.atom("lock"), sessions[node]?.lockId ?? .atom(.undefined)])]
        doOps(ops, connNode: home, namesExt: namesExt, extra: extra)
        notifySynced(node)
        for n in hisKnownNodes { cancelResolvedLocker(n, then: nil) }
        // The locker that holds the lock sends new_nodes before it releases the lock, so
        // that del_lock arrives after new_nodes.
        let message = Term.tuple([.atom("new_nodes"), .atom(Atom(home)), .list(ops), .list(namesExt),
                                  .list(newNodes.map { .tuple([.atom(Atom($0.0)), .integer($0.1)]) }), .list(extra)])
        let oldMessage = Term.tuple([.atom("new_nodes"), .atom(Atom(home)), .list(ops), .list(namesExt),
                                     .list(newNodes.map { .atom(Atom($0.0)) }), .list(extra)])
        let targets = knownBefore
        cancelResolvedLocker(node) { me in
            for (n, v) in targets {
                me.send(Term.tuple([.atom("$gen_cast"), v >= 7 ? message : oldMessage]), to: MultiCall.server, on: Node.named(n))
            }
        }
        let added = addToKnown(newNodes)
        locker.send(LockerMessage.addToKnown(added))
        synced.insert(node, at: 0)
    }

    func cancelResolvedLocker(_ node: String, then: (@Sendable (Process) -> Void)?) {
        let tag = sessions[node]?.myTag
        pending[node] = nil
        cancelLocker(node, tag: tag, then: then)
        sessions[node] = nil
    }

    func newNodes(ops: [Term], connNode: String, namesExt: [Term], nodes: [Term], extra: [Term]) {
        let added = addToKnown(makeNodeVsnList(nodes, keepUnknown: true))
        syncOthers(added)
        doOps(ops, connNode: connNode, namesExt: namesExt, extra: extra)
        locker.send(LockerMessage.addToKnown(added))
    }

    /// Connects to nodes the other partition knew (this is what makes the mesh
    /// transitive), then tells each it is in sync.
    func syncOthers(_ nodes: [String]) {
        let server = me.pid, home = self.home
        for node in nodes where node != home {
            me.spawn { me in
                do {
                    try await me.node.connect(node)
                    me.send(Term.tuple([.atom("$gen_cast"), .tuple([.atom("in_sync"), .atom(Atom(home)), .true])]),
                            to: MultiCall.server, on: Node.named(node))
                } catch {
                    server.send(GlobalInternal.extraNodedown(node))
                }
            }
        }
    }

    enum NodedownKind { case disconnected, removeConnection, ignoreNode }

    func handleNodedown(_ node: String, _ kind: NodedownKind) {
        cancelLocker(node, tag: sessions[node]?.myTag)
        locker.send(LockerMessage.removeFromKnown(node))
        sessions[node] = nil
        switch kind {
        case .removeConnection: removing.insert(node)
        case .ignoreNode: removing.remove(node)
        case .disconnected:
            if removing.remove(node) == nil { informConnectionLoss(node) }
        }
        pending[node] = nil
        known[node] = nil
        synced.removeAll { $0 == node }
    }

    func cancelLocker(_ node: String, tag: Term?, then: (@Sendable (Process) -> Void)? = nil) {
        locker.send(LockerMessage.cancel(node: node, tag: tag, then: then))
        sendCancelConnect(node, myTag: tag)
        if let r = resolvers[node], r.tag == tag {
            me.exit(r.pid, .kill)
            resolvers[node] = nil
        }
    }

    func sendCancelConnect(_ node: String, myTag: Term?) {
        guard let v = pending[node], v >= 8, sessions[node]?.myTag == myTag, let hisTag = sessions[node]?.hisTag else { return }
        sendCancelConnectMessage(node, hisTag: hisTag)
    }

    func sendCancelConnectMessage(_ node: String, hisTag: Term) {
        volatileSend(node, .tuple([.atom("cancel_connect"), .atom(Atom(home)), hisTag]))
    }

    // MARK: Prevent overlapping partitions

    func informConnectionLoss(_ node: String) {
        guard options.connectAll && options.preventOverlappingPartitions else { return }
        let message = Term.tuple([.atom("lost_connection"), .atom(Atom(home)), creationExtension,
                                  Global.uniqueInteger(), .atom(Atom(node))])
        volatileMulticast(message, ignoring: node, minVersion: 7, alsoPending: true)
    }

    func lostConnection(_ message: Term, nodeA: String, xCreation: Term, opId: Int, nodeB: String) {
        guard options.connectAll && options.preventOverlappingPartitions else { return }
        let key = nodeA + "\u{0}" + nodeB
        let now = ContinuousClock.now
        lostConnections = lostConnections.filter { now - $0.value.at < .seconds(3600) }
        if let seen = lostConnections[key], seen.xCreation == xCreation, opId <= seen.opId { return }
        // Pass it on, so that every node hears of it even if some lose nodeA meanwhile.
        volatileMulticast(message, ignoring: nodeA, minVersion: 7, alsoPending: true)
        lostConnections[key] = (xCreation, opId, now)
        let rmNode = nodeB == home ? nodeA : nodeB
        guard isPotentiallyKnown(rmNode) else { return }
        if nodeVsn(rmNode) < 7 {
            disconnectKnown(rmNode)
            log.warning("'global' at node \(home) disconnected old node \(rmNode) in order to prevent overlapping partitions")
        } else {
            volatileSend(rmNode, .tuple([.atom("remove_connection"), .atom(Atom(home))]))
            log.warning("'global' at node \(home) requested disconnect from node \(rmNode) in order to prevent overlapping partitions")
        }
        handleNodedown(rmNode, .removeConnection)
    }

    func isPotentiallyKnown(_ node: String) -> Bool { known[node] != nil || pending[node] != nil }

    // MARK: Names

    func insName(_ name: Term, pid: Pid?, method: Term, from: Term, extra: [Term]) {
        guard let pid else { return }
        deleteGlobalName(name, keepEntry: true)
        insertGlobalName(name, pid: pid, method: method, from: from, extra: extra)
    }

    func insNameExt(_ name: Term, pid: Pid?, method: Term, regNode: String, from: Term, extra: [Term]) {
        guard let pid else { return }
        deleteGlobalName(name, keepEntry: true)
        if regNode == home { try? me.link(pid) }
        tables.state.withLock { $0.namesExt[name] = (pid, regNode) }
        insertGlobalName(name, pid: pid, method: method, from: from, extra: extra)
    }

    func insertGlobalName(_ name: Term, pid: Pid, method: Term, from: Term, extra: [Term]) {
        let ref = me.monitor(pid)
        tables.state.withLock { s in
            s.names[name] = GlobalTables.Name(pid: pid, method: method, ref: ref)
            s.pidNames[pid, default: []].insert(name)
            s.refNames[ref] = name
        }
        if !lockStillSet(from, extra: extra) {
            // The node that took the lock went down and came back; the lock's DOWN removed
            // it, so this late registration must not stay.
            deleteGlobalName(name)
        }
    }

    func lockStillSet(_ from: Term, extra: [Term]) -> Bool {
        let lock = tables.state.withLock { $0.locks[Global.resource] }
        guard let lock else { return !globalLockDown }
        if case .pid(let p) = from { return lock.holders.contains { $0.pid == p } }
        let lockId = extra.first { $0.tupleElements?.first == .atom("lock") }?.tupleElements?[1]
        guard case .tuple(let id) = lockId ?? .nil, id.count == 2 else { return false }
        return lock.requester == id[1]
    }

    func deleteGlobalName(_ name: Term, keepEntry: Bool = false) {
        let removed: (GlobalTables.Name, (pid: Pid, regNode: String)?)? = tables.state.withLock { s in
            guard let entry = s.names[name] else { return nil }
            if !keepEntry { s.names[name] = nil }
            s.pidNames[entry.pid]?.remove(name)
            if s.pidNames[entry.pid]?.isEmpty == true { s.pidNames[entry.pid] = nil }
            s.refNames[entry.ref] = nil
            var ext: (pid: Pid, regNode: String)? = nil
            if let e = s.namesExt[name], e.pid == entry.pid {
                s.namesExt[name] = nil
                ext = e
            }
            return (entry, ext)
        }
        guard let (entry, ext) = removed else { return }
        me.demonitor(entry.ref, flush: true)
        if let ext, ext.regNode == home {
            let stillUsed = tables.state.withLock { $0.pidNames[ext.pid] != nil || $0.pidLocks[ext.pid] != nil }
            if !stillUsed { me.unlink(ext.pid) }
        }
    }

    func delName(ref: Reference) {
        let name: Term? = tables.state.withLock { s in
            guard let n = s.refNames[ref], s.names[n]?.ref == ref else { return nil }
            return n
        }
        if let name { deleteGlobalName(name) }
    }

    func doOps(_ ops: [Term], connNode: String, namesExt: [Term], extra: [Term]) {
        var inserts: [(Term, Pid, Term)] = []
        var deletes: [Term] = []
        for op in ops {
            guard case .tuple(let o) = op, o.count == 2 else { continue }
            if o[0] == .atom("insert"), case .tuple(let e) = o[1], e.count == 3, let pid = e[1].pidValue {
                inserts.append((e[0], pid, e[2]))
            } else if o[0] == .atom("delete") {
                deletes.append(o[1])
            }
        }
        var extNames = Set<Term>()
        for x in namesExt {
            guard case .tuple(let e) = x, e.count == 3, let pid = e[1].pidValue, let regNode = e[2].atomName else { continue }
            for (name, p, method) in inserts where name == e[0] && p == pid {
                insNameExt(name, pid: pid, method: method, regNode: regNode, from: .atom(Atom(connNode)), extra: extra)
                extNames.insert(name)
            }
        }
        for (name, pid, method) in inserts where !extNames.contains(name) {
            insName(name, pid: pid, method: method, from: .atom(Atom(connNode)), extra: extra)
        }
        for name in deletes { deleteGlobalName(name) }
    }

    // MARK: Locks

    func setLock(_ id: Term, pid: Pid) -> Bool {
        guard let (resource, requester) = Global.splitOptional(id) else { return false }
        guard let holders = tables.canSetLock((resource, requester)) else { return false }
        if holders.contains(where: { $0.pid == pid }) { return true }
        let ref = me.monitor(pid)
        tables.state.withLock { s in
            s.locks[resource] = GlobalTables.Lock(requester: requester, holders: [(pid, ref)] + holders)
            s.refLocks[ref] = resource
            s.pidLocks[pid, default: []].insert(resource)
        }
        return true
    }

    func delLock(_ id: Term, pid: Pid) {
        guard let (resource, requester) = Global.splitOptional(id) else { return }
        let matches = tables.state.withLock { $0.locks[resource]?.requester == requester }
        if matches { removeLock(resource, pid: pid, down: false) }
    }

    func removeLock(_ resource: Term, pid: Pid, down: Bool) {
        let ref: Reference? = tables.state.withLock { s in
            guard var lock = s.locks[resource], let i = lock.holders.firstIndex(where: { $0.pid == pid }) else { return nil }
            let ref = lock.holders[i].ref
            s.refLocks[ref] = nil
            s.pidLocks[pid]?.remove(resource)
            if s.pidLocks[pid]?.isEmpty == true { s.pidLocks[pid] = nil }
            if lock.holders.count == 1 {
                s.locks[resource] = nil
            } else {
                lock.holders.remove(at: i)
                s.locks[resource] = lock
            }
            return ref
        }
        guard let ref else { return }
        me.demonitor(ref, flush: true)
        if resource == Global.resource, tables.state.withLock({ $0.locks[resource] == nil }) { globalLockDown = down }
    }

    func deleteLock(ref: Reference, down: Bool) {
        let found: (Term, Pid)? = tables.state.withLock { s in
            guard let resource = s.refLocks[ref], let holder = s.locks[resource]?.holders.first(where: { $0.ref == ref }) else { return nil }
            return (resource, holder.pid)
        }
        if let (resource, pid) = found { removeLock(resource, pid: pid, down: down) }
    }

    // MARK: Sync

    func notifySynced(_ node: String) {
        for i in syncs.indices { syncs[i].nodes.remove(node) }
        finishSyncs()
    }

    func finishSyncs() {
        let done = syncs.filter { $0.nodes.isEmpty }
        syncs.removeAll { $0.nodes.isEmpty }
        for s in done { Gen.reply(s.from, Term.ok) }
    }

    // MARK: Known nodes

    func nodeVsn(_ node: String) -> Int {
        if node == home { return Self.vsn }
        return known[node] ?? pending[node] ?? 0
    }

    func mkKnownList(_ vsn: Int) -> [Term] {
        vsn < 7 ? known.keys.map { .atom(Atom($0)) } : known.map { .tuple([.atom(Atom($0.key)), .integer($0.value)]) }
    }

    static func nodeOf(_ t: Term) -> String? {
        if let n = t.atomName { return n }
        if case .tuple(let p) = t, p.count == 2 { return p[0].atomName }
        return nil
    }

    func makeNodeVsnList(_ list: [Term], keepUnknown: Bool = false) -> [(String, Int)] {
        list.compactMap { t in
            if let n = t.atomName { return (n, nodeVsn(n)) }
            if case .tuple(let p) = t, p.count == 2, let n = p[0].atomName, let v = p[1].intValue {
                return (n, v == 0 ? nodeVsn(n) : v)
            }
            return nil
        }
    }

    /// Adds nodes to `known`; returns those that were new.
    func addToKnown(_ nodes: [(String, Int)]) -> [String] {
        var added: [String] = []
        for (n, v) in nodes where n != home {
            if let old = known[n] {
                if old < 0 { known[n] = v }
            } else {
                known[n] = v
                added.insert(n, at: 0)
            }
        }
        return added
    }

    // MARK: Sending

    func nodeName(_ pid: Pid) -> String { pid.node?.name ?? home }

    func cast(_ node: String, _ message: Term) {
        me.send(Term.tuple([.atom("$gen_cast"), message]), to: MultiCall.server, on: Node.named(node))
    }

    /// `gns_volatile_send/2`: only over an existing connection (noconnect).
    /// Closes the connection to `node` that global knows (its last nodeup's), never a newer
    /// one: a remove_connection that was sent over a connection that has since been
    /// replaced (read after a SIGSTOP, say) speaks of the old one. Closing the new one would
    /// make this node report a lost connection that the peer's own partition did not cause,
    /// and every other node would then cut the peer.
    func disconnectKnown(_ node: String) {
        connections[node]?.close(reason: "disconnected", down: .disconnected)
    }

    /// gns_volatile_send: `noconnect`, and more: only over the connection whose nodeup
    /// global has seen. A lost_connection sent while global has not yet handled the nodedown
    /// of a connection that a newer one already replaced would otherwise reach the peer over
    /// the new connection and make it cut a live one (a node that resumes after SIGSTOP
    /// reports losing one node to another that it has just reconnected to).
    func volatileSend(_ node: String, _ message: Term) {
        guard let connection = connections[node], connection.phase == .up else { return }
        connection.router.send(message, toName: MultiCall.server, via: connection, from: me.pid)
    }

    func volatileMulticast(_ message: Term, ignoring: String, minVersion: Int, alsoPending: Bool) {
        for (n, v) in known where n != ignoring && v >= minVersion { volatileSend(n, message) }
        if alsoPending {
            for (n, v) in pending where n != ignoring && v >= minVersion { volatileSend(n, message) }
        }
    }

    func malformed(_ t: Term) {
        log.warning("global_name_server ignored a malformed message: \(DistributionRouter.summary(t))")
    }
}
