import Foundation
@testable import ParleyRuntime
import Testing

@Suite("BusyWait (the BEAM's scheduler busy wait, +sbwt)", .timeLimit(.minutes(1)))
struct BusyWaitTests {
    @Test("Parked until activity; spins for the window after noteActivity, then parks again; stop ends the thread")
    func spinsForTheWindowOnly() async throws {
        let busy = BusyWait(window: .milliseconds(200))
        defer { busy.stop() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!busy.isSpinning)
        busy.noteActivity()
        #expect(await waitUntil { busy.isSpinning })
        // Activity within the window keeps it spinning past the first window.
        for _ in 0..<3 {
            try await Task.sleep(for: .milliseconds(100))
            busy.noteActivity()
        }
        #expect(busy.isSpinning)
        #expect(await waitUntil { !busy.isSpinning })
        // And a later activity wakes it again (no lost wake-up after it parked).
        busy.noteActivity()
        #expect(await waitUntil { busy.isSpinning })
    }

    #if os(Linux)
    @Test("The spinning thread runs in the idle scheduling class (SCHED_IDLE, policy 5): any other thread preempts it")
    func idleSchedulingClass() async throws {
        let busy = BusyWait(window: .milliseconds(100))
        defer { busy.stop() }
        busy.noteActivity()
        #expect(await waitUntil { busy.isSpinning })
        // /proc/self/task/TID/stat: field 41 is the scheduling policy.
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        var policies: [String] = []
        for t in tasks {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(t)/comm", encoding: .utf8),
                  comm.hasPrefix("parley-busywait"),
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(t)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the ")" that ends the command name start at field 3.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            policies.append(String(fields[41 - 3]))
        }
        #expect(!policies.isEmpty)
        #expect(policies.allSatisfy { $0 == "5" }, "policies \(policies)")
    }
    #endif
}
