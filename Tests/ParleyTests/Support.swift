import Foundation
import Parley
import Testing

/// Scales stress tests down under the thread sanitizer (`.ci/run` sets PARLEY_STRESS_SCALE).
let stressScale: Double = {
    if let s = ProcessInfo.processInfo.environment["PARLEY_STRESS_SCALE"], let v = Double(s) { return v }
    return 1
}()

func scaled(_ n: Int) -> Int { max(10, Int(Double(n) * stressScale)) }

/// A unique atom-like tag for test messages.
struct Tag: Sendable, Hashable { let id = UUID() }

extension Parley.Process {
    /// Waits for the DOWN of `ref` (fails the test after 10 s).
    func down(_ ref: Reference) async throws -> DownMessage {
        let d = try await receive(DownMessage.self, after: .seconds(10), where: { $0.ref == ref })
        return try #require(d, "no DOWN for \(ref)")
    }
}

/// Polls `condition` for up to 5 s.
func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<500 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

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
