import Logging
@_spi(Distribution) import Parley
import ParleyOTP

/// A DynamicSupervisor across the cluster (Horde's `Horde.DynamicSupervisor`): children
/// spread over the members by the placement, restarted by OTP's rules on their node when
/// they exit, restarted on another node when theirs dies, and moved with their state when a
/// member joins or leaves gracefully.
///
/// It is a ``DistributedRegistry`` whose workers carry a restart type: a child is a
/// registered name (its id), so it is found and called by id from any node, and everything
/// the registry does for names it does for children: placement on the owner, handoff with
/// state, checkpoints, fencing after a split.
///
/// ```swift
/// DistributedSupervisor("jobs").define("job") { context in Job(context) }   // on every node
/// let jobs = try await DistributedSupervisor.start("jobs")
/// let pid = try await jobs.startChild("job:1", start: "job", restart: .transient)
/// print(jobs.whichChildren().map { "\($0.id) on \($0.node)" })
/// try await jobs.terminateChild("job:1")
/// ```
///
/// Restart rules are the local DynamicSupervisor's: `.permanent` children restart whatever
/// the reason, `.transient` ones after an abnormal exit, `.temporary` ones never (their
/// spec goes). A restart starts the child from its last checkpoint, if it made one. The
/// intensity (`max_restarts` in `max_seconds`, 3 in 5 s) counts per node; past it the
/// child that exited last is given up and logged, where Horde's per-node supervisor would
/// exit.
public struct DistributedSupervisor: Sendable {
    /// The registry that holds the children.
    public let registry: DistributedRegistry

    /// A handle to the supervisor `name` on `node`.
    public init(_ name: String, on node: LocalNode = .default) {
        registry = DistributedRegistry(name, on: node)
    }

    init(registry: DistributedRegistry) {
        self.registry = registry
    }

    /// Starts this node's member of the supervisor `name` (define the child kinds first).
    ///
    /// - Parameters:
    ///   - intensity: restarts allowed on one node in `period` (OTP's `max_restarts`).
    ///   - period: OTP's `max_seconds`.
    @discardableResult
    public static func start(_ name: String, on node: LocalNode = .default, placement: any Placement = .ring(),
                             intensity: Int = 3, period: Duration = .seconds(5),
                             logger: Logger = Logger(label: "parley.supervisor")) async throws -> DistributedSupervisor {
        DistributedSupervisor(registry: try await DistributedRegistry.start(
            name, on: node, placement: placement, intensity: intensity, period: period, logger: logger))
    }

    /// Defines a child kind under `key` (every node must define the same keys).
    public func define<Server: HandoffServer>(_ key: String, _ make: @escaping @Sendable (WorkerContext) -> Server) {
        registry.define(key, make)
    }

    /// Starts a child with id `id` on its owner and returns its pid once every member knows
    /// it (`Horde.DynamicSupervisor.start_child`).
    /// - Throws: ``DistributedRegistry/Failure``; `alreadyRegistered` for a taken id.
    @discardableResult
    public func startChild(_ id: String, start key: String, arguments: Term = .list([]),
                           restart: ChildSpec.Restart = .permanent, timeout: Duration = .seconds(15)) async throws(DistributedRegistry.Failure) -> Pid {
        try await registry.registerName(id, spec: WorkerSpec(key: key, arguments: arguments, restart: restart), timeout: timeout)
    }

    /// Stops the child `id` wherever it runs and forgets it (`terminate_child`).
    /// - Throws: ``DistributedRegistry/Failure/notRegistered(_:)``.
    public func terminateChild(_ id: String, timeout: Duration = .seconds(15)) async throws(DistributedRegistry.Failure) {
        try await registry.terminate(id, timeout: timeout)
    }

    /// A child, as every member sees it.
    public struct Child: Sendable, Equatable {
        /// The child's id: its name in the registry.
        public let id: String
        /// Its process.
        public let pid: Pid
        /// The node it runs on.
        public var node: String { pid.nodeName }
        /// The kind it was started from (``DistributedSupervisor/define(_:_:)``).
        public let key: String
        /// Its restart type.
        public let restart: ChildSpec.Restart
    }

    /// Every child of the cluster, from this node's copy (`which_children`, cluster-wide).
    public func whichChildren() -> [Child] {
        guard let entries = registry.state?.entries.withLock({ $0 }) else { return [] }
        return entries.values.compactMap { e in
            guard let w = e.worker, let restart = w.restart else { return nil }
            return Child(id: e.name, pid: e.pid, key: w.key, restart: restart)
        }.sorted { $0.id < $1.id }
    }

    /// How many children run, cluster-wide (`count_children`).
    public func countChildren() -> ChildCounts {
        let n = whichChildren().count
        return ChildCounts(specs: n, active: n, supervisors: 0, workers: n)
    }

    /// Calls the child `id` wherever it runs.
    public func call(_ id: String, _ request: any Sendable, timeout: Duration = Gen.defaultTimeout) async throws(Gen.CallError) -> any Sendable {
        try await registry.call(id, request, timeout: timeout)
    }

    /// Leaves gracefully: this node's children move, with their state, to their new owners.
    public func stop(timeout: Duration = .seconds(30)) async { await registry.stop(timeout: timeout) }
}
