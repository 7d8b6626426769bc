import ParleyDistribution

/// A ``DistributedRegistry`` as a swift-service-lifecycle `Service`: `run()` starts the
/// registry (after the worker kinds are defined) and waits; graceful shutdown (SIGTERM
/// through `ServiceGroup`) hands every name on this node to its new owner, state and
/// messages included, before `run()` returns. A rolling deploy that sends SIGTERM to one
/// node at a time loses no name, no state and no message.
///
/// ```swift
/// DistributedRegistry("workers").define("cart") { context in Cart(context) }
/// let registry = DistributedRegistryService("workers")
/// let group = ServiceGroup(services: [registry], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public final class DistributedRegistryService: Service, Sendable {
    let name: String
    let node: LocalNode
    let placement: any Placement
    let stopTimeout: Duration
    private let outcome = Channel<Result<DistributedRegistry, any Error>>(buffer: .promise)

    /// - Parameters:
    ///   - stopTimeout: how long the handoffs of a graceful shutdown may take; names not
    ///     handed off by then restart on their new owners (from their last checkpoint).
    public init(_ name: String = DistributedRegistry.defaultName, on node: LocalNode = .default,
                placement: any Placement = .ring(), stopTimeout: Duration = .seconds(30)) {
        self.name = name
        self.node = node
        self.placement = placement
        self.stopTimeout = stopTimeout
    }

    /// Waits until `run()` has started the registry (synced with its connected members)
    /// and returns it.
    public func started() async throws -> DistributedRegistry {
        guard let result = try await outcome.receive() else { throw ChannelError.cancelled }
        return try result.get()
    }

    public func run() async throws {
        let registry: DistributedRegistry
        do {
            registry = try await DistributedRegistry.start(name, on: node, placement: placement)
        } catch {
            _ = outcome.offer(.failure(error))
            throw error
        }
        _ = outcome.offer(.success(registry))
        // Until graceful shutdown (or cancellation), then the handoffs.
        try? await gracefulShutdown()
        await registry.stop(timeout: stopTimeout)
    }
}
