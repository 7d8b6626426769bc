import Logging
import ParleyDistribution

/// A strategy with its settings, run as one process: libcluster's topology under
/// `Cluster.Supervisor`.
///
/// The topology connects to every node its strategy lists or sees, and it does better than
/// libcluster on two points its users hit:
/// - a listed node whose connection drops is dialled again, with backoff, for as long as it
///   stays listed (libcluster's DNS strategies once never reconnected: #145, #146, #148);
/// - a node that leaves the list is disconnected only after ``DisconnectPolicy/afterGrace(_:)``
///   (30 s by default) or when its connection dies, so a pod that is terminating finishes
///   its work first (libcluster's Kubernetes strategies cut it at once: #86);
/// - a node that was on its own list (a DNS strategy lists every pod) and drops off it is
///   leaving: it stops dialling, so it does not reconnect to the nodes that let it go
///   (libcluster #202), and once its own grace ends it leaves on its own, the way
///   `global:disconnect/0` does: no node then reports a lost connection, and OTP's
///   `prevent_overlapping_partitions` takes no other connection down with it. The other
///   nodes disconnect it themselves only if it is still there ``departureAllowance`` after
///   their grace (a BEAM node that does not leave by itself).
///
/// ```swift
/// var k8s = ClusterTopology(name: "k8s", strategy: KubernetesDNSStrategy(service: "myapp-headless", applicationName: "myapp"))
/// k8s.disconnect = .afterGrace(.seconds(60))
/// let cluster = try Cluster.start([k8s])
/// ```
public struct ClusterTopology: Sendable {
    /// When a node that left the strategy's list is disconnected.
    public enum DisconnectPolicy: Sendable, Equatable {
        /// Never by the topology: the node goes when its connection dies, and is not dialled
        /// again.
        case never
        /// This long after it left the list, unless it is listed again meanwhile.
        case afterGrace(Duration)
        /// At once, as libcluster does.
        case immediately
    }

    /// The topology's name, for logs and ``ClusterHandle/snapshot()``.
    public var name: String
    /// How nodes are found.
    public var strategy: any ClusterStrategy
    public var disconnect: DisconnectPolicy = .afterGrace(.seconds(30))
    /// The first pause before a dropped (or unreachable) listed node is dialled again; it
    /// doubles each time, up to ``maxReconnectDelay``.
    public var reconnectDelay: Duration = .milliseconds(200)
    public var maxReconnectDelay: Duration = .seconds(5)
    /// The pause before a strategy that threw runs again.
    public var restartDelay: Duration = .seconds(1)
    /// How much longer than its grace a node that left the list gets to leave by itself
    /// before this node disconnects it.
    public var departureAllowance: Duration = .seconds(5)

    public init(name: String, strategy: any ClusterStrategy) {
        self.name = name
        self.strategy = strategy
    }
}

/// What a running topology knows.
public struct TopologySnapshot: Sendable, Equatable {
    public var name: String
    /// The strategy's current list.
    public var listed: Set<String>
    /// Nodes that left the list and are still connected, waiting for their grace to end.
    public var leaving: Set<String>
    /// How many times the strategy has been started (1 unless it threw).
    public var strategyStarts: Int
    /// This node has left its own list: it dials nobody.
    public var departing: Bool
}

/// Starting topologies: libcluster's `Cluster.Supervisor`.
public enum Cluster {
    /// Starts `topologies` on `node` (distribution must be running there; a visible node, so
    /// that Erlang nodes mesh with it through `global`). Each topology is a process; its
    /// strategy runs in a linked process that is started again if it throws.
    ///
    /// ```swift
    /// var config = Distribution.Configuration(name: "app@10.0.0.5", cookie: cookie)
    /// config.hidden = false
    /// try await Distribution.start(config)
    /// let cluster = try Cluster.start([ClusterTopology(name: "gossip", strategy: GossipStrategy())])
    /// ```
    /// - Throws: ``DistributionError/notStarted`` if distribution is not running on `node`.
    public static func start(_ topologies: [ClusterTopology], on node: LocalNode = .default) throws -> ClusterHandle {
        guard node.isDistributed else { throw DistributionError.notStarted }
        var pids: [String: Pid] = [:]
        for t in topologies {
            pids[t.name] = try node.spawn(SpawnOptions(trapExit: true, label: "cluster topology \(t.name)")) { me in
                var runner = TopologyRunner(me: me, topology: t)
                try await runner.run()
            }
        }
        return ClusterHandle(pids: pids)
    }
}

/// Running topologies.
public final class ClusterHandle: Sendable {
    let pids: [String: Pid]
    init(pids: [String: Pid]) { self.pids = pids }

    /// Stops every topology (connections stay up).
    public func stop() {
        for p in pids.values { Process.exit(p, .kill) }
    }

    /// Each topology's state.
    public func snapshot() async throws -> [TopologySnapshot] {
        var out: [TopologySnapshot] = []
        for (_, pid) in pids.sorted(by: { $0.key < $1.key }) {
            if let s = try await Gen.call(pid, TopologyRunner.Query.snapshot, timeout: .seconds(10)) as? TopologySnapshot { out.append(s) }
        }
        return out
    }
}

/// The topology's process.
struct TopologyRunner {
    enum Query: Sendable { case snapshot }
    enum Event: Sendable {
        case dialed(String, error: String?)
        case restartStrategy
    }

    let me: Process
    let topology: ClusterTopology
    let home: LocalNode
    let log: Logger
    var listed: Set<String> = []
    var leaving: [String: ContinuousClock.Instant] = [:]
    var retry: [String: (delay: Duration, at: ContinuousClock.Instant)] = [:]
    var dialing: Set<String> = []
    var strategyPid: Pid?
    var strategyStarts = 0
    var failures: [String: Int] = [:]
    /// This node has been on its own list (see `departing`).
    var selfListed = false
    /// This node was on its own list and is not any more: it is being scaled down.
    var departing = false
    /// When a departing node leaves the cluster by itself.
    var departAt: ContinuousClock.Instant?

    init(me: Process, topology: ClusterTopology) {
        self.me = me
        self.topology = topology
        self.home = me.node
        var log = Logger(label: "parley.cluster")
        log[metadataKey: "topology"] = "\(topology.name)"
        self.log = log
    }

    mutating func run() async throws {
        home.monitorNodes(me.pid)
        defer { home.monitorNodes(me.pid, false) }
        startStrategy()
        while true {
            let next = ([leaving.values.min(), retry.values.map(\.at).min(), departAt].compactMap { $0 }).min()
            let message: (any Sendable)?
            if let next {
                let wait = max(.zero, next - .now)
                message = try await me.receive(after: wait)
            } else {
                message = try await me.receive()
            }
            if let message { handle(message) }
            expire()
        }
    }

    mutating func startStrategy() {
        strategyStarts += 1
        let strategy = topology.strategy, topologyPid = me.pid
        let context = ClusterStrategyContext(nodeName: home.name, topology: topology.name, logger: log) { report in
            topologyPid.send(report)
        }
        strategyPid = me.spawnLink { _ in try await strategy.run(context) }
    }

    mutating func handle(_ m: any Sendable) {
        switch m {
        case let r as ClusterReport:
            switch r {
            case .listed(let nodes, let includesSelf):
                if includesSelf {
                    selfListed = true
                    if departing { log.info("this node is listed again: dialling again") }
                    departing = false
                    departAt = nil
                } else if selfListed && !departing {
                    departing = true
                    switch topology.disconnect {
                    case .never: departAt = nil
                    case .immediately: departAt = .now
                    case .afterGrace(let g): departAt = .now + g
                    }
                    log.info("this node left its own list: it dials nobody from now on\(departAt == nil ? "" : ", and leaves the cluster when its grace ends")")
                }
                relist(nodes)
            case .seen(let nodes): for n in nodes { dialIfNeeded(n) }
            }
        case let t as Term:
            guard case .tuple(let items) = t, items.count == 2, let node = items[1].atomName else { return }
            if items[0] == .atom("nodeup") {
                retry[node] = nil
                failures[node] = nil
            } else if items[0] == .atom("nodedown") {
                leaving[node] = nil
                if listed.contains(node) { scheduleRetry(node) }
            }
        case let e as Event:
            switch e {
            case .dialed(let node, nil):
                dialing.remove(node)
                if failures.removeValue(forKey: node) != nil { log.info("connected to \(node) again") } else { log.info("connected to \(node)") }
            case .dialed(let node, let error?):
                dialing.remove(node)
                failures[node, default: 0] += 1
                if failures[node] == 1 { log.warning("unable to connect to \(node): \(error)") }
                if listed.contains(node) { scheduleRetry(node) }
            case .restartStrategy:
                startStrategy()
            }
        case let x as ExitMessage where x.from == strategyPid:
            strategyPid = nil
            if case .normal = x.reason {} else { log.error("strategy of topology \(topology.name) ended: \(x.reason); starting it again in \(topology.restartDelay)") }
            me.sendAfter(Event.restartStrategy, after: topology.restartDelay)
        case let c as Gen.CallMessage where c.request is Query:
            Gen.reply(c.from, TopologySnapshot(name: topology.name, listed: listed, leaving: Set(leaving.keys), strategyStarts: strategyStarts,
                                                departing: departing))
        default:
            break
        }
    }

    mutating func relist(_ nodes: Set<String>) {
        let removed = listed.subtracting(nodes)
        let added = nodes.subtracting(listed)
        if !added.isEmpty { log.info("listed: \(added.sorted().joined(separator: ", "))") }
        if !removed.isEmpty { log.info("no longer listed: \(removed.sorted().joined(separator: ", ")) (policy: \(topology.disconnect))") }
        listed = nodes
        for n in nodes {
            leaving[n] = nil
            // The whole list is dialled on every report: a dropped node that is still
            // listed comes back even if its retry was missed.
            if retry[n] == nil { dialIfNeeded(n) }
        }
        let connected = Set(home.connectedNodes)
        for n in removed {
            retry[n] = nil
            guard connected.contains(n) else { continue }
            switch topology.disconnect {
            case .never: break
            case .immediately: disconnect(n)
            case .afterGrace(let g): leaving[n] = .now + g + topology.departureAllowance
            }
        }
    }

    mutating func dialIfNeeded(_ node: String) {
        guard !departing, node != home.name, !dialing.contains(node), !home.connectedNodes.contains(node) else { return }
        dialing.insert(node)
        let home = self.home, topologyPid = me.pid
        me.spawn { _ in
            do {
                try await home.connect(node)
                topologyPid.send(Event.dialed(node, error: nil))
            } catch {
                topologyPid.send(Event.dialed(node, error: "\(error)"))
            }
        }
    }

    mutating func scheduleRetry(_ node: String) {
        let delay = retry[node].map { min($0.delay * 2, topology.maxReconnectDelay) } ?? topology.reconnectDelay
        retry[node] = (delay, .now + delay)
    }

    mutating func expire() {
        let now = ContinuousClock.now
        if let at = departAt, at <= now {
            departAt = nil
            leave()
        }
        for (n, at) in leaving where at <= now {
            leaving[n] = nil
            disconnect(n)
        }
        for (n, r) in retry where r.at <= now {
            retry[n] = (r.delay, .now + r.delay)    // rescheduled by the failure, cleared by nodeup
            if !dialing.contains(n) {
                if home.connectedNodes.contains(n) { retry[n] = nil } else { dialIfNeeded(n) }
            }
        }
    }

    /// Leaves the cluster: through global when this node is visible (no lost connections
    /// reported), else by disconnecting every node.
    func leave() {
        let home = self.home, log = self.log
        log.info("leaving the cluster: this node is no longer listed")
        me.spawn { _ in
            if (try? await Global.disconnect(on: home)) == nil {
                for n in home.connectedNodes { home.disconnect(n) }
            }
        }
    }

    func disconnect(_ node: String) {
        log.info("disconnecting \(node): it left the list of topology \(topology.name)")
        home.disconnect(node)
    }
}
