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
        let exit = try await Process.run { me -> ExitReason in
            let ref = me.monitor(sup.pid)
            return try await withGracefulShutdownHandler {
                try await me.receive(DownMessage.self, where: { $0.ref == ref }).reason
            } onGracefulShutdown: {
                // Stop the tree: the supervisor stops its children in reverse order, then exits.
                Process.exit(sup.pid, .shutdown)
            }
        }
        if exit.isShutdown, Task.isShuttingDownGracefully { return }
        if exit.isShutdown && !exit.isNormal, Task.isShuttingDownGracefully == false {
            throw Exited(reason: exit)
        }
        if !exit.isNormal { throw Exited(reason: exit) }
    }
}
