import Logging
import NIOCore
import NIOPosix
@_spi(Distribution) import Parley
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Erlang distribution for this OS process: Elixir's `Node` and Erlang's `net_kernel`.
///
/// Once started, pids from other nodes work like local ones: `send`, `link`, `monitor`,
/// `exit`, `Gen.call` and GenServer calls cross to Erlang, Elixir and Parley nodes. Nodes
/// connect on first use, as on the BEAM.
///
/// ```swift
/// try await Distribution.start(.init(name: "swift@127.0.0.1", cookie: "secret"))
/// let pong = await Distribution.ping("erl@127.0.0.1")             // true: pong
/// Process.send(Term.tuple([.atom("hello")]), to: "shell", on: Node.named("erl@127.0.0.1"))
/// let n = try await Gen.call("counter", on: Node.named("erl@127.0.0.1"), Term.atom("get"))
/// ```
public enum Distribution {
    /// How a node starts.
    public struct Configuration: Sendable {
        /// `name@host`, or a bare `name` for a short name on this host (`-sname`).
        public var name: String
        /// The shared secret (`-setcookie`). Nodes with different cookies refuse each other.
        public var cookie: String
        /// A hidden node (the default, as C nodes are): it does not join the `global` mesh and
        /// shows in `Node.list(:hidden)`. Set to false for a normal (visible) node.
        public var hidden: Bool = true
        /// The port to accept connections on; 0 picks a free one (registered with epmd).
        public var port: Int = 0
        /// The address to listen on; nil means all interfaces.
        public var listenHost: String? = nil
        /// EPMD's port; nil means `ERL_EPMD_PORT` or 4369, as Erlang does.
        public var epmdPort: Int? = nil
        /// Start an embedded EPMD when none runs, so a Parley-only cluster needs no Erlang.
        public var embeddedEPMD: Bool = true
        /// The address the embedded EPMD listens on. The default, `"0.0.0.0"`, is every IPv4
        /// interface, as Erlang's `epmd` listens: other machines can look names up. Pass
        /// `"127.0.0.1"` to serve this machine only (Erlang's `ERL_EPMD_ADDRESS` does the same
        /// for its `epmd`); nodes on other hosts then cannot find this one by name.
        public var embeddedEPMDAddress: String = "0.0.0.0"
        /// Known ports of other nodes, skipping epmd for them (`name@host` → port).
        public var staticPorts: [String: Int] = [:]
        /// Net tick time (`net_ticktime`): a peer silent for this long is disconnected. All
        /// nodes of a cluster must agree on it.
        public var tickTime: Duration = .seconds(60)
        /// How long a handshake may take before the connection is dropped.
        public var handshakeTimeout: Duration = .seconds(10)
        /// The largest message frame accepted from another node.
        public var maxFrameSize: Int = 128 << 20
        /// Bounds on what other nodes may send (nesting depth, inflated size).
        public var limits = TermLimits()
        /// Distribution over TLS (Erlang's `inet_tls_dist`), with these PEM files. Needs the
        /// package's `TLS` trait (`swift build --traits TLS`, or `traits: ["TLS"]` on the
        /// dependency); without it, starting distribution with `tls` set throws
        /// ``DistributionError/tlsUnavailable``.
        public var tls: TLS? = nil
        /// The SwiftNIO event loops connections run on; nil means one loop thread of its own
        /// (Parley's schedulers already have one thread per core; one loop keeps I/O from
        /// competing with them for cores).
        public var eventLoopGroup: (any EventLoopGroup)? = nil
        /// How many woken processes a connection's I/O thread runs itself after each read
        /// (the BEAM's way: the scheduler that reads a socket runs the process its data
        /// wakes), so a message from another node reaches a waiting process without a thread
        /// hand-off. Such a process runs on the I/O thread until it waits again or spends its
        /// reductions; a long burst of plain sends from there is not held by
        /// ``bufferBusyLimit`` (it waits in memory for the socket until the process waits),
        /// while one sent with `Process.sendSuspending(_:to:)` suspends the process whenever
        /// the connection is busy, and it resumes here when the connection drains. 0 hands
        /// every woken process to the scheduler threads instead, which keeps I/O apart from
        /// processes that compute or send long between receives.
        public var runWokenOnIOThread: Int = 64
        /// After a read or a write, keep one CPU from going idle this long (one thread of the
        /// idle scheduling class spins; it yields to any other thread at once), as the BEAM's
        /// schedulers busy-wait before sleeping (`+sbwt`). On a virtual machine, waking a
        /// thread on an idle virtual CPU costs tens of microseconds, more than a loopback
        /// round trip. nil: never spin.
        public var busyWait: Duration? = .microseconds(500)
        /// The distribution buffer busy limit in bytes (Erlang's `dist_buf_busy_limit`, `+zdbbl`,
        /// 1 MiB by default there too). When what is queued for a node, in Parley's buffer or
        /// SwiftNIO's, reaches it, the connection is busy: a sender is held in `send` until it
        /// drains to half, as the BEAM suspends a process that sends to a busy distribution
        /// port, so a fast producer cannot fill memory with a slow peer's backlog. Only
        /// threads that may block are held (scheduler threads and plain threads); a plain
        /// `send` on an event loop thread, such as a process woken on a connection's I/O
        /// thread, queues past the limit, since blocking there could stop the very I/O it
        /// waits for. `Process.sendSuspending(_:to:)` suspends the process instead, on any
        /// thread.
        /// A single message larger than the limit still goes when the connection is not busy.
        /// nil: never busy (queues grow without bound).
        ///
        /// ```swift
        /// var config = Distribution.Configuration(name: "a@127.0.0.1", cookie: "secret")
        /// config.bufferBusyLimit = 4 << 20   // erl +zdbbl 4096
        /// ```
        public var bufferBusyLimit: Int? = 1 << 20
        /// The failure detector between Parley nodes: a node that stops answering (stopped,
        /// hung, or cut off, with its socket still open) is suspect after
        /// ``FailureDetection/suspectAfter`` and disconnected after
        /// ``FailureDetection/downAfter``, instead of after four net tick periods (45 to 75 s
        /// with Erlang's default). Erlang nodes are not probed: the tick covers them. nil:
        /// this node does not probe (it still answers other nodes' probes).
        ///
        /// ```swift
        /// var config = Distribution.Configuration(name: "a@10.0.0.1", cookie: "secret")
        /// config.failureDetection?.downAfter = .seconds(5)   // a slow network
        /// ```
        public var failureDetection: FailureDetection? = FailureDetection()
        /// `global`'s settings on a visible node (`connect_all`, `prevent_overlapping_partitions`).
        public var global = Global.Options()
        /// Where connection events go: connects, disconnects, refused handshakes, bad input.
        public var logger = Logger(label: "parley.distribution")

        public init(name: String, cookie: String) {
            self.name = name
            self.cookie = cookie
        }
    }

    /// The failure detector's timings (``Configuration/failureDetection``), each measured from
    /// the last thing heard from a node. The defaults declare a stopped node down within
    /// 2 s of its last word.
    public struct FailureDetection: Sendable, Hashable {
        /// How often each Parley peer is probed.
        public var probeInterval: Duration = .milliseconds(100)
        /// Silent this long: other nodes are asked to probe it too (SWIM's `ping-req`), so a
        /// bad link between two nodes does not condemn a node the others still hear.
        public var indirectAfter: Duration = .milliseconds(400)
        /// Silent this long: ``ClusterEvent/suspect(_:silentFor:)``.
        public var suspectAfter: Duration = .milliseconds(600)
        /// Silent this long, directly and through the others: the connection is closed, with
        /// ``NodeDownReason/unresponsive(silentFor:)``.
        public var downAfter: Duration = .milliseconds(1500)
        /// How many other nodes an indirect probe goes through.
        public var indirectProbes: Int = 2

        public init() {}
    }

    /// TLS for distribution connections: this node's certificate and key, and the roots
    /// it trusts for its peers' certificates.
    public struct TLS: Sendable {
        /// This node's certificate chain, PEM.
        public var certificateChainFile: String
        /// This node's private key, PEM.
        public var privateKeyFile: String
        /// Verify peers against these roots; nil accepts any certificate (encryption only).
        public var trustRootsFile: String?
        public init(certificateChainFile: String, privateKeyFile: String, trustRootsFile: String? = nil) {
            self.certificateChainFile = certificateChainFile
            self.privateKeyFile = privateKeyFile
            self.trustRootsFile = trustRootsFile
        }
    }

    /// A distributed node's listener and EPMD registration.
    struct Running: Sendable {
        let router: DistributionRouter
        let server: any NIOCore.Channel
        var registration: EPMDRegistration?
        /// Embedded EPMDs this node started (a second one if the EPMD it used went away).
        var embedded: [EmbeddedEPMD]
        let port: Int
    }

    /// Each node's running distribution, and the nodes whose start is under way.
    private static let running = Locked<(nodes: [ObjectIdentifier: Running], starting: Set<ObjectIdentifier>)>(([:], []))

    /// The default event loop group: one thread, made on first use and kept for the process.
    static let sharedGroup: any EventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Starts distribution on ``LocalNode/default``: listens, registers with EPMD (starting
    /// an embedded one if none runs), and makes this node's pids carry the node name.
    /// ``LocalNode/startDistribution(_:)`` does the same for another node of the OS process.
    ///
    /// - Returns: the full node name (`name@host`).
    /// - Throws: ``DistributionError``: already started, a bad name, EPMD refusing the name
    ///   (another node has it), or the port being taken.
    @discardableResult
    public static func start(_ configuration: Configuration) async throws -> String {
        try await start(configuration, on: .default)
    }

    static func start(_ configuration: Configuration, on home: LocalNode) async throws -> String {
        let name = try fullName(configuration.name)
        if home !== LocalNode.default && name != home.name { throw DistributionError.badNodeName(name) }
        // Two nodes of one OS process never share a name (LocalNode(name:) checks the other way).
        if home === LocalNode.default && LocalNode.hostsNode(named: name) { throw DistributionError.nameInUse(name) }
        let key = ObjectIdentifier(home)
        let claimed = running.withLock { r -> Bool in
            if r.nodes[key] != nil || r.starting.contains(key) { return false }
            r.starting.insert(key)
            return true
        }
        guard claimed else { throw DistributionError.alreadyStarted(home.name) }
        defer { running.withLock { _ = $0.starting.remove(key) } }

        let group = configuration.eventLoopGroup ?? Distribution.sharedGroup
        var tls: TLSContexts? = nil
        if let t = configuration.tls { tls = try DistributionTLS.contexts(t) }
        let box = RouterBox()
        let serverTLS = tls
        let server: any NIOCore.Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: Connection.waterMark(configuration.bufferBusyLimit))
                .childChannelInitializer { channel in
                    guard let router = box.router else { return channel.close() }
                    return channel.eventLoop.makeCompletedFuture {
                        if let serverTLS { try DistributionTLS.addServerHandler(serverTLS, to: channel) }
                        try DistributionPipeline.configure(
                            channel, HandshakeHandler(acceptorFor: router, remote: "\(channel.remoteAddress.map { "\($0)" } ?? "?")"))
                    }
                }
                .bind(host: configuration.listenHost ?? "0.0.0.0", port: configuration.port).get()
        } catch {
            throw DistributionError.listenFailed("\(error)")
        }
        let port = server.localAddress?.port ?? configuration.port

        let registration: EPMDRegistration
        let embedded: EmbeddedEPMD?
        let creation: UInt32
        do {
            (registration, embedded) = try await registerWithEPMD(alive: String(name[..<name.firstIndex(of: "@")!]), port: port, configuration)
            creation = registration.creation != 0 ? registration.creation : UInt32.random(in: 1...UInt32.max)
        } catch {
            try? await server.close()
            throw DistributionError.epmd("\(error)")
        }

        let router = DistributionRouter(home: home, configuration: configuration, name: name, creation: creation, group: group, tls: tls)
        box.router = router
        home.install(router, nodeName: name, creation: creation)
        running.withLock { $0.nodes[key] = Running(router: router, server: server, registration: registration, embedded: embedded.map { [$0] } ?? [], port: port) }
        watch(registration, of: home, alive: String(name[..<name.firstIndex(of: "@")!]), port: port, configuration: configuration)
        Spawner.start(on: home)
        NetKernel.start(on: home)
        if configuration.failureDetection != nil { router.failureDetector.start(router) }
        if !configuration.hidden {
            do {
                try Global.start(on: home, options: configuration.global, log: configuration.logger)
                router.setGlobalServer(Global.instance(of: home)?.server)
            } catch {
                router.log.error("global_name_server did not start: \(error)")
            }
        }
        router.log.info("distribution started: \(name) on port \(port), creation \(creation), \(configuration.hidden ? "hidden" : "visible")")
        return name
    }

    /// Stops distribution on ``LocalNode/default``: every connection closes (links and
    /// monitors across them fire with `noconnection`), the name is unregistered, and pids
    /// print as local again.
    public static func stop() async { await stop(on: .default) }

    static func stop(on home: LocalNode) async {
        guard let r = running.withLock({ $0.nodes.removeValue(forKey: ObjectIdentifier(home)) }) else { return }
        Spawner.stop(on: home)
        NetKernel.stop(on: home)
        r.router.setGlobalServer(nil)
        Global.stop(on: home)
        r.router.closeAll()
        try? await r.server.close()
        await r.registration?.close()
        for e in r.embedded { await e.stop() }
        home.install(nil, nodeName: "nonode@nohost", creation: 0)
    }

    /// Registers `alive` with the EPMD on the configured port, starting an embedded one first
    /// when the configuration asks for it and none answers (returned, to stop with the node;
    /// stopped again here if the registration fails).
    static func registerWithEPMD(alive: String, port: Int, _ configuration: Configuration) async throws -> (EPMDRegistration, EmbeddedEPMD?) {
        let started = configuration.embeddedEPMD
            ? try await EmbeddedEPMD.ensureRunning(port: configuration.epmdPort, host: configuration.embeddedEPMDAddress) : nil
        do {
            let r = try await EPMDClient.register(name: alive, port: UInt16(port), hidden: configuration.hidden, epmdPort: configuration.epmdPort)
            return (r, started)
        } catch {
            await started?.stop()
            throw error
        }
    }

    /// A node registered with an EPMD that goes away would be unreachable by name for good
    /// (its registration was that TCP connection; a BEAM node is stranded the same way).
    /// When the registration closes while the node runs, register again: with whatever EPMD
    /// now answers on the port, or an embedded one started for it, retrying with backoff.
    static func watch(_ registration: EPMDRegistration, of home: LocalNode, alive: String, port: Int, configuration: Configuration) {
        let key = ObjectIdentifier(home)
        registration.whenClosed {
            Task {
                var delay = Duration.milliseconds(50)
                while true {
                    // Stopped on purpose (or replaced): nothing to do.
                    guard running.withLock({ $0.nodes[key]?.registration === registration }) else { return }
                    do {
                        let (fresh, started) = try await registerWithEPMD(alive: alive, port: port, configuration)
                        let kept = running.withLock { r -> Bool in
                            guard r.nodes[key]?.registration === registration else { return false }
                            r.nodes[key]?.registration = fresh
                            if let started { r.nodes[key]?.embedded.append(started) }
                            return true
                        }
                        guard kept else {
                            await fresh.close()
                            await started?.stop()
                            return
                        }
                        configuration.logger.warning("the EPMD this node was registered with went away: registered again\(started == nil ? "" : " with an embedded EPMD it started") on port \(configuration.epmdPort ?? EPMDClient.defaultPort)")
                        watch(fresh, of: home, alive: alive, port: port, configuration: configuration)
                        return
                    } catch {
                        try? await Task.sleep(for: delay)
                        delay = min(delay * 2, .seconds(2))
                    }
                }
            }
        }
    }

    static func router(of home: LocalNode) -> DistributionRouter? { running.withLock { $0.nodes[ObjectIdentifier(home)]?.router } }
    static func port(of home: LocalNode) -> Int? { running.withLock { $0.nodes[ObjectIdentifier(home)]?.port } }

    /// Whether distribution is running on the default node.
    public static var isStarted: Bool { LocalNode.default.isDistributed }

    /// The default node's name (`nonode@nohost` when not distributed): Elixir's `Node.self()`.
    public static var nodeName: String { LocalNode.default.name }

    /// The port the default node accepts distribution connections on.
    public static var port: Int? { LocalNode.default.distributionPort }

    /// The nodes the default node is connected to (`Node.list(:connected)`), sorted.
    public static var nodes: [String] { LocalNode.default.connectedNodes }

    /// The connected nodes with what the handshake learnt (flags, hidden or visible).
    public static var peers: [PeerInfo] { LocalNode.default.peers }

    /// Connects the default node to `node` (`Node.connect/1`, `net_kernel:connect_node/1`).
    /// Connecting is also automatic on the first message, link or monitor.
    /// - Throws: ``DistributionError/connectFailed(node:reason:)`` with the reason (no such
    ///   node in epmd, cookie mismatch, refused, timed out).
    public static func connect(_ node: String) async throws { try await LocalNode.default.connect(node) }

    /// `Node.ping/1`: connects and asks the node's net_kernel `{is_auth, Node}`. True for
    /// `pong`, false for `pang` (no connection, refused, or no answer within `timeout`).
    public static func ping(_ node: String, timeout: Duration = .seconds(10)) async -> Bool {
        await LocalNode.default.ping(node, timeout: timeout)
    }

    /// Disconnects the default node from `node` (`Node.disconnect/1`): links and monitors
    /// across the connection fire with `noconnection`.
    public static func disconnect(_ node: String) { LocalNode.default.disconnect(node) }

    /// `net_kernel:monitor_nodes(true)`: `pid` receives `{nodeup, Node}` and
    /// `{nodedown, Node}` (as ``Term``s) as connections come and go.
    ///
    /// ```swift
    /// Distribution.monitorNodes(me.pid)
    /// let event = try await me.receive(Term.self)    // {nodeup,'erl@127.0.0.1'}
    /// ```
    public static func monitorNodes(_ pid: Pid, _ on: Bool = true) { LocalNode.default.monitorNodes(pid, on) }

    /// `net_kernel:monitor_nodes(true, Options)` on ``LocalNode/default``: with options the
    /// messages are `{nodeup, Node, []}` and `{nodedown, Node, InfoList}`, and with
    /// ``MonitorNodesOptions/suspicion`` the failure detector's `{nodesuspect, Node, Info}`
    /// and `{nodereachable, Node, []}` too.
    ///
    /// ```swift
    /// Distribution.monitorNodes(me.pid, options: [.nodedownReason, .suspicion])
    /// // {nodesuspect,'b@10.0.0.2',[{silent_ms,612}]}
    /// // {nodedown,'b@10.0.0.2',[{nodedown_reason,{failure_detector,1503}}]}
    /// ```
    public static func monitorNodes(_ pid: Pid, _ on: Bool = true, options: MonitorNodesOptions) {
        LocalNode.default.monitorNodes(pid, on, options: options)
    }

    /// Connection events of ``LocalNode/default`` from now on: nodes up, suspected,
    /// reachable again, and down with the reason. The sequence ends when distribution stops;
    /// it is empty if distribution is not running.
    ///
    /// ```swift
    /// for await event in Distribution.clusterEvents() {
    ///     if case .nodeDown(let node, .unresponsive(let silent)) = event { print(node, "hung for", silent) }
    /// }
    /// ```
    public static func clusterEvents() -> AsyncStream<ClusterEvent> { LocalNode.default.clusterEvents() }

    /// The Parley nodes the failure detector currently suspects.
    public static var suspects: [String] { LocalNode.default.suspects }

    /// A node name with its host: `name` alone gets this host's short name, as `-sname` does.
    static func fullName(_ name: String) throws(DistributionError) -> String {
        if name.contains("@") {
            let parts = name.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw .badNodeName(name) }
            return name
        }
        guard !name.isEmpty else { throw .badNodeName(name) }
        return "\(name)@\(shortHostName())"
    }

    static func shortHostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        let host = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(host.split(separator: ".").first ?? "localhost")
    }
}

/// The router, once it exists, for connections accepted by the listener.
final class RouterBox: Sendable {
    private let value = Locked<DistributionRouter?>(nil)
    var router: DistributionRouter? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// Distribution for any node of the OS process: the same operations as ``Distribution``'s,
/// which act on ``LocalNode/default``. Two nodes of one OS process reach each other over
/// real connections, as two BEAM nodes on one host do.
///
/// ```swift
/// let b = try LocalNode(name: "b@127.0.0.1")
/// try await b.startDistribution(.init(name: "b@127.0.0.1", cookie: "secret"))
/// try await Distribution.start(.init(name: "a@127.0.0.1", cookie: "secret"))
/// print(await b.ping("a@127.0.0.1"))        // true
/// ```
extension LocalNode {
    /// Starts distribution on this node. `configuration.name` must be this node's name
    /// (any name for ``LocalNode/default``, which takes it).
    /// - Throws: ``DistributionError`` (``DistributionError/badNodeName(_:)`` for another name).
    @discardableResult
    public func startDistribution(_ configuration: Distribution.Configuration) async throws -> String {
        try await Distribution.start(configuration, on: self)
    }

    /// Stops distribution on this node (connections close with `noconnection`).
    public func stopDistribution() async { await Distribution.stop(on: self) }

    /// Whether distribution runs on this node.
    public var isDistributed: Bool { Distribution.router(of: self) != nil }

    /// The port this node accepts distribution connections on.
    public var distributionPort: Int? { Distribution.port(of: self) }

    /// The nodes this node is connected to (`Node.list(:connected)`), sorted.
    public var connectedNodes: [String] { (Distribution.router(of: self)?.connectedNodes ?? []).map(\.name).sorted() }

    /// The connected nodes with what the handshake learnt (flags, hidden or visible).
    public var peers: [PeerInfo] { (Distribution.router(of: self)?.connectedNodes ?? []).sorted { $0.name < $1.name } }

    /// Connects this node to `node` (`Node.connect/1`).
    /// - Throws: ``DistributionError/notStarted``, ``DistributionError/connectFailed(node:reason:)``.
    public func connect(_ node: String) async throws {
        guard let router = Distribution.router(of: self) else { throw DistributionError.notStarted }
        guard let conn = router.connection(to: Node.named(try Distribution.fullName(node))) else { return }
        try await conn.waitUntilUp()
    }

    /// `Node.ping/1` from this node: true for `pong`.
    public func ping(_ node: String, timeout: Duration = .seconds(10)) async -> Bool {
        guard let full = try? Distribution.fullName(node) else { return false }
        if full == name { return true }
        do {
            try await connect(full)
            let me = self
            let reply = try await me.run { _ in
                try await Gen.call("net_kernel", on: Node.named(full), Term.tuple([.atom("is_auth"), .atom(Atom(me.name))]), timeout: timeout)
            }
            return (reply as? Term) == .atom("yes")
        } catch {
            return false
        }
    }

    /// Disconnects this node from `node` (`Node.disconnect/1`).
    public func disconnect(_ node: String) {
        guard let router = Distribution.router(of: self), let full = try? Distribution.fullName(node),
              let c = router.connection(to: Node.named(full), dial: false) else { return }
        c.close(reason: "disconnected", down: .disconnected)
    }

    /// `net_kernel:monitor_nodes(true)` for this node's connections.
    public func monitorNodes(_ pid: Pid, _ on: Bool = true) {
        Distribution.router(of: self)?.monitorNodes(pid, on)
    }

    /// `net_kernel:monitor_nodes(true, Options)` for this node's connections
    /// (``Distribution/monitorNodes(_:_:options:)``).
    public func monitorNodes(_ pid: Pid, _ on: Bool = true, options: MonitorNodesOptions) {
        Distribution.router(of: self)?.monitorNodes(pid, on, options: options)
    }

    /// This node's connection events from now on (``Distribution/clusterEvents()``).
    public func clusterEvents() -> AsyncStream<ClusterEvent> {
        guard let router = Distribution.router(of: self) else {
            let (stream, c) = AsyncStream<ClusterEvent>.makeStream()
            c.finish()
            return stream
        }
        return router.events()
    }

    /// The Parley nodes this node's failure detector suspects (``Distribution/suspects``).
    public var suspects: [String] { Distribution.router(of: self)?.failureDetector.suspects ?? [] }
}
