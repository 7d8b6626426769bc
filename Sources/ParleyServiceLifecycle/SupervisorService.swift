/// A supervision tree as a swift-service-lifecycle `Service`: `run()` starts the tree and
/// waits; graceful shutdown (SIGTERM through `ServiceGroup`) stops it, children in reverse
/// start order with their configured timeouts.
///
/// ```swift
/// let tree = SupervisorService(children: [Counter().childSpec(id: "counter")], strategy: .oneForOne)
/// let group = ServiceGroup(services: [tree], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// Other tasks wait for the tree with ``started()`` (it returns once every child has
/// started) and reach a child by its id with ``child(_:)``:
///
/// ```swift
/// // while `group.run()` runs in another task:
/// let sup = try await tree.started()
/// let rooms = try await tree.child("rooms").supervisor
/// ```
///
/// If the supervisor itself exits (its restart intensity was exceeded), `run()` throws
/// ``SupervisorService/Exited``, so the service group can end the program, as an OTP
/// application whose top supervisor dies takes the node down.
public final class SupervisorService: Service, Sendable {
    let children: [ChildSpec]
    let flags: Supervisor.Flags
    let name: ServerName?
    /// The outcome of the supervisor's start, once known: a promise, so every ``started()``
    /// and every read of ``supervisor`` gets it.
    private let outcome = Channel<Result<Supervisor, StartError>>(buffer: .promise)

    /// The supervisor exited by itself, with this reason.
    public struct Exited: Error, CustomStringConvertible {
        public let reason: ExitReason
        public var description: String { "supervisor exited: \(reason)" }
    }

    public init(children: [ChildSpec], strategy: Supervisor.Strategy, intensity: Int = 3, period: Duration = .seconds(5), name: ServerName? = nil) {
        self.children = children
        self.flags = Supervisor.Flags(strategy: strategy, intensity: intensity, period: period)
        self.name = name
    }

    /// The running supervisor (after `run()` has started it), or nil if it has not started
    /// yet. ``started()`` waits for it instead.
    public var supervisor: Supervisor? { try? outcome.poll()?.get() }

    /// Waits until `run()` has started the supervisor and all its children, and returns it:
    /// the readiness signal for code that needs the tree (a health check, a test, a
    /// listener that should accept only once the workers are up).
    ///
    /// ```swift
    /// let tree = SupervisorService(children: [Counter().childSpec(id: "counter")], strategy: .oneForOne)
    /// async let done: Void = ServiceGroup(services: [tree], logger: logger).run()
    /// let sup = try await tree.started()
    /// print(try await sup.whichChildren())
    /// ```
    /// - Throws: the ``StartError`` `run()` got if the tree failed to start;
    ///   ``ChannelError/cancelled`` if the waiting task is cancelled first.
    public func started() async throws -> Supervisor {
        // A promise channel is never closed here, so receive always yields the outcome.
        guard let result = try await outcome.receive() else { throw ChannelError.cancelled }
        return try result.get()
    }

    /// The child with this id of the running tree (``Supervisor/child(_:)``), once the tree
    /// has started.
    /// - Throws: what ``started()`` throws; ``SupervisorError``.
    public func child(_ id: String) async throws -> ChildInfo {
        try await started().child(id)
    }

    public func run() async throws {
        let sup: Supervisor
        do {
            sup = try await Supervisor.start(children, strategy: flags.strategy, intensity: flags.intensity, period: flags.period, name: name)
        } catch {
            _ = outcome.offer(.failure(error))
            throw error
        }
        _ = outcome.offer(.success(sup))
        // The handler is installed in this (the service's) task: the process below runs as
        // its own task and does not inherit the service group's task-locals.
        // The stop waits until the watcher below monitors the supervisor: a shutdown that
        // came first would otherwise leave the watcher a DOWN with `noproc` instead of the
        // supervisor's real exit reason.
        let monitoring = Channel<Void>(buffer: .promise)
        let exit = try await withGracefulShutdownHandler {
            try await Process.run { me -> ExitReason in
                let ref = me.monitor(sup.pid)
                _ = monitoring.offer(())
                return try await me.receive(DownMessage.self, where: { $0.ref == ref }).reason
            }
        } onGracefulShutdown: {
            // As its parent would: the supervisor stops its children in reverse start order,
            // with their shutdown timeouts, then exits with `shutdown`. (A plain exit signal
            // from a process that is not its parent is ignored by a supervisor, as in OTP.)
            Task {
                _ = try? await monitoring.receive()
                try? await sup.stop(.shutdown)
            }
        }
        if exit.isNormal || (exit.isShutdown && Task.isShuttingDownGracefully) { return }
        if !exit.isNormal { throw Exited(reason: exit) }
    }
}
