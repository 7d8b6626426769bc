import Parley
import Synchronization
import Testing

@Suite("Yielding", .serialized, .timeLimit(.minutes(1)))
struct YieldTests {
    @Test("A process that calls yield() in a long loop gives its scheduler back (no long_schedule report)")
    func yieldGivesSchedulerBack() async throws {
        let before = Scheduler.shared.longScheduleReports.total
        let pid = try await Parley.Process.run { me in
            let t0 = MonotonicClock.now
            var i = 0
            while MonotonicClock.now - t0 < 300_000_000 {   // 300 ms of work, 3 × the limit
                i &+= 1
                if i % 1000 == 0 { await me.yield() }
            }
            return me.pid
        }
        let reports = Scheduler.shared.longScheduleReports
        let mine = reports.recent.suffix(reports.total - before).filter { $0.job.hasPrefix(pid.description) }
        #expect(mine.isEmpty, "reported: \(mine)")
    }
}
