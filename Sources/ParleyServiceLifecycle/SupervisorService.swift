import Logging
import ParleyOTP
import ServiceLifecycle

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
/// If the supervisor itself exits (its restart intensity was exceeded), `run()` throws
/// ``SupervisorService/Exited``, so the service group can end the program, as an OTP
/// application whose top supervisor dies takes the node down.
public final class SupervisorService: Service, Sendable {
    let children: [ChildSpec]
    let flags: Supervisor.Flags
    let name: ServerName?
    private let started = Locked<Supervisor?>(nil)

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

    /// The running supervisor (after `run()` has started it).
    public var supervisor: Supervisor? { started.withLock { $0 } }

    public func run() async throws {
        let sup = try await Supervisor.start(children, strategy: flags.strategy, intensity: flags.intensity, period: flags.period, name: name)
        started.withLock { $0 = sup }
        // The handler is installed in this (the service's) task: the process below runs as
        // its own task and does not inherit the service group's task-locals.
        let exit = try await withGracefulShutdownHandler {
            try await Process.run { me -> ExitReason in
                let ref = me.monitor(sup.pid)
                return try await me.receive(DownMessage.self, where: { $0.ref == ref }).reason
            }
        } onGracefulShutdown: {
            // As its parent would: the supervisor stops its children in reverse start order,
            // with their shutdown timeouts, then exits with `shutdown`. (A plain exit signal
            // from a process that is not its parent is ignored by a supervisor, as in OTP.)
            Task { try? await sup.stop(.shutdown) }
        }
        if exit.isNormal || (exit.isShutdown && Task.isShuttingDownGracefully) { return }
        if !exit.isNormal { throw Exited(reason: exit) }
    }
}
