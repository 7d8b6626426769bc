import Foundation
import Parley
@_exported import ParleyTestSupport
import Testing

/// A unique atom-like tag for test messages.
struct Tag: Sendable, Hashable { let id = UUID() }

extension Parley.Process {
    /// Waits for the DOWN of `ref` (fails the test after 10 s).
    func down(_ ref: Reference) async throws -> DownMessage {
        let d = try await receive(DownMessage.self, after: .seconds(10), where: { $0.ref == ref })
        return try #require(d, "no DOWN for \(ref)")
    }
}
