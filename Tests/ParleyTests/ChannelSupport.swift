import Parley
import Synchronization
import Testing


/// Collects values handed to an `onUndelivered` hook.
final class Collected<T: Sendable>: Sendable {
    let values = Mutex<[T]>([])
    func add(_ v: T) { values.withLock { $0.append(v) } }
    var all: [T] { values.withLock { $0 } }
}

/// Runs `body` in a go block and waits for its result (test bodies use the go path).
func inGo<T: Sendable>(_ body: sending @escaping () async throws -> T) async throws -> T {
    let r = go(body)
    return try #require(try await r.receive(), "the go block threw")
}

func pow2(_ x: Double) -> Double { x * x }
