import Foundation
@testable import ParleyRuntime
import Testing

@Suite("BusyWait (the BEAM's scheduler busy wait, +sbwt)", .timeLimit(.minutes(1)))
struct BusyWaitTests {
    @Test("Parked until activity; spins after noteActivity, parks once the window has passed, and activity wakes it again")
    func spinsForTheWindowOnly() async throws {
        let busy = BusyWait(window: .milliseconds(200))
        defer { busy.stop() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!busy.isSpinning)
        // An idle-class thread runs only when a CPU is free: on a loaded machine (other suites
        // run alongside) it may first get one after a window has passed, so keep it active.
        #expect(await waitUntil { busy.noteActivity(); return busy.isSpinning })
        // With no more activity it parks once the window has passed.
        #expect(await waitUntil { !busy.isSpinning })
        // And a later activity wakes it again (no lost wake-up after it parked).
        #expect(await waitUntil { busy.noteActivity(); return busy.isSpinning })
    }

    #if os(Linux)
    @Test("The spinning thread runs in the idle scheduling class (SCHED_IDLE, policy 5): any other thread preempts it")
    func idleSchedulingClass() async throws {
        let busy = BusyWait(window: .milliseconds(100))
        defer { busy.stop() }
        #expect(await waitUntil { busy.noteActivity(); return busy.isSpinning })
        // /proc/self/task/TID/stat: field 41 is the scheduling policy. Every busy-wait thread
        // of this process counts (distribution suites may have their own running).
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
