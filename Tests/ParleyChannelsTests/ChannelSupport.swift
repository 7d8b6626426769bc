import ParleyChannels
@_exported import ParleyTestSupport
import Synchronization
import Testing


/// Collects values handed to an `onUndelivered` hook. `Locked`, not `Mutex`: the thread
/// sanitizer cannot see `Mutex`'s lock on Linux and reports its accesses as races.
final class Collected<T: Sendable>: Sendable {
    let values = Locked<[T]>([])
    func add(_ v: T) { values.withLock { $0.append(v) } }
    var all: [T] { values.withLock { $0 } }
}

/// Runs `body` in a go block and waits for its result (test bodies use the go path).
func inGo<T: Sendable>(_ body: sending @escaping () async throws -> T) async throws -> T {
    let r = go(body)
    return try #require(try await r.receive(), "the go block threw")
}

func pow2(_ x: Double) -> Double { x * x }

/// Tests that replace the process-wide `ChannelErrors.handler` take turns (a channel with a
/// one-value buffer is the lock), so parallel tests don't see each other's errors.
private let channelErrorsTurn = Channel<Void>(buffer: .fixed(1))

func withChannelErrorHandler<T>(_ handler: @escaping @Sendable (any Error) -> Void,
                                _ body: () async throws -> T) async throws -> T {
    try await channelErrorsTurn.send(())
    ChannelErrors.handler = handler
    defer {
        ChannelErrors.handler = nil
        _ = channelErrorsTurn.poll()
    }
    return try await body()
}
