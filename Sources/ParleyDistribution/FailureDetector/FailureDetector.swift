import NIOCore
@_spi(Distribution) import Parley

/// The failure detector between Parley nodes (``FailureDetectorState`` decides; this runs
/// it). It probes on a timer of the distribution's event loop rather than as a process, so
/// processes that keep the schedulers busy do not delay it, and it answers probes on the
/// I/O thread that reads them.
///
/// The wire: messages to the registered name `parley_fd` (REG_SEND from `net_kernel`):
/// `ping` (answered `ack`), `ack`, `{ping_req, Target}` (probe Target for me) and
/// `{alive, Target}` (Target was heard from). An Erlang node has no `parley_fd` and drops
/// them, as it drops any message to a name nobody holds, so it is never monitored.
final class FailureDetector: Sendable {
    static let name = "parley_fd"

    /// The state, and the byte counters seen at the last round: per node, the connection
    /// and its `bytesIn` (another connection, or more bytes, means something was heard).
    private struct Driver {
        var machine: FailureDetectorState
        var seen: [String: (connection: ObjectIdentifier, bytes: Int)] = [:]
        /// Connected nodes that have not answered yet: when to ask again, and how often it
        /// was asked (a probe sent while the peer was still starting is not answered; an
        /// Erlang node never answers, so asking stops after a few tries).
        var asking: [String: (next: UInt64, tries: Int)] = [:]
    }
    /// How many times a connected node is asked whether it speaks the protocol.
    static let discoveryTries = 6
    private let state: Locked<Driver>
    private let task = Locked<RepeatedTask?>(nil)
    let settings: FailureDetectorState.Settings

    init(settings: Distribution.FailureDetection) {
        self.settings = FailureDetectorState.Settings(probeInterval: settings.probeInterval, indirectAfter: settings.indirectAfter,
                                                      suspectAfter: settings.suspectAfter, downAfter: settings.downAfter,
                                                      indirectProbes: settings.indirectProbes)
        state = Locked(Driver(machine: FailureDetectorState(settings: self.settings)))
    }

    /// Starts the probe rounds on one of `router`'s event loops.
    func start(_ router: DistributionRouter) {
        let period = TimeAmount.nanoseconds(Int64(settings.probeInterval.components.seconds) * 1_000_000_000
            + Int64(settings.probeInterval.components.attoseconds / 1_000_000_000))
        // Strong: stop() cancels the task, which breaks the cycle.
        let t = router.group.next().scheduleRepeatedTask(initialDelay: period, delay: period) { _ in self.round(router) }
        task.withLock { $0 = t }
    }

    func stop() { task.withLock { t in t?.cancel(); t = nil } }

    /// Which Parley nodes it currently suspects.
    var suspects: [String] {
        state.withLock { s in s.machine.peers.filter { $0.value.health == .suspect }.map(\.key).sorted() }
    }

    /// Whether `node` is monitored (it answers the protocol).
    func monitors(_ node: String) -> Bool { state.withLock { $0.machine.peers[node] != nil } }

    // MARK: Events from the router

    /// A connection came up: ask whether it speaks the protocol (again after 0.25, 0.5, 1,
    /// 2 and 4 s if it has not answered).
    func connectionUp(_ node: String, flags: DistributionFlags, router: DistributionRouter) {
        state.withLock { s in
            // A Parley peer says so in its handshake flags: monitored from now on.
            if flags.contains(.parleyFailureDetector) { s.machine.peerSpeaks(node, now: MonotonicClock.now) }
            if s.machine.peers[node] == nil { s.asking[node] = (MonotonicClock.now + 250_000_000, 1) }
        }
        send(.atom("ping"), to: node, router: router)
    }

    func connectionClosed(_ node: String) {
        state.withLock { s in
            s.machine.peerGone(node)
            s.seen[node] = nil
            s.asking[node] = nil
        }
    }

    /// A message to `parley_fd` from `conn`'s node, on the connection's event loop.
    func received(_ payload: Term, from conn: Connection, router: DistributionRouter) {
        let node = conn.node.name
        let now = MonotonicClock.now
        var answer = false
        let actions = state.withLock { s -> [FailureDetectorState.Action] in
            s.machine.peerSpeaks(node, now: now)
            s.asking[node] = nil
            switch payload {
            case .atom(let a) where a.name == "ping":
                answer = true
                return []
            case .tuple(let t) where t.count == 2 && t[0] == .atom("ping_req"):
                guard case .atom(let target) = t[1] else { return [] }
                return s.machine.pingRequested(by: node, target: target.name, now: now)
            case .tuple(let t) where t.count == 2 && t[0] == .atom("alive"):
                guard case .atom(let target) = t[1] else { return [] }
                return s.machine.heardIndirectly(target.name, now: now)
            default:
                return []  // ack, or something newer: hearing it is what counts
            }
        }
        if answer, let control = Self.control(router) { conn.send(control: control, payload: .atom("ack")) }
        for a in actions { perform(a, router: router) }
    }

    // MARK: The rounds

    private func round(_ router: DistributionRouter) {
        let now = MonotonicClock.now
        let watched = state.withLock { Array($0.machine.peers.keys) }
        var counters: [(String, ObjectIdentifier, Int)] = []
        for node in watched {
            if let c = router.connection(to: Node.named(node), dial: false) {
                counters.append((node, ObjectIdentifier(c), c.bytesIn.load(ordering: .relaxed)))
            }
        }
        var ask: [String] = []
        let actions = state.withLock { s -> [FailureDetectorState.Action] in
            for (node, a) in s.asking where a.next <= now {
                ask.append(node)
                s.asking[node] = a.tries + 1 >= Self.discoveryTries ? nil : (now + (250_000_000 << UInt64(a.tries)), a.tries + 1)
            }
            var heard = Set<String>()
            for (node, id, bytes) in counters {
                if let last = s.seen[node], last.connection == id, last.bytes == bytes { continue }
                if s.seen[node] != nil { heard.insert(node) }
                s.seen[node] = (id, bytes)
            }
            return s.machine.tick(now: now, heard: heard)
        }
        for node in ask { send(.atom("ping"), to: node, router: router) }
        for a in actions { perform(a, router: router) }
    }

    private func perform(_ action: FailureDetectorState.Action, router: DistributionRouter) {
        switch action {
        case .ping(let node):
            send(.atom("ping"), to: node, router: router)
        case .pingRequest(let via, let target):
            send(.tuple([.atom("ping_req"), .atom(Atom(target))]), to: via, router: router)
        case .alive(let to, let target):
            send(.tuple([.atom("alive"), .atom(Atom(target))]), to: to, router: router)
        case .suspect(let node, let silent):
            router.log.warning("failure detector: \(node) silent for \(silent.milliseconds) ms: suspect")
            router.emit(.suspect(node, silentFor: silent))
        case .reachable(let node):
            router.log.info("failure detector: \(node) answers again")
            router.emit(.reachable(node))
        case .down(let node, let silent):
            state.withLock { $0.seen[node] = nil }
            router.log.warning("failure detector: no answer from \(node) for \(silent.milliseconds) ms: disconnecting")
            router.connection(to: Node.named(node), dial: false)?.close(reason: "no answer for \(silent.milliseconds) ms", down: .unresponsive(silentFor: silent))
        }
    }

    /// REG_SEND `{6, From, '', parley_fd}`, from this node's `net_kernel`.
    /// Nil while net_kernel is not running (distribution starting or stopping).
    private static func control(_ router: DistributionRouter) -> Term? {
        guard let from = router.home.whereis(NetKernel.name) else { return nil }
        return .tuple([.integer(Control.regSend), .pid(from), .atom(""), .atom(Atom(name))])
    }

    private func send(_ payload: Term, to node: String, router: DistributionRouter) {
        guard let c = router.connection(to: Node.named(node), dial: false), c.phase == .up,
              let control = Self.control(router) else { return }
        c.send(control: control, payload: payload)
    }
}
