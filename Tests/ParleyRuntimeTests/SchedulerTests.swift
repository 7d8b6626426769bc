import Foundation
import Logging
import ParleyRuntime
import Synchronization
import Testing

final class Counter: ScheduledJob, @unchecked Sendable {
    // @unchecked Sendable: all state is in Atomics.
    let runs = Atomic<Int>(0)
    override func run(budget: Int) { runs.add(1, ordering: .relaxed) }
}

@Suite("Scheduler", .timeLimit(.minutes(1)))
struct SchedulerTests {
    @Test("Swift tasks with Parley's executor preference run on the scheduler and complete")
    func tasksRun() async {
        let s = Scheduler(configuration: .init(schedulers: 2))
        defer { s.shutdown() }
        let sum = await withTaskGroup(of: Int.self) { g in
            for i in 0..<1000 { g.addTask(executorPreference: s.executor) { i } }
            return await g.reduce(0, +)
        }
        #expect(sum == 499_500)
    }

    @Test("Jobs enqueued from outside and from scheduler threads all run exactly once")
    func jobsRunOnce() async {
        let s = Scheduler(configuration: .init(schedulers: 2))
        defer { s.shutdown() }
        let jobs = (0..<2000).map { _ in Counter() }
        for j in jobs { s.enqueue(j) }
        #expect(await waitUntil { jobs.allSatisfy { $0.runs.load(ordering: .relaxed) == 1 } })
    }

    @Test("runWoken: the tasks its body wakes run on the calling (I/O) thread right after it, up to the limit; the rest go to the scheduler threads, as a BEAM scheduler runs the process its I/O poll wakes")
    func runWokenRunsOnTheCallingThread() async {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        let waiting = Locked<[UnsafeContinuation<Void, Never>]>([])
        // Per task: the thread it resumed on, and whether that thread counted as a scheduler thread.
        let resumedOn = Locked<[(thread: UInt, scheduler: Bool)]>([])
        for _ in 0..<3 {
            Task(executorPreference: s.executor) {
                await withUnsafeContinuation { c in waiting.withLock { $0.append(c) } }
                let me = UInt(pthread_self())
                resumedOn.withLock { $0.append((me, Scheduler.isSchedulerThread)) }
            }
        }
        #expect(await waitUntil { waiting.withLock { $0.count } == 3 })
        let caller = Locked<UInt>(0)
        // Seen on the I/O thread before and after runWoken: a scheduler thread? any reduction spent?
        let ordinary = Locked<[Bool]>([])
        let io = Thread {
            caller.withLock { $0 = UInt(pthread_self()) }
            let before = !Scheduler.isSchedulerThread
            s.runWoken(limit: 2) {
                for c in waiting.withLock({ $0 }) { c.resume() }
            }
            // Outside runWoken the thread is an ordinary thread again, whose reductions are
            // never spent (the budget the woken tasks ran with is gone).
            let after = !Scheduler.isSchedulerThread
            let neverSpent = (0..<10_000).allSatisfy { _ in !Scheduler.reductionSpent() }
            ordinary.withLock { $0 = [before, after, neverSpent] }
        }
        io.start()
        #expect(await waitUntil { resumedOn.withLock { $0.count } == 3 })
        #expect(await waitUntil { ordinary.withLock { $0.count } == 3 })
        #expect(ordinary.withLock { $0 } == [true, true, true])
        let ioThread = caller.withLock { $0 }
        let runs = resumedOn.withLock { $0 }
        #expect(runs.filter { $0.thread == ioThread }.count == 2)
        // While it runs woken tasks, the I/O thread counts as a scheduler thread (blocking there is a mistake).
        #expect(runs.filter { $0.thread == ioThread }.allSatisfy { $0.scheduler })
        #expect(runs.filter { $0.thread != ioThread }.count == 1)
    }

    @Test("A job that uses up its budget and goes to the back lets queued jobs run first")
    func backOfQueue() async {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        final class Hog: ScheduledJob, @unchecked Sendable {
            // @unchecked Sendable: state in Atomics; `s` and `other` are set before enqueue.
            let rounds = Atomic<Int>(0)
            let sawOther = Atomic<Int>(-1)
            let s: Scheduler
            let other: Counter
            init(_ s: Scheduler, _ other: Counter) { self.s = s; self.other = other }
            override func run(budget: Int) {
                let r = rounds.add(1, ordering: .relaxed).newValue
                if other.runs.load(ordering: .relaxed) > 0, sawOther.load(ordering: .relaxed) < 0 {
                    sawOther.store(r, ordering: .relaxed)
                }
                if r < 100 { s.enqueueAtBack(self) }
            }
        }
        let other = Counter()
        let hog = Hog(s, other)
        s.enqueue(hog)
        s.enqueue(other)
        #expect(await waitUntil { hog.rounds.load(ordering: .relaxed) == 100 })
        #expect(hog.sawOther.load(ordering: .relaxed) <= 3)
    }

    @Test("erlang:system_monitor long_schedule: a job holding a scheduler past the limit is reported")
    func longScheduleReported() async {
        let s = Scheduler(configuration: .init(schedulers: 1, longScheduleLimit: .milliseconds(50)))
        defer { s.shutdown() }
        final class Slow: ScheduledJob, @unchecked Sendable {
            override func run(budget: Int) {
                let t0 = MonotonicClock.now
                while MonotonicClock.now - t0 < 120_000_000 {}
            }
            override var scheduleDescription: String { "<0.99.0> (slowpoke)" }
        }
        s.enqueue(Slow())
        s.enqueue(Counter())
        #expect(await waitUntil { s.longScheduleReports.total == 1 })
        let r = s.longScheduleReports.recent.first
        #expect(r?.job == "<0.99.0> (slowpoke)")
        #expect((r?.milliseconds ?? 0) >= 50)
    }

    // A timer wakes one parked worker; if that worker then takes a job that holds it (a
    // handler that blocks), the timer must still fire on time: another worker, still
    // parked, has to be sleeping no later than it (the BEAM's timers fire whatever one
    // scheduler is doing). Repeated, as which worker takes the job varies.
    @Test("A timer fires on time while the worker it woke is held by a long job and the other worker was parked")
    func timerFiresWhileWokenWorkerIsHeld() async {
        let s = Scheduler(configuration: .init(schedulers: 2))
        defer { s.shutdown() }
        final class Hold: ScheduledJob, @unchecked Sendable {
            override func run(budget: Int) {
                let t0 = MonotonicClock.now
                while MonotonicClock.now - t0 < 400_000_000 { usleep(1000) }
            }
        }
        for round in 0..<5 {
            // Both workers parked, with nothing to wake them for.
            try? await Task.sleep(for: .milliseconds(50))
            let fired = Atomic<UInt64>(0)
            let t0 = MonotonicClock.now
            s.timers.schedule(after: .milliseconds(30)) { fired.store(MonotonicClock.now, ordering: .relaxed) }
            s.enqueue(Hold())
            #expect(await waitUntil { fired.load(ordering: .relaxed) != 0 })
            let late = Double(fired.load(ordering: .relaxed) - t0) / 1e6
            #expect(late < 300, "round \(round): the timer fired after \(late) ms, when the long job let go")
            try? await Task.sleep(for: .milliseconds(400))
        }
    }

    // The BEAM checks its timer wheel at every schedule, not every N processes: a timer is
    // late by at most the job that was running when it came due.
    @Test("A busy scheduler fires a due timer after the job that is running, not after a run of long jobs")
    func timersFireBetweenLongJobs() async {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        /// Holds the only scheduler for 20 ms, then queues the next of `left` like it.
        final class Busy: ScheduledJob, @unchecked Sendable {
            // @unchecked Sendable: `left` is immutable; `s` is the scheduler it runs on.
            let left: Int
            let s: Scheduler
            init(_ left: Int, _ s: Scheduler) { self.left = left; self.s = s }
            override func run(budget: Int) {
                let t0 = MonotonicClock.now
                while MonotonicClock.now - t0 < 20_000_000 {}
                if left > 0 { s.enqueueAtBack(Busy(left - 1, s)) }
            }
        }
        let firedAt = Atomic<UInt64>(0)
        let t0 = MonotonicClock.now
        s.enqueue(Busy(15, s))   // 16 jobs of 20 ms: 320 ms of work
        s.timers.schedule(after: .milliseconds(5)) { firedAt.store(MonotonicClock.now, ordering: .relaxed) }
        #expect(await waitUntil { firedAt.load(ordering: .relaxed) != 0 })
        let late = Double(firedAt.load(ordering: .relaxed) &- t0) / 1e6
        // Due at 5 ms; after the first 20 ms job it fires (room for a busy machine), not at 320 ms.
        #expect(late < 150, "fired after \(late) ms")
    }

    @Test("Scheduler.configure after the shared scheduler started is a typed error")
    func configureTooLate() {
        _ = Scheduler.shared
        #expect(throws: SchedulerError.alreadyStarted) { try Scheduler.configure(.init(schedulers: 1)) }
    }

    @Test("The blocking pool runs work off the schedulers and returns results and errors")
    func blockingPool() async throws {
        let s = Scheduler(configuration: .init(schedulers: 1, blockingThreads: 4))
        defer { s.shutdown() }
        let v = try await s.blocking.run { 6 * 7 }
        #expect(v == 42)
        struct Oops: Error {}
        await #expect(throws: Oops.self) { try await s.blocking.run { throw Oops() } }
        #expect(s.blocking.threadCounts.started <= 4)
    }
}

func waitUntil(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<500 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
