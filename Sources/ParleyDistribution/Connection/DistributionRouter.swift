import Logging
import NIOCore
import NIOPosix
@_spi(Distribution) import Parley
import Synchronization

/// The node's connections, and the translation between Parley's process operations and the
/// distribution protocol's control messages. Installed as the `Remote` router while the node
/// runs.
final class DistributionRouter: RemoteRouter, Sendable {
    let configuration: Distribution.Configuration
    let identity: WireIdentity
    let flags: DistributionFlags
    let limits: TermLimits
    let group: any EventLoopGroup
    let log: Logger
    let tls: TLSContexts?
    /// Keeps a CPU awake for a moment after each read and write (Configuration.busyWait).
    let busyWait: BusyWait?
    /// Where the processes a read wakes run (`Scheduler.runWoken`).
    let scheduler: Scheduler

    private struct State {
        var connections: [Node: Connection] = [:]
        /// Monitors by name that remote processes hold on local ones: ref → name.
        var incomingNameMonitors: [Reference: (name: String, node: Node)] = [:]
        /// Monitors by name that local processes hold on remote ones: ref → name.
        var outgoingNameMonitors: [Reference: (name: String, node: Node)] = [:]
        /// Processes that asked for {nodeup, N} / {nodedown, N} (net_kernel:monitor_nodes),
        /// with their options, and how many times they asked.
        var nodeWatchers: [NodeWatch: Int] = [:]
        /// ``LocalNode/clusterEvents()`` subscribers.
        var eventStreams: [Int: AsyncStream<ClusterEvent>.Continuation] = [:]
        var nextStream = 0
        /// This node's `global_name_server`, told of visible nodes only (as global's
        /// `net_kernel:monitor_nodes(true)` is).
        var globalServer: Pid?
        var warnedTypes = Set<String>()
        /// Calls from other nodes that came with a sequential-trace token: the token, by the
        /// call's tag, until the reply goes back with it (as a BEAM server's reply carries
        /// the token it received). Bounded: past the bound, the oldest is dropped.
        var replyTokens: [Reference: Term] = [:]
        var replyTokenOrder: [Reference] = []
    }
    /// A `monitorNodes` subscription.
    struct NodeWatch: Hashable {
        let pid: Pid
        let options: MonitorNodesOptions
    }

    private let state = Locked(State())
    /// The failure detector between Parley nodes: it always answers probes; it probes only
    /// when Configuration.failureDetection is set.
    let failureDetector: FailureDetector
    /// How many entries `replyTokens` holds, read without the lock on each reply.
    // Relaxed: a hint that skips the lock when no token waits; the lock orders the table itself.
    private let replyTokenCount = Atomic<Int>(0)
    static let replyTokenLimit = 4096
    private let unlinkIds = Atomic<UInt64>(1)

    init(home: LocalNode, configuration: Distribution.Configuration, name: String, creation: UInt32, group: any EventLoopGroup,
         tls: TLSContexts?) {
        self.configuration = configuration
        self.identity = WireIdentity(home: home, name: name, creation: creation)
        self.selfNode = Node.named(name)
        self.flags = configuration.hidden ? .parley : DistributionFlags.parley.union(.published)
        self.limits = configuration.limits
        self.log = configuration.logger
        self.group = group
        self.tls = tls
        self.busyWait = configuration.busyWait.map { BusyWait(window: $0) }
        self.scheduler = Scheduler.shared
        self.failureDetector = FailureDetector(settings: configuration.failureDetection ?? .init())
    }

    /// The node this router belongs to.
    var home: LocalNode { identity.home }
    /// The interned node of this router's own name: nodes are interned, so a send compares
    /// identities rather than names.
    let selfNode: Node

    /// The node `pid` lives on: a pid of the default node is node nil in memory, here too
    /// when this router belongs to another node of the OS process.
    func peerNode(of pid: Pid) -> Node? {
        if let n = pid.node { return n }
        return home === LocalNode.default ? nil : Node.named(LocalNode.default.name)
    }

    // MARK: Connections

    var connectedNodes: [PeerInfo] {
        state.withLock { s in s.connections.values.compactMap { $0.phase == .up ? $0.peer : nil } }
    }

    /// Every connection's ``NodeInfo`` (up and pending), read outside the router's lock.
    var nodesInfo: [NodeInfo] {
        state.withLock { s in Array(s.connections.values) }.map(\.info).filter { $0.state != .closed }
    }

    /// The connection to `node`, set up on first use as Erlang does (auto-connect), or nil for
    /// this node itself. With `dial: false`, only an existing connection.
    func connection(to node: Node, dial: Bool = true) -> Connection? {
        if node === selfNode { return nil }
        let (conn, fresh) = state.withLock { s -> (Connection?, Bool) in
            if let c = s.connections[node] { return (c, false) }
            guard dial else { return (nil, false) }
            let c = Connection(node: node, router: self)
            s.connections[node] = c
            return (c, true)
        }
        if fresh, let conn { self.dial(conn) }
        return conn
    }

    func dial(_ conn: Connection) {
        let attempt = conn.attemptStarted()
        let name = conn.node.name
        guard let at = name.firstIndex(of: "@") else {
            conn.attemptFailed("bad node name '\(name)'")
            return
        }
        let alive = String(name[..<at]), host = String(name[name.index(after: at)...])
        let config = configuration
        Task {
            do {
                let port: Int
                if let fixed = config.staticPorts[name] {
                    port = fixed
                } else {
                    guard let info = try await EPMDClient.lookup(name: alive, host: host, epmdPort: config.epmdPort) else {
                        throw DistributionError.connectFailed(node: name, reason: "no node '\(alive)' is registered with epmd on \(host)")
                    }
                    guard info.highestVersion >= 6 else {
                        throw DistributionError.connectFailed(node: name, reason: "it speaks distribution version \(info.highestVersion); 6 is required")
                    }
                    port = Int(info.port)
                }
                let tls = self.tls
                _ = try await ClientBootstrap(group: group)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelOption(.writeBufferWaterMark, value: Connection.waterMark(config.bufferBusyLimit))
                    .connectTimeout(.seconds(Int64(config.handshakeTimeout.components.seconds)))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let tls {
                                try DistributionTLS.addClientHandler(tls, to: channel)
                            }
                            try DistributionPipeline.configure(channel, HandshakeHandler(initiator: conn, attempt: attempt, router: self))
                        }
                    }
                    .connect(host: host, port: port).get()
            } catch {
                self.log.warning("cannot connect to \(name): \(error)")
                conn.attemptFailed("\(error)")
            }
        }
    }

    /// How to answer a node that connects to us (dist_util's status, as net_kernel decides),
    /// with the connection the attempt belongs to and its attempt id:
    /// - `ok` for a node we have no connection to;
    /// - a simultaneous connect: the node with the greater name keeps its own attempt (`nok`
    ///   to the other); the smaller one answers `ok_simultaneous` and the accepted attempt
    ///   takes the connection over from its dial;
    /// - `alive` for a node we are up with: it goes on only if the peer answers that its dial
    ///   is still pending (it restarted, or our connection died without our noticing), and
    ///   then replaces the old connection once it has proved the cookie.
    func acceptorStatus(for name: String) -> (HandshakeMachine.Status, Connection?, Int) {
        let node = Node.named(name)
        return state.withLock { s -> (HandshakeMachine.Status, Connection?, Int) in
            let existing = s.connections[node]
            let decision = Connection.State.accept(existing: existing?.phase, localName: identity.name, remoteName: name)
            switch decision {
            case .refuse:
                return (.nok, nil, 0)
            case .joinSimultaneous:
                let id = existing!.attemptStarted()
                return (.okSimultaneous, existing, id)
            case .replaceOnceProven, .fresh:
                let c = Connection(node: node, router: self)
                let id = c.attemptStarted()
                // A replacement enters the table only once it is up (connectionUp swaps it in).
                if decision == .fresh { s.connections[node] = c }
                return (decision == .fresh ? .ok : .alive, c, id)
            }
        }
    }

    func connectionUp(_ conn: Connection, peer: PeerInfo) {
        let (replaced, global) = state.withLock { s -> (Connection?, Pid?) in
            let old = s.connections[conn.node]
            s.connections[conn.node] = conn
            return (old === conn ? nil : old, s.globalServer)
        }
        if let replaced {
            // The authenticated newcomer replaces a connection the peer has given up on:
            // everything across the old one sees noconnection, as after any loss.
            replaced.close(reason: "replaced by a new connection from \(peer.name)", down: .replaced)
            home.nodeDown(conn.node)
            failureDetector.connectionClosed(peer.name)
            emit(.nodeDown(peer.name, reason: .replaced))
            if let global, !(replaced.peer?.isHidden ?? true) { global.send(GlobalInternal.nodedown(peer.name)) }
        }
        emit(.nodeUp(peer.name))
        // Sent here, on the connection's event loop before it reads on: global sees the
        // nodeup before any message the new connection brings.
        if let global, !peer.isHidden { global.send(GlobalInternal.nodeup(peer.name, conn)) }
        failureDetector.connectionUp(peer.name, flags: peer.flags, router: self)
    }

    /// `conn` closed; `wasUp`: it had come up, so watchers saw its nodeup and now get nodedown.
    func connectionClosed(_ conn: Connection, wasUp: Bool, reason: NodeDownReason) {
        let (removed, global) = state.withLock { s -> (Bool, Pid?) in
            guard s.connections[conn.node] === conn else { return (false, nil) }
            s.connections[conn.node] = nil
            s.incomingNameMonitors = s.incomingNameMonitors.filter { $0.value.node !== conn.node }
            s.outgoingNameMonitors = s.outgoingNameMonitors.filter { $0.value.node !== conn.node }
            return (true, s.globalServer)
        }
        guard removed else { return }
        home.nodeDown(conn.node)
        failureDetector.connectionClosed(conn.node.name)
        if wasUp {
            emit(.nodeDown(conn.node.name, reason: reason))
            if let global, !(conn.peer?.isHidden ?? true) { global.send(GlobalInternal.nodedown(conn.node.name)) }
        }
    }

    /// Tells every `monitorNodes` watcher (in its form) and every event stream.
    func emit(_ event: ClusterEvent) {
        let (watchers, streams) = state.withLock { s in (s.nodeWatchers, Array(s.eventStreams.values)) }
        for (watch, count) in watchers {
            guard let message = watch.options.message(for: event) else { continue }
            for _ in 0..<count { watch.pid.send(message) }
        }
        for c in streams { c.yield(event) }
    }

    /// A new ``ClusterEvent`` stream, subscribed before this returns.
    func events() -> AsyncStream<ClusterEvent> {
        let (stream, continuation) = AsyncStream<ClusterEvent>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let id = state.withLock { s -> Int in
            s.nextStream += 1
            s.eventStreams[s.nextStream] = continuation
            return s.nextStream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.eventStreams.removeValue(forKey: id) }
        }
        return stream
    }

    /// Tells `server` (global_name_server) of visible nodes from now on, starting with
    /// those already up.
    func setGlobalServer(_ server: Pid?) {
        let up = state.withLock { s -> [(String, Connection)] in
            s.globalServer = server
            return s.connections.values.compactMap { c in
                guard c.phase == .up, let peer = c.peer, !peer.isHidden else { return nil }
                return (peer.name, c)
            }
        }
        if let server { for (n, c) in up { server.send(GlobalInternal.nodeup(n, c)) } }
    }

    /// `net_kernel:monitor_nodes(On, Options)`: on adds one subscription with these options;
    /// off removes those with the same options (as Erlang's, which match on the options).
    func monitorNodes(_ pid: Pid, _ on: Bool, options: MonitorNodesOptions = []) {
        let watch = NodeWatch(pid: pid, options: options)
        state.withLock { s in
            if on { s.nodeWatchers[watch, default: 0] += 1 } else { s.nodeWatchers[watch] = nil }
        }
    }

    func closeAll() {
        failureDetector.stop()
        let all = state.withLock { Array($0.connections.values) }
        for c in all { c.close(reason: "distribution stopped", down: .distributionStopped) }
        busyWait?.stop()
        let streams = state.withLock { s -> [AsyncStream<ClusterEvent>.Continuation] in
            defer { s.eventStreams = [:] }
            return Array(s.eventStreams.values)
        }
        for c in streams { c.finish() }
    }

    // MARK: RemoteRouter (local processes acting on remote ones)

    private func encode(_ message: any Sendable) -> Term? {
        do {
            return try MessageCodec.term(for: message)
        } catch {
            // A call whose request cannot cross fails at once (`badRequest`) rather than
            // leaving its caller to wait for the timeout; a plain message is dropped, as a
            // send never fails.
            if let call = message as? Gen.CallMessage {
                Gen.reply(call.from, Gen.Rejected(reason: "the request cannot go to another node: \(error)"))
                return nil
            }
            let type = "\(Swift.type(of: message))"
            let first = state.withLock { $0.warnedTypes.insert(type).inserted }
            if first { log.warning("dropped a message to another node: \(error)") }
            return nil
        }
    }

    func send(_ message: any Sendable, to pid: Pid, from: Pid?) {
        guard let node = peerNode(of: pid), let c = connection(to: node) else { return }
        send(message, to: pid, via: c)
    }

    /// As ``send(_:to:from:)``, the task first suspended while the connection is busy (the
    /// check is one relaxed load when it is not). A sender `from` that was killed while it
    /// waited sends nothing (a killed process's later effects are discarded).
    func sendSuspending(_ message: any Sendable, to pid: Pid, from: Pid?) async {
        guard let node = peerNode(of: pid), let c = connection(to: node) else { return }
        if c.busyHint.load(ordering: .relaxed) {
            await c.suspendWhileBusy()
            if let from, from.holdsProcess, !from.isAlive { return }
        }
        send(message, to: pid, via: c)
    }

    private func send(_ message: any Sendable, to pid: Pid, via c: Connection) {
        guard let term = encode(message) else { return }
        if let token = traceToken(of: message, to: c) {
            // SEND_TT: a call's trace context, or the token a call came with going back with
            // its reply, in the token slot.
            c.send(control: .tuple([.integer(Control.sendTT), .atom(""), .pid(pid), token]), payload: term, isMessage: true)
            return
        }
        c.send(term, to: pid)
    }

    func send(_ message: any Sendable, toName name: String, on node: Node, from: Pid) {
        guard let c = connection(to: node) else { return }
        send(message, toName: name, via: c, from: from)
    }

    /// REG_SEND over this connection only: nothing if it has closed, even when a newer one
    /// to the same node is up (global's volatile sends, which speak of the connection they
    /// knew).
    func send(_ message: any Sendable, toName name: String, via c: Connection, from: Pid) {
        guard let term = encode(message) else { return }
        if let token = traceToken(of: message, to: c) {
            c.send(control: .tuple([.integer(Control.regSendTT), .pid(from), .atom(""), .atom(Atom(name)), token]), payload: term, isMessage: true)
            return
        }
        c.send(control: .tuple([.integer(Control.regSend), .pid(from), .atom(""), .atom(Atom(name))]), payload: term, isMessage: true)
    }

    /// The sequential-trace token a message to another node goes with, if any:
    /// - a call that carries a trace context (``Gen/propagatesContext``), to a peer that
    ///   takes labels of any term (DFLAG_BIG_SEQTRACE_LABELS; OTP sends a label that is not a
    ///   small integer to no other). While the connection is still being set up the peer's
    ///   flags are not known yet: the token goes (every OTP since 21 sets the flag, and
    ///   Parley does);
    /// - the reply to a call that came with a token: that token, stepped.
    private func traceToken(of message: any Sendable, to c: Connection) -> Term? {
        // Metadata comparisons first: a failing `as?` cast is slow, and this is every message.
        let type = ObjectIdentifier(Swift.type(of: message))
        if type == ObjectIdentifier(Gen.CallMessage.self) {
            guard let call = message as? Gen.CallMessage, let context = call.context,
                  c.peer?.flags.contains(.bigSeqTraceLabels) ?? true else { return nil }
            return MessageCodec.traceToken(context, from: call.from.pid)
        }
        if type == ObjectIdentifier(Gen.ReplyMessage.self), replyTokenCount.load(ordering: .relaxed) > 0,
           let reply = message as? Gen.ReplyMessage {
            return takeReplyToken(reply.tag)
        }
        return nil
    }

    /// Notes the token a call from another node came with, for its reply.
    private func keepReplyToken(_ token: Term, for call: Gen.CallMessage, server: Pid) {
        guard let reply = MessageCodec.replyToken(token, server: server) else { return }
        state.withLock { s in
            if s.replyTokens.updateValue(reply, forKey: call.from.tag) == nil { s.replyTokenOrder.append(call.from.tag) }
            while s.replyTokens.count > Self.replyTokenLimit, !s.replyTokenOrder.isEmpty {
                s.replyTokens.removeValue(forKey: s.replyTokenOrder.removeFirst())
            }
            if s.replyTokenOrder.count > 2 * Self.replyTokenLimit { s.replyTokenOrder.removeAll { s.replyTokens[$0] == nil } }
            replyTokenCount.store(s.replyTokens.count, ordering: .relaxed)
        }
    }

    private func takeReplyToken(_ tag: Reference) -> Term? {
        state.withLock { s in
            guard let token = s.replyTokens.removeValue(forKey: tag) else { return nil }
            replyTokenCount.store(s.replyTokens.count, ordering: .relaxed)
            return token
        }
    }

    func link(from: Pid, to: Pid) -> Bool {
        guard let node = peerNode(of: to), let c = connection(to: node) else { return false }
        c.send(control: .tuple([.integer(Control.link), .pid(from), .pid(to)]))
        return true
    }

    func unlink(from: Pid, to: Pid) {
        guard let node = peerNode(of: to), let c = connection(to: node, dial: false) else { return }
        let id = unlinkIds.wrappingAdd(1, ordering: .relaxed).oldValue
        c.send(control: .tuple([.integer(Control.unlinkId), .integer(Int(id)), .pid(from), .pid(to)]))
    }

    func exit(from: Pid, to: Pid, reason: ExitReason, isLink: Bool) {
        guard let node = peerNode(of: to), let c = connection(to: node, dial: !isLink) else { return }
        let tag = isLink ? Control.exit : Control.exit2
        c.send(control: .tuple([.integer(tag), .pid(from), .pid(to), MessageCodec.reasonTerm(reason)]))
    }

    func monitor(watcher: Pid, target: Pid, ref: Reference) -> Bool {
        guard let node = peerNode(of: target), let c = connection(to: node) else { return false }
        c.send(control: .tuple([.integer(Control.monitorP), .pid(watcher), .pid(target), .reference(ref)]))
        return true
    }

    func monitor(watcher: Pid, name: String, on node: Node, ref: Reference) -> Bool {
        guard let c = connection(to: node) else { return false }
        state.withLock { $0.outgoingNameMonitors[ref] = (name, node) }
        c.send(control: .tuple([.integer(Control.monitorP), .pid(watcher), .atom(Atom(name)), .reference(ref)]))
        return true
    }

    func demonitor(watcher: Pid, target: Pid, ref: Reference) {
        guard let node = peerNode(of: target), let c = connection(to: node, dial: false) else { return }
        let name = state.withLock { $0.outgoingNameMonitors.removeValue(forKey: ref)?.name }
        let to: Term = name.map { .atom(Atom($0)) } ?? .pid(target)
        c.send(control: .tuple([.integer(Control.demonitorP), .pid(watcher), to, .reference(ref)]))
    }

    func monitorFired(ref: Reference, watcher: Pid, target: Pid, reason: ExitReason) {
        guard let node = peerNode(of: watcher), let c = connection(to: node, dial: false) else { return }
        let name = state.withLock { $0.incomingNameMonitors.removeValue(forKey: ref)?.name }
        let from: Term = name.map { .atom(Atom($0)) } ?? .pid(target)
        c.send(control: .tuple([.integer(Control.monitorPExit), from, .pid(watcher), .reference(ref), MessageCodec.reasonTerm(reason)]))
    }

    // MARK: Control messages from other nodes (on the connection's event loop)

    /// The Swift message for a payload. A call with a trace token carries its trace context
    /// when this node propagates contexts (``Gen/propagatesContext``), and its reply will go
    /// back with the token, as a BEAM server's does (the caller keeps its token: an Erlang
    /// process that receives a message without one drops its own).
    private func message(_ payload: Term, to: Pid, token: Term?) -> (any Sendable)? {
        guard let message = MessageCodec.incoming(from: payload, to: to) else { return nil }
        guard let token, let call = message as? Gen.CallMessage else { return message }
        keepReplyToken(token, for: call, server: to)
        guard Gen.propagatesContext, let context = MessageCodec.context(fromTraceToken: token) else { return call }
        return Gen.CallMessage(from: call.from, request: call.request, context: context)
    }

    func handle(control: Term, payload: Term?, from conn: Connection, inbox: Inbox) {
        guard case .tuple(let c) = control, let first = c.first, case .integer(let op) = first else {
            log.warning("ignored a control message of unknown shape from \(conn.node): \(Self.summary(control))")
            return
        }
        switch (op, c.count) {
        case (Control.send, 3), (Control.sendTT, 4):
            guard case .pid(let to) = c[2], let payload else { return malformed(control, conn) }
            // Batched per process until the end of this read (or the next signal, so that a
            // message and a later exit signal to the same process stay in order).
            if to.holdsProcess, let m = message(payload, to: to, token: c.count == 4 ? c[3] : nil) { inbox.add(m, to: to) }
            return
        case (Control.regSend, 4), (Control.regSendTT, 5):
            guard case .atom(let name) = c[3], let payload else { return malformed(control, conn) }
            // Unknown names are dropped, as the BEAM drops them (OTP nodes talk to rex,
            // global_name_server and pg scopes as soon as they connect).
            if name.name == FailureDetector.name {
                failureDetector.received(payload, from: conn, router: self)
                return
            }
            if let to = home.whereis(name.name), let m = message(payload, to: to, token: c.count == 5 ? c[4] : nil) { inbox.add(m, to: to) }
            return
        default:
            break
        }
        inbox.flush()
        switch (op, c.count) {
        case (Control.link, 3):
            guard case .pid(let from) = c[1], case .pid(let to) = c[2] else { return malformed(control, conn) }
            if !Remote.linkArrived(from: from, to: to) {
                // Linking to a dead process: the link fires at once with noproc.
                conn.send(control: .tuple([.integer(Control.exit), .pid(to), .pid(from), .atom("noproc")]))
            }
        case (Control.unlinkId, 4):
            guard case .pid(let from) = c[2], case .pid(let to) = c[3] else { return malformed(control, conn) }
            Remote.unlinkArrived(from: from, to: to)
            conn.send(control: .tuple([.integer(Control.unlinkIdAck), c[1], .pid(to), .pid(from)]))
        case (Control.unlink, 3):
            guard case .pid(let from) = c[1], case .pid(let to) = c[2] else { return malformed(control, conn) }
            Remote.unlinkArrived(from: from, to: to)
        case (Control.unlinkIdAck, 4), (Control.groupLeader, 3):
            break
        case (Control.exit, 4), (Control.exit2, 4), (Control.exitTT, 5), (Control.exit2TT, 5):
            guard case .pid(let from) = c[1], case .pid(let to) = c[2] else { return malformed(control, conn) }
            let reason = MessageCodec.reason(c[c.count - 1])
            Remote.exitArrived(from: from, to: to, reason: reason, isLink: op == Control.exit || op == Control.exitTT)
        case (Control.monitorP, 4):
            guard case .pid(let watcher) = c[1], case .reference(let ref) = c[3] else { return malformed(control, conn) }
            switch c[2] {
            case .pid(let target):
                if !Remote.monitorArrived(watcher: watcher, target: target, ref: ref) {
                    conn.send(control: .tuple([.integer(Control.monitorPExit), .pid(target), .pid(watcher), .reference(ref), .atom("noproc")]))
                }
            case .atom(let name):
                if let target = home.whereis(name.name), Remote.monitorArrived(watcher: watcher, target: target, ref: ref) {
                    state.withLock { $0.incomingNameMonitors[ref] = (name.name, conn.node) }
                } else {
                    conn.send(control: .tuple([.integer(Control.monitorPExit), .atom(name), .pid(watcher), .reference(ref), .atom("noproc")]))
                }
            default:
                malformed(control, conn)
            }
        case (Control.demonitorP, 4):
            guard case .reference(let ref) = c[3] else { return malformed(control, conn) }
            switch c[2] {
            case .pid(let target): Remote.demonitorArrived(target: target, ref: ref)
            case .atom(let name):
                state.withLock { _ = $0.incomingNameMonitors.removeValue(forKey: ref) }
                if let target = home.whereis(name.name) { Remote.demonitorArrived(target: target, ref: ref) }
            default: malformed(control, conn)
            }
        case (Control.monitorPExit, 5):
            guard case .pid(let watcher) = c[2], case .reference(let ref) = c[3] else { return malformed(control, conn) }
            let target: Pid
            switch c[1] {
            case .pid(let p): target = p
            case .atom: target = Pid(node: conn.node, id: 0, serial: 0, creation: 0)
            default: return malformed(control, conn)
            }
            state.withLock { _ = $0.outgoingNameMonitors.removeValue(forKey: ref) }
            Remote.monitorExitArrived(watcher: watcher, target: target, ref: ref, reason: MessageCodec.reason(c[4]))
        default:
            log.debug("ignored control message \(op) from \(conn.node)")
        }
    }

    /// A peer's term for a log line: a few levels, a few elements, a few hundred characters.
    /// Never `description`: a peer picks how deep its terms are (2000 levels pass the decoder,
    /// and printing them recursively overflowed an event loop thread's stack under TSan) and
    /// how big (a control message may be a 128 MB binary).
    static func summary(_ term: Term, depth: Int = 6) -> String {
        func items(_ ts: [Term]) -> String {
            ts.prefix(8).map { summary($0, depth: depth - 1) }.joined(separator: ",") + (ts.count > 8 ? ",..." : "")
        }
        switch term {
        case .tuple, .list, .improperList, .map: if depth <= 0 { return "..." }
        default: break
        }
        let text: String
        switch term {
        case .tuple(let t): text = "{" + items(t) + "}"
        case .list(let l): text = "[" + items(l) + "]"
        case .improperList(let l, let tail): text = "[" + items(l) + "|" + summary(tail, depth: depth - 1) + "]"
        case .map(let m): text = "#{\(m.count) entries}"
        case .binary(let b) where b.count > 64: text = "<<\(b.count) bytes>>"
        case .bitBinary(let b, _) where b.count > 64: text = "<<\(b.count) bytes>>"
        default: text = term.description
        }
        return text.count > 300 ? String(text.prefix(300)) + "..." : text
    }

    private func malformed(_ control: Term, _ conn: Connection) {
        log.warning("ignored a malformed control message from \(conn.node): \(Self.summary(control))")
    }
}
