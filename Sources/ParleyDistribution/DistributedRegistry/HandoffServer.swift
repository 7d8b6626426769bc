import Logging
@_spi(Distribution) import Parley
@_spi(Handoff) import ParleyOTP

/// What a worker of a ``DistributedRegistry`` answers when its name moves to another node
/// (Swarm's reply to `{:swarm, :begin_handoff}`).
public enum Handoff<State: Sendable>: Sendable {
    /// Start afresh on the new node (no state travels).
    case restart
    /// Hand `state` over: the new process gets it in ``HandoffServer/endHandoff(_:_:)``
    /// before any other message.
    case resume(State)
    /// Stay where it is: the name does not move (until the next topology change asks again).
    case ignore
}

/// The state type of a ``HandoffServer`` that hands nothing over.
public struct NoHandoffState: Codable, Sendable, Equatable {
    public init() {}
}

/// A GenServer that a ``DistributedRegistry`` places, moves and restarts across the
/// cluster (Swarm's worker contract, in callbacks instead of messages).
///
/// - ``beginHandoff(_:)`` runs when its name moves to another node (a node joined or left):
///   `.resume(state)` moves the state, `.restart` starts afresh there, `.ignore` stays.
/// - ``endHandoff(_:_:)`` runs in the new process right after `initialize`, before any
///   message: with the handed-over state after a move, or with the last
///   ``WorkerContext/checkpoint(_:_:)`` after its node died.
/// - ``resolveConflict(_:_:)`` runs in the process that keeps the name when a healed
///   partition finds two (the other one's `beginHandoff` state, if it gave `.resume`).
/// - ``handoffCancelled(_:)`` runs when a move it answered did not happen: it keeps the name.
///
/// Messages sent to the name while it moves are held and reach the new process in the
/// order they were sent: none is lost.
///
/// ```swift
/// struct Counter: HandoffServer {
///     typealias Call = Term
///     typealias Reply = Term
///     var count = 0
///     mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
///         count += 1
///         return .reply(.integer(count))
///     }
///     func beginHandoff(_ me: CallbackProcess) -> Handoff<Int> { .resume(count) }
///     mutating func endHandoff(_ state: Int, _ me: CallbackProcess) { count = state }
///     mutating func resolveConflict(_ other: Int, _ me: CallbackProcess) { count += other }
/// }
/// ```
public protocol HandoffServer: GenServer {
    /// What travels on a move (a `Codable` value: it crosses nodes as a term).
    associatedtype HandoffState: Codable & Sendable = NoHandoffState

    /// The name is moving to another node: what to do. The default is `.restart`.
    mutating func beginHandoff(_ me: CallbackProcess) -> Handoff<HandoffState>
    /// This process took over the name with `state`; runs before any message.
    mutating func endHandoff(_ state: HandoffState, _ me: CallbackProcess)
    /// This process keeps the name after a partition healed; `other` is the state of the
    /// process that gave it up. The default ignores it.
    mutating func resolveConflict(_ other: HandoffState, _ me: CallbackProcess)
    /// The move that ``beginHandoff(_:)`` answered did not happen (the new owner could not
    /// take the name, or it timed out): this process keeps the name and serves again,
    /// the messages that waited first. The default does nothing.
    mutating func handoffCancelled(_ me: CallbackProcess)
}

extension HandoffServer {
    public mutating func beginHandoff(_ me: CallbackProcess) -> Handoff<HandoffState> { .restart }
    public mutating func endHandoff(_ state: HandoffState, _ me: CallbackProcess) {}
    public mutating func resolveConflict(_ other: HandoffState, _ me: CallbackProcess) {}
    public mutating func handoffCancelled(_ me: CallbackProcess) {}
}

/// What a worker gets at start: its name and a way to checkpoint its state.
public struct WorkerContext: Sendable {
    /// The registered name.
    public let name: String
    /// The registry that placed it.
    public let registry: DistributedRegistry
    /// The arguments of the registration.
    public let arguments: Term

    /// Replicates `state` to the name's next owner (the member that restarts the name if
    /// this node dies), so that the name restarts there with it (in
    /// ``HandoffServer/endHandoff(_:_:)``) instead of afresh. Neither Swarm nor Horde has
    /// this. A later checkpoint replaces an earlier one; call it from the worker's own
    /// handlers. The registry server sends checkpoints at once when the node is quiet and
    /// at most every 10 ms under load, the latest per name and many in one message, so
    /// checkpointing on every message stays cheap; a sudden death loses only those not yet
    /// written to the wire. When the members change the last one goes to the new next
    /// owner. ``DistributedRegistry/lastCheckpoint(of:)`` reads what a restart would use.
    ///
    /// ```swift
    /// mutating func handleCast(_ amount: Int, _ me: CallbackProcess) throws -> HandleResult {
    ///     balance += amount
    ///     try context.checkpoint(balance, me)
    ///     return .noreply
    /// }
    /// ```
    /// - Throws: ``TermEncodingError`` if the state has no term form.
    public func checkpoint<State: Encodable>(_ state: State, _ me: some ProcessContext) throws {
        let term = try TermEncoder().encode(state)
        guard let shared = registry.state else { return }
        let first = shared.pendingCheckpoints.withLock { p in
            defer { p[name] = (me.pid, term) }
            return p.isEmpty
        }
        if first { registry.node.whereis(registry.name)?.send(RegistryServer.CheckpointsPending()) }
    }
}

// MARK: - The worker's process

/// Orders from the registry server of the worker's own node.
enum HandoffOrder: Sendable {
    /// Run `beginHandoff`, answer the server with a ``HandoffAnswer``, and hold every later
    /// message until told where it goes.
    case begin(tag: Int)
    /// The new holder runs: forward what was held, and everything after it.
    case forward(to: Pid)
    /// The move failed: serve again, with what was held first.
    case cancel
    /// Every member now knows the new holder: tell it the old one is drained, keep
    /// forwarding what still arrives for a while, then exit.
    case finish
    /// (New holder) the old holder's node is gone: stop waiting for its drained marker.
    case release
    /// The name went to `winner` (a healed partition): give it this process's state and
    /// its messages, then exit.
    case evict(winner: Pid)
    /// (Old holder, its node leaving) forward what is queued, then a marker the successor
    /// answers to `replyTo` with `{flushed, tag}`.
    case flush(tag: Int, replyTo: Pid)
}

/// A worker's answer to ``HandoffOrder/begin(tag:)``.
struct HandoffAnswer: Sendable {
    enum Decision: Sendable {
        case restart
        case resume(Term)
        case ignore
        case failed(String)
    }
    let tag: Int
    let pid: Pid
    let decision: Decision
}

/// A message forwarded between a name's old and new holders on one node.
struct HandoffForward: Sendable {
    let message: any Sendable
}

/// The worker-to-worker terms: `{'$parley_handoff', forward, Msg}`,
/// `{'$parley_handoff', drained}`, `{'$parley_handoff', resolve, State}`.
enum HandoffWire {
    static let tag: Atom = "$parley_handoff"
    static func forward(_ m: Term) -> Term { .tuple([.atom(tag), .atom("forward"), m]) }
    static let drained: Term = .tuple([.atom(tag), .atom("drained")])
    static func resolve(_ s: Term) -> Term { .tuple([.atom(tag), .atom("resolve"), s]) }
    /// Follows what an old holder forwarded, to its successor, which answers
    /// `{flushed, Tag}` to `replyTo`: everything before the marker has arrived.
    static func flush(_ t: Int, replyTo: Pid) -> Term { .tuple([.atom(tag), .atom("flush"), .integer(t), .pid(replyTo)]) }
    static func flushed(_ t: Int) -> Term { .tuple([.atom("flushed"), .integer(t)]) }

    enum Kind { case forward(Term), drained, resolve(Term), flush(Int, Pid) }
    static func parse(_ t: Term) -> Kind? {
        guard case .tuple(let items) = t, items.count >= 2, items[0] == .atom(tag) else { return nil }
        switch (items[1].atomName, items.count) {
        case ("forward", 3): return .forward(items[2])
        case ("drained", 2): return .drained
        case ("resolve", 3): return .resolve(items[2])
        case ("flush", 4):
            guard let t = items[2].intValue, case .pid(let to) = items[3] else { return nil }
            return .flush(t, to)
        default: return nil
        }
    }
}

/// A value handed from the starter to the process it starts.
struct Owned<Value>: @unchecked Sendable {
    // @unchecked Sendable: made from a value its maker gives up (the server a start
    // function returned, the state `initialize` built); only the process uses it after.
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// The process of a ``HandoffServer``: the GenServer, plus the moves.
struct HandoffProcess<Server: HandoffServer> {
    enum Mode {
        /// Serving messages.
        case serving
        /// A new holder waiting for the old one's drained marker: forwarded messages are
        /// served, everything else waits.
        case held
        /// An old holder asked for handoff: everything waits for a target.
        case holding
        /// An old holder whose successor runs: everything goes to it.
        case forwarding(Pid)
    }

    var core: GenServerCore<Server>
    let name: String
    let registry: Pid?
    var mode: Mode
    var stash: [any Sendable] = []
    var log: Logger { Logger(label: "parley.registry") }

    /// How long an old holder keeps forwarding after every member knows its successor (a
    /// sender that looked the name up just before may still send to it): the default
    /// call timeout, so a call forwarded to the successor is answered before the old
    /// holder's exit could reach the caller's monitor.
    static var linger: Duration { .seconds(5) }

    static func start(_ server: consuming Server, name: String, registry: Pid?, node: LocalNode,
                      handed: Term?, held: Bool) throws(StartError) -> Pid {
        let options = SpawnOptions(label: "worker \(name)", node: node)
        let initial = Owned(HandoffProcess(core: GenServerCore(server), name: name, registry: registry, mode: held ? .held : .serving))
        return try Process.start(options, state: Owned<HandoffProcess>.self, initialize: { me in
            var p = initial.value
            guard try p.core.initialize(me) else { return nil }
            if let handed {
                let state = try TermDecoder().decode(Server.HandoffState.self, from: handed)
                p.core.server.endHandoff(state, me)
            }
            return Owned(p)
        }, handler: { p, m, me in p.value.handle(m, me) })
    }

    mutating func handle(_ m: any Sendable, _ me: CallbackProcess) -> Next {
        if m is Lingered { return .stop(.normal) }
        if let order = m as? HandoffOrder { return handle(order, me) }
        if let t = m as? Term, let wire = HandoffWire.parse(t) {
            switch wire {
            case .forward(let inner):
                return received(MessageCodec.message(from: inner, to: me.pid), forwarded: true, me)
            case .drained:
                if case .held = mode { return serve(me) }
                return .continue
            case .flush(let tag, let replyTo):
                flushMarker(tag, replyTo: replyTo, me)
                return .continue
            case .resolve(let state):
                switch mode {
                case .forwarding(let target):
                    forward(t, to: target, me, wrap: false)
                    return .continue
                case .holding:
                    // Its state is on its way to a successor: the merge goes with the rest.
                    stash.append(t)
                    return .continue
                case .serving, .held:
                    break
                }
                if let other = try? TermDecoder().decode(Server.HandoffState.self, from: state) {
                    core.server.resolveConflict(other, me)
                } else {
                    log.warning("worker \(name) could not decode a conflict's state: \(DistributionRouter.summary(state))")
                }
                return .continue
            }
        }
        if let f = m as? HandoffForward { return received(f.message, forwarded: true, me) }
        return received(m, forwarded: false, me)
    }

    mutating func received(_ m: any Sendable, forwarded: Bool, _ me: CallbackProcess) -> Next {
        switch mode {
        case .serving:
            return core.handle(m, me)
        case .held:
            if forwarded { return core.handle(m, me) }
            stash.append(m)
            return .continue
        case .holding:
            stash.append(m)
            return .continue
        case .forwarding(let target):
            forward(m, to: target, me)
            return .continue
        }
    }

    /// Serves what waited, in order, then whatever comes.
    mutating func serve(_ me: CallbackProcess) -> Next {
        mode = .serving
        let waiting = stash
        stash = []
        for m in waiting {
            if case .stop(let r) = handle(m, me) { return .stop(r) }
        }
        return .continue
    }

    mutating func handle(_ order: HandoffOrder, _ me: CallbackProcess) -> Next {
        switch order {
        case .begin(let tag):
            guard case .serving = mode else {
                registry?.send(HandoffAnswer(tag: tag, pid: me.pid, decision: .failed("not serving")))
                return .continue
            }
            let decision: HandoffAnswer.Decision
            switch core.server.beginHandoff(me) {
            case .ignore:
                decision = .ignore
            case .restart:
                decision = .restart
            case .resume(let state):
                do {
                    decision = .resume(try TermEncoder().encode(state))
                } catch {
                    decision = .failed("the handoff state has no term form: \(error)")
                }
            }
            switch decision {
            case .restart, .resume: mode = .holding
            case .ignore, .failed: break
            }
            registry?.send(HandoffAnswer(tag: tag, pid: me.pid, decision: decision))
            return .continue
        case .forward(let target):
            guard case .holding = mode else { return .continue }
            // The user's server is done here: terminate runs now, as Swarm's worker stops
            // on `{:swarm, :die}`.
            _ = core.terminate(.shutdown, me)
            mode = .forwarding(target)
            let waiting = stash
            stash = []
            for m in waiting { forward(m, to: target, me) }
            return .continue
        case .cancel:
            guard case .holding = mode else { return .continue }
            core.server.handoffCancelled(me)
            return serve(me)
        case .finish:
            guard case .forwarding(let target) = mode else { return .continue }
            drained(target, me)
            _ = me.sendAfter(Lingered(), after: Self.linger)
            return .continue
        case .release:
            if case .held = mode { return serve(me) }
            return .continue
        case .flush(let tag, let replyTo):
            flushMarker(tag, replyTo: replyTo, me)
            return .continue
        case .evict(let winner):
            switch mode {
            case .forwarding:
                return .continue
            case .serving, .held, .holding:
                if case .resume(let state) = core.server.beginHandoff(me), let term = try? TermEncoder().encode(state) {
                    forward(HandoffWire.resolve(term), to: winner, me, wrap: false)
                }
                _ = core.terminate(.shutdownWith(Term.atom("name_conflict")), me)
                mode = .forwarding(winner)
                let waiting = stash
                stash = []
                for m in waiting { forward(m, to: winner, me) }
                drained(winner, me)
                _ = me.sendAfter(Lingered(), after: Self.linger)
                return .continue
            }
        }
    }

    struct Lingered: Sendable {}

    /// A leave's flush marker goes along the chain of successors, behind what was
    /// forwarded; the last one answers: everything forwarded before the marker is there.
    func flushMarker(_ tag: Int, replyTo: Pid, _ me: CallbackProcess) {
        if case .forwarding(let target) = mode {
            forward(HandoffWire.flush(tag, replyTo: replyTo), to: target, me, wrap: false)
        } else {
            me.send(HandoffWire.flushed(tag), to: replyTo)
        }
    }

    func drained(_ target: Pid, _ me: CallbackProcess) {
        forward(HandoffWire.drained, to: target, me, wrap: false)
    }

    /// Sends `m` to the successor: as a Swift value on this node, as a term to another.
    /// A conflict's state goes as it is, for the successor to merge.
    func forward(_ m: any Sendable, to target: Pid, _ me: CallbackProcess, wrap: Bool = true) {
        if !wrap { me.send(m, to: target); return }
        if let t = m as? Term, case .resolve? = HandoffWire.parse(t) { me.send(t, to: target); return }
        if target.holdsProcess { me.send(HandoffForward(message: m), to: target); return }
        do {
            me.send(HandoffWire.forward(try MessageCodec.term(for: m)), to: target)
        } catch {
            log.warning("worker \(name) dropped a message it could not forward to \(target): \(error)")
        }
    }
}

