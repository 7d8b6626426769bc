/// The failure detector's decisions, as a state machine that returns actions (no clock, no
/// I/O: the driver, ``FailureDetector``, passes the time and performs the actions).
///
/// SWIM's probe with Lifeguard's local health (Das, Gupta, Motivala 2002; Dadgar et al.
/// 2018), over the distribution connections that already exist:
/// - every `probeInterval` each monitored peer is pinged; anything read from it (an
///   answer, a message, a tick) counts as hearing from it;
/// - a peer silent for `indirectAfter` is probed through up to `indirectProbes` other
///   peers too (`ping_req`): one of them hearing from it clears it, so one bad link does
///   not condemn a node the others reach;
/// - silent for `suspectAfter`: **suspect**; heard again: **reachable**;
/// - silent for `downAfter`: **down** (the driver closes the connection);
/// - when this node itself ran late (a tick that came more than a whole interval after
///   the last: a stopped, starved or swapping process), nobody is blamed for the time it
///   lost: every peer's silence starts again from the late tick's view.
///
/// Invariants:
/// 1. A peer is reported down at most once, and only after `downAfter` of silence as this
///    node could observe it (the time it was itself late excluded).
/// 2. Suspect and reachable alternate: no second suspect without a reachable between.
/// 3. Only peers that speak the protocol are monitored (``peerSpeaks(_:now:)``): an Erlang
///    node never answers, and is never suspected.
struct FailureDetectorState {
    /// Timings, all measured from the last thing heard from a peer.
    struct Settings: Sendable, Hashable {
        var probeInterval: Duration
        var indirectAfter: Duration
        var suspectAfter: Duration
        var downAfter: Duration
        var indirectProbes: Int
    }

    enum Health: Equatable { case up, suspect }

    struct Peer {
        var lastHeard: UInt64
        var health: Health = .up
        /// When we last asked others about it (0: not during this silence).
        var askedAt: UInt64 = 0
    }

    enum Action: Equatable {
        /// `ping` to the node's detector.
        case ping(String)
        /// `{ping_req, Target}` to `via`: probe `target` for us.
        case pingRequest(via: String, target: String)
        /// `{alive, Target}` to `to`: the target it asked about was heard from.
        case alive(to: String, target: String)
        case suspect(String, silentFor: Duration)
        case reachable(String)
        case down(String, silentFor: Duration)
    }

    let settings: Settings
    private(set) var peers: [String: Peer] = [:]
    /// Probes other nodes asked us for: target → (who asked, until when).
    private(set) var relays: [String: [(node: String, until: UInt64)]] = [:]
    private var lastTick: UInt64? = nil
    private var rotation = 0

    init(settings: Settings) { self.settings = settings }

    private static func ns(_ d: Duration) -> UInt64 {
        UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
    }
    private static func duration(_ ns: UInt64) -> Duration { .nanoseconds(Int64(ns)) }

    /// A message of the protocol came from `node`: it runs a detector (or at least answers),
    /// so it is monitored from now on. Returns true if it was new.
    @discardableResult
    mutating func peerSpeaks(_ node: String, now: UInt64) -> Bool {
        guard peers[node] == nil else { return false }
        peers[node] = Peer(lastHeard: now)
        return true
    }

    /// The connection with `node` is gone: no more probes, no verdicts.
    mutating func peerGone(_ node: String) {
        peers[node] = nil
        relays[node] = nil
        for (t, asks) in relays { relays[t] = asks.filter { $0.node != node } }
    }

    /// Another node tells us it heard from `target` (our `ping_req`).
    mutating func heardIndirectly(_ target: String, now: UInt64) -> [Action] {
        heard(target, now: now)
    }

    /// `requester` asks us to probe `target`. If we heard from it within the last two probe
    /// intervals, we say so at once; otherwise we ping it and answer when it is heard from
    /// (or never, if it stays silent until `downAfter`).
    mutating func pingRequested(by requester: String, target: String, now: UInt64) -> [Action] {
        guard let p = peers[target] else { return [] }
        if now &- p.lastHeard <= 2 * Self.ns(settings.probeInterval) { return [.alive(to: requester, target: target)] }
        relays[target, default: []].append((requester, now &+ Self.ns(settings.downAfter)))
        return [.ping(target)]
    }

    /// One probe round at `now`; `heard` holds the peers something was read from since the
    /// last round.
    mutating func tick(now: UInt64, heard: Set<String>) -> [Action] {
        let interval = Self.ns(settings.probeInterval)
        if let last = lastTick, now &- last > 2 * interval {
            // We ran late: forgive every peer the time we could not listen (Lifeguard's
            // local health, at its simplest).
            // Never past now: a peer's silence restarts at most from this round, so late
            // rounds cannot bank credit that would hide a silence later.
            let lost = now &- last &- interval
            for k in peers.keys { peers[k]!.lastHeard = min(now, peers[k]!.lastHeard &+ lost) }
        }
        lastTick = now
        rotation &+= 1
        var actions: [Action] = []
        for node in heard { actions += self.heard(node, now: now) }
        // Relayed probes that ran out.
        for (t, asks) in relays {
            let left = asks.filter { $0.until > now }
            relays[t] = left.isEmpty ? nil : left
        }
        let healthy = peers.filter { $0.value.health == .up && now &- $0.value.lastHeard < Self.ns(settings.indirectAfter) }
            .keys.sorted()
        for node in peers.keys.sorted() {
            guard var p = peers[node] else { continue }
            let silent = now > p.lastHeard ? now &- p.lastHeard : 0
            if silent >= Self.ns(settings.downAfter) {
                peers[node] = nil
                relays[node] = nil
                actions.append(.down(node, silentFor: Self.duration(silent)))
                continue
            }
            actions.append(.ping(node))
            if silent >= Self.ns(settings.indirectAfter), now &- p.askedAt >= interval * 2 || p.askedAt == 0 {
                let others = healthy.filter { $0 != node }
                if !others.isEmpty {
                    for i in 0..<min(settings.indirectProbes, others.count) {
                        actions.append(.pingRequest(via: others[(rotation + i) % others.count], target: node))
                    }
                    p.askedAt = now
                }
            }
            if silent >= Self.ns(settings.suspectAfter), p.health == .up {
                p.health = .suspect
                actions.append(.suspect(node, silentFor: Self.duration(silent)))
            }
            peers[node] = p
        }
        return actions
    }

    private mutating func heard(_ node: String, now: UInt64) -> [Action] {
        var actions: [Action] = []
        if var p = peers[node] {
            p.lastHeard = max(p.lastHeard, now)
            p.askedAt = 0
            if p.health == .suspect {
                p.health = .up
                actions.append(.reachable(node))
            }
            peers[node] = p
        }
        if let asks = relays.removeValue(forKey: node) {
            for a in asks where a.until > now { actions.append(.alive(to: a.node, target: node)) }
        }
        return actions
    }
}
