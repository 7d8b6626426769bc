import Logging
@_spi(Distribution) import Parley
import ParleyOTP

/// Where a name's last checkpoint is: here (with it), or on its next owner.
enum CheckpointPlace: Sendable {
    case here(Term?)
    case at(String)
}

/// What the API asks of the registry process of its node.
enum RegistryLocal: Sendable {
    /// `Gen.call`: register `name` (through its owner); replies `Result<Pid, Failure>`.
    case register(name: String, what: Registration)
    /// `Gen.call`: remove `name` everywhere; replies `Result<Pid, Failure>`.
    case unregister(name: String)
    /// `Gen.call`: remove `name` everywhere and stop its process (a supervisor's
    /// `terminate_child`); replies `Result<Pid, Failure>`.
    case terminate(name: String)
    /// `Gen.call`: reply `true` once the first sync with every connected member is done.
    case awaitSync
    /// `Gen.call`: where the checkpoint a restart of `name` would read is: replies a
    /// ``CheckpointPlace``.
    case lastCheckpoint(name: String)
    /// `Gen.call`: hand every name off, then exit; replies `true`.
    case leave
    /// `Gen.call`: `member` joins `group` on every member; replies `true`.
    case joinGroup(group: String, member: GroupMember)
    /// `Gen.call`: `member` leaves `group` everywhere; replies whether it was a member.
    case leaveGroup(group: String, member: GroupMember)
}

/// A member of a registry group: a process of some node, or a registered name (whichever
/// process holds it now: the membership survives moves and restarts).
enum GroupMember: Hashable, Sendable {
    case pid(Pid)
    case name(String)

    var term: Term {
        switch self {
        case .pid(let p): return .tuple([.atom("pid"), .pid(p)])
        case .name(let n): return .tuple([.atom("name"), .string(n)])
        }
    }

    init?(_ t: Term) {
        guard case .tuple(let f) = t, f.count == 2 else { return nil }
        if f[0] == .atom("pid"), case .pid(let p) = f[1] { self = .pid(p); return }
        if f[0] == .atom("name"), let n = f[1].stringValue { self = .name(n); return }
        return nil
    }
}

enum Registration: Sendable {
    case pid(Pid)
    case worker(WorkerSpec)

    var term: Term {
        switch self {
        case .pid(let p): return .tuple([.atom("pid"), .pid(p)])
        case .worker(let w): return .tuple([.atom("start"), w.term])
        }
    }

    init?(_ t: Term) {
        guard case .tuple(let f) = t, f.count == 2 else { return nil }
        if f[0] == .atom("pid"), case .pid(let p) = f[1] { self = .pid(p); return }
        if f[0] == .atom("start"), let w = WorkerSpec(f[1]) { self = .worker(w); return }
        return nil
    }
}

/// Starts a defined worker: context, registry process, handed-over state, whether it
/// waits for its predecessor's drained marker.
typealias WorkerStarter = @Sendable (WorkerContext, Pid, Term?, Bool) throws(StartError) -> Pid

/// What the API reads without asking the registry process, and what it was given.
final class RegistryShared: Sendable {
    let entries = Locked<[String: RegistryEntry]>([:])
    let groups = Locked<[String: Set<GroupMember>]>([:])
    /// Members (node names, this one included) and whether the first sync is still going.
    let view = Locked<(members: [String], syncing: Bool)>(([], true))
    /// Checkpoints its workers made and the server has not taken yet: the latest per name,
    /// with the process that made it (a worker writes here instead of sending the server a
    /// message per checkpoint).
    let pendingCheckpoints = Locked<[String: (holder: Pid, state: Term)]>([:])
}

/// The registry process of one node: registered under the registry's name, so that its
/// peers reach it as `{Name, Node}`. Every member keeps every entry; a name's owner on the
/// placement serialises its registrations; a holder's node watches it.
struct RegistryServer {
    let me: Process
    let registry: DistributedRegistry
    let shared: RegistryShared
    let placement: any Placement
    let log: Logger
    var nodeName: String { me.node.name }

    /// Peers: node → registry process, and the monitor of `{Name, Node}`.
    var peers: [String: Pid] = [:]
    var peerMonitors: [Reference: String] = [:]
    var monitorOf: [String: Reference] = [:]
    /// Nodes asked to sync that have not answered (nor turned out to run no registry).
    var syncing: [String: Reference] = [:]
    /// Nodes leaving gracefully: no longer on the ring.
    var leaving: Set<String> = []
    /// Whether this node has applied the syncs of every node it found (or given up on
    /// them): while not, no peer moves a name to it, so a member that rejoins under load
    /// takes names once it is free to start them, not while thousands of entries queue
    /// ahead of each move (a gap with no holder).
    var ready = false
    /// Peers that said they are ready (in a sync, or `{ready, Pid, Bool}`): names move only
    /// to them.
    var readyPeers: Set<String> = []
    /// Peers this node sent its sync to (since they became peers).
    var syncSent: Set<String> = []
    /// Names the last rebalance left here because their owner is not ready yet: a leave
    /// waits for them (readiness comes within a sync timeout, or the peer is lost).
    var waitingForReadyOwner = 0
    var leavingMyself: Gen.From?
    /// Monitors of holders on this node.
    var holderMonitors: [Pid: Reference] = [:]
    /// The names of each holder of this node (a holder's exit looks its names up here, not
    /// through every entry). May list names it no longer holds; the entries decide.
    var namesOf: [Pid: Set<String>] = [:]
    /// New holders started here for a move that their old node has not confirmed yet
    /// (its track), with the entry they replaced: if the old node gives the move up and
    /// stops one, the name goes back to that entry instead of being lost.
    var provisional: [Pid: (name: String, previous: RegistryEntry?)] = [:]
    /// Checkpoints of this node's workers not yet sent: the latest per name, sent to every
    /// peer in one message.
    var pendingCheckpoints: [String: Term] = [:]
    /// The member each worker of this node last sent its checkpoint to.
    var replicatedTo: [String: String] = [:]
    var lastCheckpointFlush = ContinuousClock.now - .seconds(1)
    var checkpointFlushScheduled = false
    /// Epochs of names that had a holder once, so a new placement fences an old one.
    var retired: [String: Int] = [:]
    var checkpoints: [String: Term] = [:]
    var nextTag = 1
    /// Registrations waiting for every member's ack.
    var acks: [Int: Ack] = [:]
    /// Registrations sent to their owner: tag → (caller, name, what, owner).
    var forwarded: [Int: (from: Gen.From, name: String, what: Registration, owner: String)] = [:]
    /// Requests that wait for the first sync.
    var deferred: [(Gen.From, RegistryLocal)] = []
    var syncWaiters: [Gen.From] = []
    /// Names moving away from this node.
    var moves: [String: Move] = [:]
    /// Names to move once a place in the window is free (``startMoves()``).
    var moveQueue: [String] = []
    var queued: Set<String> = []
    /// Moves under way at once.
    static let movesInFlight = 64
    /// Workers of lost nodes that another member owns now, kept until some holder of the
    /// name shows up: if that owner is lost too before it restarts them (a partition
    /// takes nodes one nodedown at a time), the next owner restarts them instead.
    var orphans: [String: RegistryEntry] = [:]
    var beats = 0
    /// Old holders of the names this node handed off while leaving.
    var handedOff: [Pid] = []
    /// A leave's last step: each old holder's flush marker sent, the answers awaited.
    var flushing: (tag: Int, waiting: Int)? = nil
    var flushRounds = 0
    var graceScheduled = false
    /// New holders here waiting for a predecessor on `node`.
    var heldFrom: [Pid: String] = [:]
    var watching = false
    /// Monitors of group members of this node.
    var memberMonitors: [Pid: Reference] = [:]
    /// Names whose worker answered `.ignore` since the members last changed.
    var ignored: Set<String> = []
    var rebalanceScheduled = false
    /// When this node restarted supervised children lately (the restart intensity).
    var restartTimes: [ContinuousClock.Instant] = []

    struct Ack {
        var waiting: Set<String>
        var then: Then
        enum Then {
            case reply(Gen.From, Pid)
            case replyRemote(Pid, Int, Pid)
            case unregistered(Gen.From, Pid)
            case replied(Gen.From, Bool)
            case moved(name: String, old: Pid)
            case nothing
        }
    }

    struct Move {
        let tag: Int
        let target: String
        let old: Pid
        /// The epoch of the new placement.
        let epoch: Int
        var phase: Phase
        enum Phase { case asking, starting, tracking }
    }

    struct Heartbeat: Sendable {}
    struct Rebalance: Sendable {}
    struct MoveTimeout: Sendable { let name: String; let tag: Int }
    struct FlushTimeout: Sendable { let tag: Int }
    /// From a worker whose checkpoint found the pending ones empty: the server sends them
    /// all when it reaches this message (with every checkpoint left meanwhile), or, if it
    /// sent some less than ``checkpointInterval`` ago, that long after the last ones.
    struct CheckpointsPending: Sendable {}
    struct CheckpointFlush: Sendable {}
    /// The least time between two checkpoint messages to the peers: under load the
    /// checkpoints of every worker of a node travel together, 100 times a second at most;
    /// a quiet node's leave at once.
    static let checkpointInterval: Duration = .milliseconds(10)
    struct FlushGrace: Sendable {}
    /// Between a leave's two rounds of flush markers, and between a move's last ack and
    /// its old holder's drained marker.
    static let flushGrace: Duration = .milliseconds(250)
    /// How long a leave waits for its flush markers' answers (a successor that died
    /// answers none).
    static let flushTimeout: Duration = .seconds(5)
    struct SyncTimeout: Sendable { let node: String }
    struct Retry: Sendable { let from: Gen.From; let name: String; let what: Registration }

    static let heartbeat: Duration = .milliseconds(250)

    init(me: Process, registry: DistributedRegistry, shared: RegistryShared, placement: any Placement, log: Logger) {
        self.me = me
        self.registry = registry
        self.shared = shared
        self.placement = placement
        self.log = log
    }

    // MARK: Loop

    mutating func run() async throws {
        FreezeWatch.start()
        watch()
        publishView()
        if syncing.isEmpty { setReady(true) }
        _ = me.sendAfter(Heartbeat(), after: Self.heartbeat)
        while true {
            let m = try await me.receive()
            handle(m)
            if !moveQueue.isEmpty, moves.count < Self.movesInFlight { startMoves() }
            if leavingMyself != nil, moves.isEmpty, moveQueue.isEmpty, waitingForReadyOwner == 0 {
                if flushing == nil { flush() }
                if flushing?.waiting == 0 {
                    if flushRounds >= 2 { return finishLeaving() }
                    if !graceScheduled {
                        graceScheduled = true
                        _ = me.sendAfter(FlushGrace(), after: Self.flushGrace)
                    }
                }
            }
        }
    }

    /// Every move of a leave is done, so every member has the new holders, and whatever a
    /// member sent to an old holder before its ack is in that holder's mailbox (one
    /// connection keeps its order). Each old holder forwards it all, then a marker; once
    /// every successor has answered its marker, the messages are there and this node may
    /// go (its process exit would lose what was still queued here, or in its sockets).
    ///
    /// A sender that read the old holder from its copy just before its node's ack went
    /// out may send after the ack: a second round of markers, ``flushGrace`` later, takes
    /// those along too.
    mutating func flush() {
        let tag = take()
        let old = handedOff.filter(\.isAlive)
        flushRounds += 1
        flushing = (tag, old.count)
        for pid in old { pid.send(HandoffOrder.flush(tag: tag, replyTo: me.pid)) }
        if !old.isEmpty { _ = me.sendAfter(FlushTimeout(tag: tag), after: Self.flushTimeout) }
    }

    /// Whether this node was frozen a moment ago (its lost peers declared it down): the OS
    /// process stood still (``FreezeWatch``), not merely this process waiting for a thread.
    var wasFrozen: Bool { FreezeWatch.wasFrozen(within: .seconds(10)) }

    mutating func watch() {
        guard !watching, let router = Distribution.router(of: me.node) else { return }
        watching = true
        router.monitorNodes(me.pid, true)
        for peer in router.connectedNodes { discover(peer.name) }
    }

    mutating func discover(_ node: String) {
        guard node != nodeName, peers[node] == nil, syncing[node] == nil else { return }
        let ref = monitorPeer(node)
        syncing[node] = ref
        setReady(false)
        me.send(Term.tuple([.atom("discover"), .pid(me.pid)]), to: registry.name, on: Node.named(node))
        _ = me.sendAfter(SyncTimeout(node: node), after: registry.syncTimeout)
        publishView()
    }

    mutating func monitorPeer(_ node: String) -> Reference {
        if let ref = monitorOf[node] { return ref }
        let ref = me.monitor(registry.name, on: Node.named(node))
        monitorOf[node] = ref
        peerMonitors[ref] = node
        return ref
    }

    mutating func handle(_ m: any Sendable) {
        switch m {
        case is Heartbeat:
            if !watching { watch() }
            _ = me.sendAfter(Heartbeat(), after: Self.heartbeat)
            beats += 1
            if beats % 4 == 0, !orphans.isEmpty { reviewOrphans() }
        case let c as Gen.CallMessage:
            if let t = c.request as? Term, case .tuple(let q) = t, q.count == 2, q[0] == .atom("last_checkpoint"), let name = q[1].stringValue {
                // A member's lastCheckpoint(of:), asking the name's next owner.
                absorbCheckpoints()
                return Gen.reply(c.from, checkpoints[name] ?? .atom("undefined"))
            }
            guard let r = c.request as? RegistryLocal else { return }
            local(r, from: c.from)
        case let a as HandoffAnswer:
            answered(a)
        case let d as DownMessage:
            down(d)
        case is Rebalance:
            rebalanceScheduled = false
            rebalance()
        case let r as Retry:
            local(.register(name: r.name, what: r.what), from: r.from)
        case is CheckpointsPending:
            let since = ContinuousClock.now - lastCheckpointFlush
            if since >= Self.checkpointInterval {
                flushCheckpoints()
            } else if !checkpointFlushScheduled {
                checkpointFlushScheduled = true
                _ = me.sendAfter(CheckpointFlush(), after: Self.checkpointInterval - since)
            }
        case is CheckpointFlush:
            checkpointFlushScheduled = false
            flushCheckpoints()
        case is FlushGrace:
            flush()
        case let t as MoveTimeout:
            moveTimedOut(t)
        case let t as FlushTimeout:
            if let f = flushing, f.tag == t.tag, f.waiting > 0 {
                log.warning("registry \(registry.name): \(f.waiting) handed-off names did not confirm their last messages within \(Self.flushTimeout); leaving anyway")
                flushing?.waiting = 0
            }
        case let t as SyncTimeout:
            if syncing[t.node] != nil {
                log.debug("registry \(registry.name): \(t.node) did not answer its sync in time; it is not a member")
                syncing[t.node] = nil
                syncDone()
            }
        case let t as Term:
            wire(t)
        default:
            log.warning("registry \(registry.name) ignored an unexpected \(type(of: m))")
        }
    }

    // MARK: The view

    /// Nodes on the ring: this one (unless leaving) and every synced peer not leaving.
    var ringMembers: [String] {
        var m = peers.keys.filter { !leaving.contains($0) }
        if leavingMyself == nil { m.append(nodeName) }
        return m.sorted()
    }

    func owner(of name: String) -> String? {
        let members = ringMembers
        return members.isEmpty ? nil : placement.owner(of: name, among: members)
    }

    func publishView() {
        let members = ([nodeName] + peers.keys).sorted()
        let syncing = !self.syncing.isEmpty
        shared.view.withLock { $0 = (members, syncing) }
    }

    var entries: [String: RegistryEntry] { shared.entries.withLock { $0 } }
    func entry(_ name: String) -> RegistryEntry? { shared.entries.withLock { $0[name] } }

    mutating func set(_ e: RegistryEntry) {
        shared.entries.withLock { $0[e.name] = e }
        orphans[e.name] = nil
        if e.node == nodeName {
            if holderMonitors[e.pid] == nil { holderMonitors[e.pid] = me.monitor(e.pid) }
            namesOf[e.pid, default: []].insert(e.name)
        }
    }

    mutating func remove(_ name: String) -> RegistryEntry? {
        guard let e = shared.entries.withLock({ $0.removeValue(forKey: name) }) else { return nil }
        retired[name] = max(retired[name] ?? 0, e.epoch)
        return e
    }

    func nextEpoch(_ name: String) -> Int { max(entry(name)?.epoch ?? 0, retired[name] ?? 0) + 1 }

    func connected(_ node: String) -> Bool {
        node == nodeName || peers[node] != nil || syncing[node] != nil
    }

    // MARK: Requests of this node's API

    mutating func local(_ r: RegistryLocal, from: Gen.From) {
        if !syncing.isEmpty, case .register = r { deferred.append((from, r)); return }
        switch r {
        case .register(let name, let what):
            guard let owner = owner(of: name) else {
                return Gen.reply(from, Result<Pid, DistributedRegistry.Failure>.failure(.noNodeAvailable(name)))
            }
            if owner == nodeName {
                register(name, what, reply: { server, result in
                    if case .success(let pid) = result, let e = server.entry(name) {
                        server.track(e, then: { .reply(from, pid) })
                    } else {
                        Gen.reply(from, result)
                    }
                })
            } else {
                let tag = take()
                forwarded[tag] = (from, name, what, owner)
                send(to: owner, .tuple([.atom("register"), .pid(me.pid), .integer(tag), .string(name), what.term]))
            }
        case .unregister(let name), .terminate(let name):
            guard let e = remove(name) else {
                return Gen.reply(from, Result<Pid, DistributedRegistry.Failure>.failure(.notRegistered(name)))
            }
            checkpoints[name] = nil
            untrackHolder(e)
            var stop = false
            if case .terminate = r {
                // The holder's node stops it, after removing the entry (else it would
                // restart a supervised child).
                if e.node == nodeName { me.exit(e.pid, .shutdown) } else { stop = true }
            }
            broadcast(untrack: e, then: .unregistered(from, e.pid), stop: stop)
        case .awaitSync:
            if syncing.isEmpty { Gen.reply(from, true) } else { syncWaiters.append(from) }
        case .lastCheckpoint(let name):
            // Where a restart would read it: the next owner of the name, after its holder's node.
            absorbCheckpoints()
            let others = ringMembers.filter { $0 != entry(name)?.node }
            let next = others.isEmpty ? nil : placement.owner(of: name, among: others)
            if let next, next != nodeName, peers[next] != nil {
                Gen.reply(from, CheckpointPlace.at(next))
            } else {
                Gen.reply(from, CheckpointPlace.here(checkpoints[name]))
            }
        case .leave:
            leavingMyself = from
            for (_, pid) in peers { me.send(Term.tuple([.atom("leaving"), .pid(me.pid)]), to: pid) }
            membersChanged()
        case .joinGroup(let group, let member):
            groupChange(group, member, joined: true)
            groupBroadcast("gjoin", group, member, then: .replied(from, true))
        case .leaveGroup(let group, let member):
            let was = groupChange(group, member, joined: false)
            if was { groupBroadcast("gleave", group, member, then: .replied(from, true)) } else { Gen.reply(from, false) }
        }
    }

    // MARK: Groups

    /// Applies a join or a leave here; returns whether anything changed.
    @discardableResult
    mutating func groupChange(_ group: String, _ member: GroupMember, joined: Bool) -> Bool {
        let changed = shared.groups.withLock { g -> Bool in
            if joined { return g[group, default: []].insert(member).inserted }
            guard g[group]?.remove(member) != nil else { return false }
            if g[group]?.isEmpty == true { g[group] = nil }
            return true
        }
        if joined, case .pid(let p) = member, p.nodeName == nodeName, memberMonitors[p] == nil {
            memberMonitors[p] = me.monitor(p)
        }
        return changed
    }

    mutating func groupBroadcast(_ op: String, _ group: String, _ member: GroupMember, then: Ack.Then?) {
        let tag = then == nil ? 0 : take()
        for (_, pid) in peers { me.send(Term.tuple([.atom(Atom(op)), .pid(me.pid), .string(group), member.term, .integer(tag)]), to: pid) }
        if let then {
            acks[tag] = Ack(waiting: Set(peers.keys), then: then)
            if peers.isEmpty { acked(tag, by: nil) }
        }
    }

    /// A process member of this node exited: it leaves every group, everywhere.
    mutating func memberExited(_ pid: Pid) {
        let left = shared.groups.withLock { g -> [String] in
            var left: [String] = []
            for (name, members) in g where members.contains(.pid(pid)) {
                left.append(name)
                g[name]?.remove(.pid(pid))
                if g[name]?.isEmpty == true { g[name] = nil }
            }
            return left
        }
        for group in left { groupBroadcast("gleave", group, .pid(pid), then: nil) }
    }

    var groupsTerm: Term {
        .list(shared.groups.withLock { $0 }.map { .tuple([.string($0.key), .list($0.value.map(\.term))]) })
    }

    mutating func take() -> Int {
        defer { nextTag += 1 }
        return nextTag
    }

    /// The owner's side of a registration: refuse a taken name, start a worker here or
    /// take a process of the caller's node; `reply` gets the outcome before the track.
    mutating func register(_ name: String, _ what: Registration,
                           reply: (inout RegistryServer, Result<Pid, DistributedRegistry.Failure>) -> Void) {
        if let e = entry(name) { return reply(&self, .failure(.alreadyRegistered(name, e.pid))) }
        let epoch = nextEpoch(name)
        switch what {
        case .pid(let pid):
            set(RegistryEntry(name: name, pid: pid, epoch: epoch, worker: nil))
            reply(&self, .success(pid))
        case .worker(let spec):
            switch start(spec, name: name, handed: nil, held: false) {
            case .success(let pid):
                set(RegistryEntry(name: name, pid: pid, epoch: epoch, worker: spec))
                reply(&self, .success(pid))
            case .failure(let f):
                reply(&self, .failure(f))
            }
        }
    }

    func start(_ spec: WorkerSpec, name: String, handed: Term?, held: Bool) -> Result<Pid, DistributedRegistry.Failure> {
        guard let starter = registry.starter(spec.key) else { return .failure(.undefinedWorker(spec.key)) }
        let context = WorkerContext(name: name, registry: registry, arguments: spec.arguments)
        do throws(StartError) {
            return .success(try starter(context, me.pid, handed, held))
        } catch {
            return .failure(.startFailed(name, error.description))
        }
    }

    // MARK: Broadcasts

    /// Tells every peer of `e` and does `then` once each has applied it (or is gone).
    mutating func track(_ e: RegistryEntry, then: () -> Ack.Then) {
        let tag = take()
        let waiting = Set(peers.keys)
        for (_, pid) in peers { me.send(Term.tuple([.atom("track"), .pid(me.pid), e.term, .integer(tag)]), to: pid) }
        acks[tag] = Ack(waiting: waiting, then: then())
        if waiting.isEmpty { acked(tag, by: nil) }
    }

    mutating func broadcast(untrack e: RegistryEntry, then: Ack.Then?, stop: Bool = false) {
        let tag = then == nil ? 0 : take()
        for (_, pid) in peers {
            var t: [Term] = [.atom("untrack"), .pid(me.pid), .string(e.name), .pid(e.pid), .integer(tag)]
            if stop { t.append(.atom("stop")) }
            me.send(Term.tuple(t), to: pid)
        }
        if let then {
            acks[tag] = Ack(waiting: Set(peers.keys), then: then)
            if peers.isEmpty { acked(tag, by: nil) }
        }
    }

    mutating func acked(_ tag: Int, by node: String?) {
        guard var a = acks[tag] else { return }
        if let node { a.waiting.remove(node) }
        guard a.waiting.isEmpty else { acks[tag] = a; return }
        acks[tag] = nil
        switch a.then {
        case .reply(let from, let pid):
            Gen.reply(from, Result<Pid, DistributedRegistry.Failure>.success(pid))
        case .replyRemote(let to, let remoteTag, let pid):
            me.send(Term.tuple([.atom("registered"), .integer(remoteTag), .tuple([.atom("ok"), .pid(pid)])]), to: to)
        case .unregistered(let from, let pid):
            Gen.reply(from, Result<Pid, DistributedRegistry.Failure>.success(pid))
        case .replied(let from, let value):
            Gen.reply(from, value)
        case .moved(let name, let old):
            // Every member has the new holder, and what each sent to the old one before its
            // ack is in the old one's mailbox (one connection keeps its order), but a sender
            // that read the old holder from its node's copy just before that node's ack may
            // send after it. The old holder says it is drained (and the new one serves the
            // messages sent to it directly) only ``flushGrace`` later, so that such a message
            // is forwarded ahead of them: each sender's messages stay in the order sent. A
            // timer, not this process: it fires even if this registry has left meanwhile.
            Process.sendAfter(HandoffOrder.finish, to: old, after: Self.flushGrace)
            if leavingMyself != nil { handedOff.append(old) }
            if moves[name]?.old == old { moves[name] = nil }
        case .nothing:
            break
        }
    }

    func send(to node: String, _ t: Term) {
        if let pid = peers[node] { me.send(t, to: pid) } else { me.send(t, to: registry.name, on: Node.named(node)) }
    }

    /// This node stops watching a holder it no longer has an entry for.
    mutating func untrackHolder(_ e: RegistryEntry) {
        if let ref = holderMonitors.removeValue(forKey: e.pid) { me.demonitor(ref) }
        namesOf[e.pid] = nil
    }

    // MARK: Applying what peers say

    /// Applies a placement heard from a peer (or a sync): the winner of a conflict stays
    /// everywhere; a loser held here gives way to it.
    mutating func apply(_ e: RegistryEntry) {
        provisional[e.pid] = nil
        if e.node == nodeName {
            // Only this node knows what runs here: an entry for a process of ours that
            // is dead, or replaced, is stale.
            guard e.pid.isAlive else { return }
        } else if !connected(e.node) {
            return
        }
        guard let old = entry(e.name) else { return set(e) }
        if old.pid == e.pid {
            if e.epoch > old.epoch { set(e) }
            return
        }
        if RegistryEntry.wins(e, over: old) {
            set(e)
            if old.node == nodeName { evict(old, winner: e) }
        } else if e.node == nodeName {
            evict(e, winner: old)
        }
    }

    /// A holder here lost its name to `winner`: a worker hands its state and messages to
    /// it and exits; a plain process exits with `{shutdown, name_conflict}`.
    mutating func evict(_ loser: RegistryEntry, winner: RegistryEntry) {
        untrackHolder(loser)
        moves[loser.name] = nil
        log.info("registry \(registry.name): \(loser.name) on \(loser.pid) gives way to \(winner.pid)@\(winner.node) (epoch \(loser.epoch) vs \(winner.epoch))")
        if loser.worker != nil {
            loser.pid.send(HandoffOrder.evict(winner: winner.pid))
        } else {
            Process.exit(loser.pid, .shutdownWith(Term.atom("name_conflict")))
        }
    }

    mutating func wire(_ t: Term) {
        guard case .tuple(let c) = t, let op = c.first?.atomName else { return unexpected(t) }
        switch (op, c.count) {
        case ("discover", 2):
            guard case .pid(let peer) = c[1] else { return unexpected(t) }
            added(peer)
            sendSync(to: peer)
            membersChanged()
        case ("sync", 4), ("sync", 5), ("sync", 6), ("sync", 7), ("sync", 8):
            guard case .pid(let peer) = c[1], let items = c[2].listElements, let cps = c[3].listElements else { return unexpected(t) }
            added(peer)
            // The peer's members: a registry needs a full mesh of its members (as Swarm
            // relies on global's), so this node connects to those it does not know; their
            // nodeup brings their sync.
            if c.count >= 5, let members = c[4].listElements, let router = Distribution.router(of: me.node) {
                for case .atom(let m) in members where m.name != nodeName && peers[m.name] == nil && syncing[m.name] == nil {
                    _ = router.connection(to: Node.named(m.name))
                }
            }
            let node = peer.nodeName
            syncing[node] = nil
            if c.count < 7 || c[6] == .atom("true") { readyPeers.insert(node) } else { readyPeers.remove(node) }
            // It waits for this node's sync, and this node has sent none: the discover this
            // node sent found no registry there (it started after this one).
            if c.count >= 8, c[7] == .atom("true"), !syncSent.contains(node) { sendSync(to: peer) }
            for item in items { if let e = RegistryEntry(item) { apply(e) } }
            if c.count >= 6, let groups = c[5].listElements {
                for g in groups {
                    guard case .tuple(let p) = g, p.count == 2, let group = p[0].stringValue, let ms = p[1].listElements else { continue }
                    for m in ms {
                        guard let member = GroupMember(m) else { continue }
                        // A process of a node this one does not reach (or one of its own
                        // that this node does not know of) is not taken on hearsay.
                        if case .pid(let pid) = member, pid.nodeName == nodeName || !connected(pid.nodeName) { continue }
                        groupChange(group, member, joined: true)
                    }
                }
            }
            for cp in cps {
                if case .tuple(let p) = cp, p.count == 2, let name = p[0].stringValue, checkpoints[name] == nil { checkpoints[name] = p[1] }
            }
            syncDone()
            membersChanged()
        case ("track", 4):
            guard case .pid(let peer) = c[1], let e = RegistryEntry(c[2]), let tag = c[3].intValue else { return unexpected(t) }
            apply(e)
            if tag != 0 { me.send(Term.tuple([.atom("ack"), .pid(me.pid), .integer(tag)]), to: peer) }
        case ("untrack", 5), ("untrack", 6):
            guard case .pid(let peer) = c[1], let name = c[2].stringValue, case .pid(let holder) = c[3], let tag = c[4].intValue else {
                return unexpected(t)
            }
            if let e = entry(name), e.pid == holder {
                _ = remove(name)
                checkpoints[name] = nil
                untrackHolder(e)
            }
            // `{untrack, …, stop}`: a supervisor's terminate_child; the holder's node stops it.
            if c.count == 6, c[5] == .atom("stop"), holder.nodeName == nodeName { me.exit(holder, .shutdown) }
            if tag != 0 { me.send(Term.tuple([.atom("ack"), .pid(me.pid), .integer(tag)]), to: peer) }
        case ("ack", 3):
            guard case .pid(let peer) = c[1], let tag = c[2].intValue else { return unexpected(t) }
            acked(tag, by: peer.nodeName)
        case ("register", 5):
            guard case .pid(let peer) = c[1], let tag = c[2].intValue, let name = c[3].stringValue, let what = Registration(c[4]) else {
                return unexpected(t)
            }
            remoteRegister(peer, tag, name, what)
        case ("registered", 3):
            guard let tag = c[1].intValue, let f = forwarded.removeValue(forKey: tag) else { return }
            if c[2] == .tuple([.atom("error"), .atom("not_owner")]) {
                // The owner's view and ours differ for a moment: ask again when ours changed.
                _ = me.sendAfter(Retry(from: f.from, name: f.name, what: f.what), after: .milliseconds(50))
                return
            }
            Gen.reply(f.from, Self.result(c[2], name: f.name))
        case ("handoff", 6):
            guard case .pid(let peer) = c[1], let tag = c[2].intValue, let e = RegistryEntry(c[3]), case .pid(let old) = c[5] else {
                return unexpected(t)
            }
            takeOver(e, state: c[4] == .atom("undefined") ? nil : c[4], old: old, from: peer, tag: tag)
        case ("handoff_started", 4):
            guard let name = c[1].stringValue, let tag = c[2].intValue, case .pid(let new) = c[3] else { return unexpected(t) }
            started(name, tag, new)
        case ("handoff_failed", 4):
            guard let name = c[1].stringValue, let tag = c[2].intValue else { return unexpected(t) }
            guard let move = moves[name], move.tag == tag else { return }
            log.warning("registry \(registry.name): \(name) stays on \(nodeName) for now: \(move.target) could not take it over (\(c[3]))")
            moves[name] = nil
            move.old.send(HandoffOrder.cancel)
            rebalanceLater()
        case ("gjoin", 5), ("gleave", 5):
            guard case .pid(let peer) = c[1], let group = c[2].stringValue, let member = GroupMember(c[3]), let tag = c[4].intValue else {
                return unexpected(t)
            }
            groupChange(group, member, joined: op == "gjoin")
            if tag != 0 { me.send(Term.tuple([.atom("ack"), .pid(me.pid), .integer(tag)]), to: peer) }
        case ("takeover", 3):
            guard let e = RegistryEntry(c[2]) else { return unexpected(t) }
            takeover(e)
        case ("checkpoint", 3):
            guard let name = c[1].stringValue else { return unexpected(t) }
            checkpoints[name] = c[2]
        case ("checkpoints", 2):
            guard let items = c[1].listElements else { return unexpected(t) }
            for case .tuple(let p) in items where p.count == 2 {
                if let name = p[0].stringValue { checkpoints[name] = p[1] }
            }
        case ("flushed", 2):
            guard let tag = c[1].intValue else { return unexpected(t) }
            if let f = flushing, f.tag == tag, f.waiting > 0 { flushing?.waiting -= 1 }
        case ("ready", 3):
            guard case .pid(let peer) = c[1] else { return unexpected(t) }
            if c[2] == .atom("true") {
                readyPeers.insert(peer.nodeName)
                rebalance()
            } else {
                readyPeers.remove(peer.nodeName)
            }
        case ("leaving", 2):
            guard case .pid(let peer) = c[1] else { return unexpected(t) }
            leaving.insert(peer.nodeName)
            membersChanged()
        case ("nodeup", 2), ("nodeup", 3):
            guard let node = c[1].atomName else { return }
            discover(node)
        case ("nodedown", 2), ("nodedown", 3):
            break
        default:
            unexpected(t)
        }
    }

    static func result(_ t: Term, name: String) -> Result<Pid, DistributedRegistry.Failure> {
        if case .tuple(let r) = t, r.count == 2, r[0] == .atom("ok"), case .pid(let p) = r[1] { return .success(p) }
        return .failure(DistributedRegistry.Failure(t, name: name))
    }

    mutating func added(_ peer: Pid) {
        let node = peer.nodeName
        guard node != nodeName else { return }
        _ = monitorPeer(node)
        if peers[node] == nil {
            peers[node] = peer
            leaving.remove(node)
            log.debug("registry \(registry.name): \(node) is a member")
        }
        publishView()
    }

    /// Sends this node's sync to `peer`, asking for its own if this node still waits for it.
    mutating func sendSync(to peer: Pid) {
        syncSent.insert(peer.nodeName)
        me.send(syncTerm(wanted: syncing[peer.nodeName] != nil), to: peer)
    }

    func syncTerm(wanted: Bool) -> Term {
        let all = entries.values.filter { $0.node == nodeName ? $0.pid.isAlive : true }
        return .tuple([.atom("sync"), .pid(me.pid), .list(all.map(\.term)),
                       // Checkpoints go to each name's next owner (replicateCheckpoints,
                       // once the peer is a member), not with the sync.
                       .list([]),
                       .list(peers.keys.sorted().map { .atom(Atom($0)) }), groupsTerm,
                       .atom(ready ? "true" : "false"), .atom(wanted ? "true" : "false")])
    }

    /// Tells the peers whether they may move names to this node: not while it waits for a
    /// sync, again once every sync is applied.
    mutating func setReady(_ now: Bool) {
        guard ready != now else { return }
        ready = now
        for (_, pid) in peers { me.send(Term.tuple([.atom("ready"), .pid(me.pid), .atom(now ? "true" : "false")]), to: pid) }
    }

    mutating func syncDone() {
        publishView()
        guard syncing.isEmpty else { return }
        setReady(true)
        for w in syncWaiters { Gen.reply(w, true) }
        syncWaiters = []
        let waiting = deferred
        deferred = []
        for (from, r) in waiting { local(r, from: from) }
    }

    mutating func remoteRegister(_ peer: Pid, _ tag: Int, _ name: String, _ what: Registration) {
        let me = self.me
        func answer(_ r: Term) { me.send(Term.tuple([.atom("registered"), .integer(tag), r]), to: peer) }
        // This node must own the name in its own view; if not, the caller's view is out
        // of date: it retries when its view changes.
        guard owner(of: name) == nodeName else { return answer(.tuple([.atom("error"), .atom("not_owner")])) }
        register(name, what, reply: { server, result in
            switch result {
            case .success(let pid):
                if let e = server.entry(name) { server.track(e, then: { .replyRemote(peer, tag, pid) }) }
            case .failure(let f):
                answer(f.term)
            }
        })
    }

    /// Sends the pending checkpoints, one `{checkpoints, [{Name, State}]}` per peer: workers
    /// that checkpoint often share a message.
    mutating func flushCheckpoints() {
        lastCheckpointFlush = ContinuousClock.now
        absorbCheckpoints()
        guard !pendingCheckpoints.isEmpty else { return }
        let pending = pendingCheckpoints
        pendingCheckpoints = [:]
        sendCheckpoints(pending)
    }

    /// Sends each checkpoint to the name's next owner, the member that restarts the name if
    /// this node dies (the owner among the others): one `{checkpoints, [{Name, State}]}`
    /// per peer. Only there, so a node's checkpoints cost its peers one copy in all, not
    /// one each.
    mutating func sendCheckpoints(_ items: [String: Term]) {
        let others = ringMembers.filter { $0 != nodeName }
        guard !others.isEmpty else { return }
        var byPeer: [String: [Term]] = [:]
        for (name, state) in items {
            guard let next = placement.owner(of: name, among: others), peers[next] != nil else { continue }
            byPeer[next, default: []].append(.tuple([.string(name), state]))
            replicatedTo[name] = next
        }
        for (node, list) in byPeer { if let pid = peers[node] { me.send(Term.tuple([.atom("checkpoints"), .list(list)]), to: pid) } }
    }

    /// The members changed: each worker of this node whose next owner is another member
    /// now sends it its last checkpoint (a new member, or one that replaces a lost or
    /// leaving one, has none of them yet).
    mutating func replicateCheckpoints() {
        absorbCheckpoints()
        let others = ringMembers.filter { $0 != nodeName }
        guard !others.isEmpty else { return }
        var moved: [String: Term] = [:]
        var kept: [String: String] = [:]
        for (name, state) in checkpoints {
            guard let e = entry(name), e.node == nodeName else { continue }
            guard let next = placement.owner(of: name, among: others) else { continue }
            if replicatedTo[name] == next, peers[next] != nil { kept[name] = next } else { moved[name] = state }
        }
        replicatedTo = kept
        if !moved.isEmpty { sendCheckpoints(moved) }
    }

    /// Takes the checkpoints the workers left in the shared table (before a restart here
    /// reads them, too); the next flush sends them.
    mutating func absorbCheckpoints() {
        let taken: [String: (holder: Pid, state: Term)] = shared.pendingCheckpoints.withLock { p in
            let all = p
            p = [:]
            return all
        }
        for (name, c) in taken {
            guard let e = entry(name), e.pid == c.holder else { continue }
            checkpoints[name] = c.state
            pendingCheckpoints[name] = c.state
        }
    }

    // MARK: Deaths

    mutating func down(_ d: DownMessage) {
        if let node = peerMonitors.removeValue(forKey: d.ref) {
            monitorOf[node] = nil
            return lost(node)
        }
        if memberMonitors[d.pid] == d.ref {
            memberMonitors[d.pid] = nil
            memberExited(d.pid)
        }
        guard holderMonitors[d.pid] == d.ref else { return }
        holderMonitors[d.pid] = nil
        absorbCheckpoints()
        heldFrom[d.pid] = nil
        if let p = provisional.removeValue(forKey: d.pid) {
            // The old node gave the move up and stopped this new holder: the name stays
            // with the entry it had.
            namesOf[d.pid] = nil
            if entry(p.name)?.pid == d.pid {
                if let previous = p.previous { shared.entries.withLock { $0[p.name] = previous } } else { _ = remove(p.name) }
            }
            return
        }
        // A holder of this node exited: its name goes (Swarm's rule), unless it is a
        // supervised child that its restart type says to restart (a supervisor's rule).
        for name in namesOf.removeValue(forKey: d.pid) ?? [] {
            guard let e = entry(name), e.pid == d.pid else { continue }
            if let move = moves[name], move.old == d.pid { moves[name] = nil }
            if let spec = e.worker, Self.restarts(spec.restart, after: d.reason), withinIntensity(name) {
                switch start(spec, name: name, handed: checkpoints[name], held: false) {
                case .success(let pid):
                    let fresh = e.with(pid: pid, epoch: nextEpoch(name))
                    set(fresh)
                    log.info("registry \(registry.name): restarted \(name) after it exited (\(d.reason))")
                    track(fresh, then: { .nothing })
                    continue
                case .failure(let f):
                    log.error("registry \(registry.name): could not restart \(name): \(f)")
                }
            }
            _ = remove(name)
            checkpoints[name] = nil
            broadcast(untrack: e, then: nil)
        }
    }

    /// OTP's restart rules: permanent always, transient after an abnormal exit, temporary
    /// never (and a registry's own worker, with no restart type, never).
    static func restarts(_ restart: ChildSpec.Restart?, after reason: ExitReason) -> Bool {
        switch restart {
        case .permanent?: return true
        case .transient?: return reason.isAbnormal
        case .temporary?, nil: return false
        }
    }

    /// A supervisor's restart intensity, per node: at most `intensity` restarts in any
    /// `period`. Past it, the child that exited last is given up (logged).
    mutating func withinIntensity(_ name: String) -> Bool {
        let now = ContinuousClock.now
        let period = registry.period
        restartTimes.removeAll { now - $0 > period }
        guard restartTimes.count < registry.intensity else {
            log.error("registry \(registry.name): \(name) is not restarted: more than \(registry.intensity) restarts on this node in \(registry.period)")
            return false
        }
        restartTimes.append(now)
        return true
    }

    /// A peer's registry is gone (its node died, the connection dropped, or it stopped).
    mutating func lost(_ node: String) {
        let wasPeer = peers.removeValue(forKey: node) != nil
        leaving.remove(node)
        readyPeers.remove(node)
        syncSent.remove(node)
        if syncing.removeValue(forKey: node) != nil { syncDone() }
        publishView()
        guard wasPeer else { return }
        let frozen = wasFrozen
        log.info("registry \(registry.name): lost \(node)\(frozen ? " (this node was frozen: its peers declared it down)" : "")")
        // Its processes leave every group.
        shared.groups.withLock { g in
            for (name, members) in g {
                let kept = members.filter { if case .pid(let p) = $0 { return p.nodeName != node } else { return true } }
                g[name] = kept.isEmpty ? nil : kept
            }
        }
        // Acks it owed are not coming.
        for tag in Array(acks.keys) { acked(tag, by: node) }
        // Registrations sent to it go to the new owner.
        for (tag, f) in forwarded where f.owner == node {
            forwarded[tag] = nil
            local(.register(name: f.name, what: f.what), from: f.from)
        }
        // Moves to it stop.
        for (name, move) in moves where move.target == node {
            switch move.phase {
            case .asking, .starting:
                moves[name] = nil
                move.old.send(HandoffOrder.cancel)
            case .tracking:
                break
            }
        }
        for (pid, from) in heldFrom where from == node {
            heldFrom[pid] = nil
            provisional[pid] = nil
            pid.send(HandoffOrder.release)
        }
        if frozen {
            // The peers that lost this node restart its names themselves: the holders here
            // are stale, so they stop rather than race the new ones.
            for (_, e) in entries where e.node == nodeName && e.worker != nil {
                _ = remove(e.name)
                untrackHolder(e)
                Process.exit(e.pid, .shutdownWith(Term.atom("fenced")))
            }
        }
        // Its names: gone, and the workers among them restart on their new owners. An owner
        // that is another member is told too, in case it did not know the entry (it was
        // not connected to the dead node): it restarts it unless it has a holder already.
        // Until some holder shows up the name is an orphan here, and orphans of earlier
        // losses whose owner was this node go to the next owner.
        var lostNames: [RegistryEntry] = []
        for (name, e) in entries where e.node == node {
            _ = remove(name)
            if e.worker != nil, !frozen { lostNames.append(e) }
        }
        if frozen { orphans = [:] }
        for e in orphans.values.filter({ entry($0.name) == nil }) + lostNames {
            orphans[e.name] = nil
            guard let owner = owner(of: e.name) else { continue }
            if owner != nodeName {
                orphans[e.name] = e
                send(to: owner, .tuple([.atom("takeover"), .pid(me.pid), e.term]))
                continue
            }
            restartLost(e, note: "")
        }
        membersChanged()
    }

    /// Once a second: an orphan that still has no holder is restarted here if this node
    /// owns it now, or its owner is told again (it may have had another view of the
    /// members when it was first told).
    mutating func reviewOrphans() {
        for e in orphans.values {
            if entry(e.name) != nil || wasFrozen { orphans[e.name] = nil; continue }
            guard let owner = owner(of: e.name) else { continue }
            if owner == nodeName {
                orphans[e.name] = nil
                restartLost(e, note: "")
            } else {
                send(to: owner, .tuple([.atom("takeover"), .pid(me.pid), e.term]))
            }
        }
    }

    /// Restarts a lost node's worker here, from its last checkpoint, one epoch above.
    mutating func restartLost(_ e: RegistryEntry, note: String) {
        guard let spec = e.worker else { return }
        switch start(spec, name: e.name, handed: checkpoints[e.name], held: false) {
        case .success(let pid):
            let fresh = RegistryEntry(name: e.name, pid: pid, epoch: max(e.epoch, retired[e.name] ?? 0) + 1, worker: spec)
            set(fresh)
            if let cp = checkpoints[e.name] { sendCheckpoints([e.name: cp]) }   // its next owner now
            log.info("registry \(registry.name): restarted \(e.name) here after \(e.node) was lost\(note)")
            track(fresh, then: { .nothing })
        case .failure(let f):
            log.error("registry \(registry.name): could not restart \(e.name) after \(e.node) was lost: \(f)")
        }
    }

    /// A peer saw `e`'s node die and says this node owns the name: restart it here unless
    /// a holder of it is known that does not live on a node this one has lost.
    mutating func takeover(_ e: RegistryEntry) {
        // Only once this node has lost that node too (until then its own nodedown decides).
        guard e.worker != nil, !wasFrozen, owner(of: e.name) == nodeName, !connected(e.node) else { return }
        // A holder it knows of elsewhere (a restart that came first) stays.
        guard entry(e.name) == nil else { return }
        restartLost(e, note: " (a peer's word)")
    }

    // MARK: Moves

    /// Moves every worker held here whose owner is now another member; stops the workers
    /// that no member may hold (a quorum placement without its quorum).
    mutating func rebalance() {
        guard syncing.isEmpty || leavingMyself != nil else { return }
        waitingForReadyOwner = 0
        for (name, e) in entries where e.node == nodeName && e.worker != nil && moves[name] == nil && !ignored.contains(name) {
            guard let owner = owner(of: name) else {
                if leavingMyself != nil { continue }
                log.warning("registry \(registry.name): no quorum: \(name) stops")
                _ = remove(name)
                untrackHolder(e)
                broadcast(untrack: e, then: nil)
                Process.exit(e.pid, .shutdownWith(Term.atom("no_quorum")))
                continue
            }
            guard owner != nodeName, peers[owner] != nil, !queued.contains(name) else { continue }
            guard readyPeers.contains(owner) else { waitingForReadyOwner += 1; continue }
            queued.insert(name)
            moveQueue.append(name)
        }
        startMoves()
    }

    /// Starts queued moves while fewer than ``movesInFlight`` are under way: a worker stops
    /// serving when asked, so asking thousands at once (a node that leaves) would keep each
    /// of them waiting behind all the others; a window keeps each name's gap short.
    mutating func startMoves() {
        while moves.count < Self.movesInFlight, let name = moveQueue.popLast() {
            queued.remove(name)
            guard let e = entry(name), e.node == nodeName, e.worker != nil, moves[name] == nil, !ignored.contains(name),
                  let owner = owner(of: name), owner != nodeName, peers[owner] != nil, readyPeers.contains(owner) else { continue }
            let tag = take()
            moves[name] = Move(tag: tag, target: owner, old: e.pid, epoch: nextEpoch(name), phase: .asking)
            e.pid.send(HandoffOrder.begin(tag: tag))
            _ = me.sendAfter(MoveTimeout(name: name, tag: tag), after: registry.handoffTimeout)
        }
    }

    /// Tries the moves again in a second (a failed or timed-out one).
    mutating func rebalanceLater() {
        guard !rebalanceScheduled else { return }
        rebalanceScheduled = true
        _ = me.sendAfter(Rebalance(), after: .seconds(1))
    }

    /// The members changed: every name is asked again, `.ignore` or not.
    mutating func membersChanged() {
        ignored.removeAll()
        rebalance()
        replicateCheckpoints()
    }

    mutating func answered(_ a: HandoffAnswer) {
        guard let (name, move) = moves.first(where: { $0.value.tag == a.tag }), move.phase == .asking,
              let e = entry(name), e.pid == move.old else {
            // A late answer to a move given up meanwhile: the worker holds its messages.
            switch a.decision {
            case .restart, .resume: a.pid.send(HandoffOrder.cancel)
            case .ignore, .failed: break
            }
            return
        }
        let state: Term
        switch a.decision {
        case .ignore:
            moves[name] = nil
            ignored.insert(name)
            return
        case .failed(let why):
            log.warning("registry \(registry.name): \(name) stays for now: \(why)")
            moves[name] = nil
            rebalanceLater()
            return
        case .restart:
            state = .atom("undefined")
        case .resume(let s):
            state = s
        }
        moves[name]?.phase = .starting
        let next = e.with(pid: e.pid, epoch: move.epoch)
        send(to: move.target, .tuple([.atom("handoff"), .pid(me.pid), .integer(move.tag), next.term, state, .pid(e.pid)]))
    }

    /// The new owner's side of a move.
    mutating func takeOver(_ e: RegistryEntry, state: Term?, old: Pid, from peer: Pid, tag: Int) {
        func fail(_ why: String) {
            me.send(Term.tuple([.atom("handoff_failed"), .string(e.name), .integer(tag), .string(why)]), to: peer)
        }
        guard let spec = e.worker else { return fail("not a worker") }
        if let mine = entry(e.name), mine.node == nodeName, mine.pid != old { return fail("already held here") }
        switch start(spec, name: e.name, handed: state, held: true) {
        case .success(let pid):
            let placed = e.with(pid: pid, epoch: e.epoch)
            provisional[pid] = (e.name, entry(e.name))
            set(placed)
            heldFrom[pid] = old.nodeName
            if let s = state, checkpoints[e.name] != nil {
                checkpoints[e.name] = s
                sendCheckpoints([e.name: s])   // to the name's next owner after this node
            }
            me.send(Term.tuple([.atom("handoff_started"), .string(e.name), .integer(tag), .pid(pid)]), to: peer)
        case .failure(let f):
            fail(f.description)
        }
    }

    mutating func started(_ name: String, _ tag: Int, _ new: Pid) {
        guard let move = moves[name], move.tag == tag, move.phase == .starting else {
            // The move was given up meanwhile: the new holder must not keep the name.
            Process.exit(new, .shutdownWith(Term.atom("handoff_cancelled")))
            return
        }
        move.old.send(HandoffOrder.forward(to: new))
        moves[name]?.phase = .tracking
        guard let e = entry(name) else { return }
        untrackHolder(e)
        let placed = e.with(pid: new, epoch: move.epoch)
        set(placed)
        track(placed, then: { .moved(name: name, old: move.old) })
    }

    mutating func moveTimedOut(_ t: MoveTimeout) {
        guard let move = moves[t.name], move.tag == t.tag, move.phase != .tracking else { return }
        log.warning("registry \(registry.name): \(t.name) stays on \(nodeName) for now: its handoff to \(move.target) timed out")
        moves[t.name] = nil
        move.old.send(HandoffOrder.cancel)
        rebalanceLater()
    }

    // MARK: Leaving

    /// Every move is done: the plain names here go; a worker that stayed (it answered
    /// `.ignore`, or its move failed) stops, and its new owner restarts it when this
    /// process is gone.
    func finishLeaving() {
        for (_, e) in entries where e.node == nodeName {
            if e.worker != nil {
                Process.exit(e.pid, .shutdown)
                continue
            }
            for (_, pid) in peers {
                me.send(Term.tuple([.atom("untrack"), .pid(me.pid), .string(e.name), .pid(e.pid), .integer(0)]), to: pid)
            }
        }
        if let from = leavingMyself { Gen.reply(from, true) }
    }

    func unexpected(_ t: Term) {
        log.warning("registry \(registry.name) ignored an unexpected message: \(DistributionRouter.summary(t))")
    }
}
