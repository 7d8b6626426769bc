import Hummingbird
import Logging
import ServiceLifecycle
import ParleyDistribution
import ParleyOTP
import Synchronization

/// A live web dashboard of a Parley node, in the spirit of Erlang's `observer` and Phoenix
/// LiveDashboard: the System page (schedulers and their utilization over time, run queues,
/// memory, timers, connected nodes), every process in a table sortable by mailbox length,
/// reductions or memory and searchable, a page per process (links, monitors, the head of
/// its mailbox, a GenServer's state, kill and send), the supervision trees, and a Prometheus
/// `/metrics` endpoint. Updates stream to the page as server-sent events.
///
/// Three lines in an app:
///
/// ```swift
/// import ParleyObserver
/// let observer = try Observer(.init(port: 4040))
/// Task { try await observer.run() }          // http://127.0.0.1:4040/
/// ```
///
/// It is a swift-service-lifecycle `Service`: put it in an app's `ServiceGroup` beside the
/// app's own server, and the group's graceful shutdown stops it too.
///
/// ```swift
/// let group = ServiceGroup(services: [app, try Observer()], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// It binds to 127.0.0.1 by default. Bound to any other address it requires a token, and
/// makes one (``token``, printed by `parley observer`) if none is given; every request must
/// carry it. ``Configuration/allowActions`` switches off kill and send.
public final class Observer: Sendable {
    /// Where and how the observer serves.
    public struct Configuration: Sendable {
        /// The address to bind. Anything but a loopback address requires a token.
        public var host: String
        /// The port; 0 picks a free one (``waitUntilListening()`` tells which).
        public var port: Int
        /// The secret every request must carry (`Authorization: Bearer …`, or `?token=` on
        /// the first page load, which sets a same-site cookie). nil on loopback: none needed.
        public var token: String?
        /// Whether the page may kill processes and send them messages.
        public var allowActions: Bool
        /// The node shown.
        public var node: LocalNode
        /// How often the page's live data refreshes.
        public var refresh: Duration
        /// Where `/metrics` comes from (by default the figures of ``node``); nil serves no `/metrics`.
        public var metrics: ObserverMetrics?

        public init(host: String = "127.0.0.1", port: Int = 4040, token: String? = nil, allowActions: Bool = true,
                    node: LocalNode = .default, refresh: Duration = .seconds(1), metrics: ObserverMetrics? = ObserverMetrics()) {
            self.host = host
            self.port = port
            self.token = token
            self.allowActions = allowActions
            self.node = node
            self.refresh = refresh
            self.metrics = metrics
        }
    }

    public let configuration: Configuration
    /// The token requests must carry: the configured one, or one made because the host is
    /// not a loopback address; nil when none is needed.
    public let token: String?
    let logger: Logger
    let table: ProcessTableCache
    let traces: TraceSessions
    private let agentPid = Mutex<Pid?>(nil)
    private let listening = ParleyChannels.Channel<Int>(buffer: .promise)

    /// Checks the configuration.
    /// - Throws: ``ObserverError/invalidPort(_:)``, ``ObserverError/emptyToken``.
    public init(_ configuration: Configuration = .init(), logger: Logger = Logger(label: "parley.observer")) throws(ObserverError) {
        guard (0...65535).contains(configuration.port) else { throw .invalidPort(configuration.port) }
        if let t = configuration.token, t.isEmpty { throw .emptyToken }
        self.configuration = configuration
        self.logger = logger
        self.token = configuration.token ?? (Self.isLoopback(configuration.host) ? nil : Self.makeToken())
        self.table = ProcessTableCache(node: configuration.node, minInterval: configuration.refresh)
        self.traces = TraceSessions()
    }

    /// Serves until the task running it is cancelled, or the `ServiceGroup` running it shuts
    /// down gracefully: the server then shuts down gracefully (open pages are told to stop,
    /// and the server closes).
    /// - Throws: what binding the address throws (a port in use, say).
    public func run() async throws {
        // The agent this run starts ends with it; one started with startAgent() stays.
        let agent = startAgentIfNeeded()
        defer {
            if let agent {
                agentPid.withLock { if $0 == agent { $0 = nil } }
                Process.exit(agent, .shutdown)
            }
        }
        let router = Router()
        addRoutes(to: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { [listening] channel in _ = listening.offer(channel.localAddress?.port ?? 0) },
            logger: logger)
        // Cancelling the task shuts the server down gracefully (Hummingbird logs cancelled
        // connections as errors otherwise).
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        // The group runs in a task of its own, so cancelling ours reaches it only as that
        // graceful shutdown.
        let serving = Task { try await group.run() }
        // Run as a swift-service-lifecycle `Service` in an app's ServiceGroup, the group's
        // graceful shutdown (SIGTERM, say) reaches the server the same way.
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await serving.value
            } onCancel: {
                Task { await group.triggerGracefulShutdown() }
            }
        } onGracefulShutdown: {
            Task { await group.triggerGracefulShutdown() }
        }
    }

    /// Starts the process that lets observers on other nodes show this node's pages
    /// (``ObserverAgent``, registered as `parley_observer` on ``Configuration/node``), with
    /// this observer's settings (a read-only observer refuses actions from there too).
    /// ``run()`` starts one that ends with the run; call this on a node that serves no page
    /// of its own but should be visible from another node's observer: the agent it starts
    /// lives as long as the node. Once per observer (a second call returns the same pid).
    ///
    /// ```swift
    /// let observer = try Observer(.init(allowActions: false))
    /// try observer.startAgent()     // b's pages, from any connected node's observer
    /// ```
    /// - Throws: `ProcessError.nameTaken` if another observer's agent already runs on the
    ///   node (one agent per node, as one registered name).
    @discardableResult
    public func startAgent() throws -> Pid {
        try launchAgent().pid
    }

    private func launchAgent() throws -> (pid: Pid, fresh: Bool) {
        try agentPid.withLock { pid in
            if let pid, pid.isAlive { return (pid, false) }
            let started = try ObserverAgent(observer: self).start(on: configuration.node)
            pid = started
            return (started, true)
        }
    }

    /// The agent's pid if this call started it.
    private func startAgentIfNeeded() -> Pid? {
        do {
            let (pid, fresh) = try launchAgent()
            return fresh ? pid : nil
        } catch {
            logger.warning("observer: other nodes' observers will not see \(configuration.node.name) through this observer (its settings do not apply to them): \(error)")
            return nil
        }
    }

    /// The port the server listens on, once it does.
    public func waitUntilListening() async -> Int {
        (try? await listening.receive()) ?? nil ?? 0
    }

    /// The page's address (with the token, if one is needed), once it listens.
    public func url() async -> String {
        let port = await waitUntilListening()
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        return "http://\(host):\(port)/" + (token.map { "?token=\($0)" } ?? "")
    }

    /// Adds the observer's routes to an app's own Hummingbird router or group, behind the
    /// same token check (`router.group("observer")` serves it under `/observer/`).
    ///
    /// ```swift
    /// let router = Router()
    /// try Observer(.init(token: "s3cret")).addRoutes(to: router.group("observer"))
    /// ```
    public func addRoutes<Routes: RouterMethods>(to router: Routes) {
        ObserverRoutes(observer: self).add(to: router)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// 32 hex digits from the system's random source.
    static func makeToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let s = String(g.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined()
    }
}

/// What the observer refuses to start with.
public enum ObserverError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidPort(Int)
    /// A token must not be empty (it would let every request in).
    case emptyToken

    public var description: String {
        switch self {
        case .invalidPort(let p): return "observer: port \(p) is not in 0...65535"
        case .emptyToken: return "observer: the token is empty"
        }
    }
}

extension Observer: Service {}
