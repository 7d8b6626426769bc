import Foundation

// What several test targets share. A library target (not a test target), declared in
// Package.swift, so each test target says it uses it.

/// Scales stress tests down under the thread sanitizer (`.ci/run` sets PARLEY_STRESS_SCALE).
public let stressScale: Double = {
    if let s = ProcessInfo.processInfo.environment["PARLEY_STRESS_SCALE"], let v = Double(s) { return v }
    return 1
}()

/// `n` scaled by ``stressScale``, at least 10.
public func scaled(_ n: Int) -> Int { max(10, Int(Double(n) * stressScale)) }

/// Polls `condition` every `poll` until it holds, for up to `limit` by the clock (30 s by
/// default): a passing check returns as soon as it holds, and a slow start (every suite at
/// once under the thread sanitizer took 10-29 s a test in one CI run) is not a failure.
/// Counting 500 polls of a nominal 10 ms gave up after 5-10 s. Every test target uses this
/// one.
public func eventually(
    within limit: Duration = .seconds(30), every poll: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: poll)
    }
    return try await condition()
}
