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

/// Polls `condition` for up to 5 s.
public func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<500 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
