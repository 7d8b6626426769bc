import Foundation
import Logging
import ParleyRuntime
import Synchronization
import Testing

@Suite("Timers", .timeLimit(.minutes(1)))
struct TimerTests {
    @Test("Timers fire once, in deadline order, on the scheduler")
    func fireInOrder() async {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        let fired = Locked<[Int]>([])
        // Deadlines from one instant: with `after:` each delay counts from its own call, and
        // on a slow machine (the thread sanitizer) the 30 ms timer could be due before the
        // 20 ms one was even scheduled.
        let base = MonotonicClock.now
        for ms in [30, 10, 20] {
            s.timers.schedule(at: base &+ UInt64(ms) * 1_000_000) { fired.withLock { $0.append(ms) } }
        }
        #expect(await waitUntil { fired.withLock { $0.count } == 3 })
        try? await Task.sleep(for: .milliseconds(50))
        #expect(fired.withLock { $0 } == [10, 20, 30])
    }

    @Test("erlang:cancel_timer: a cancelled timer never fires; cancel reports whether it was pending")
    func cancel() async {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        let fired = Atomic<Int>(0)
        let t = s.timers.schedule(after: .milliseconds(30)) { fired.add(1, ordering: .relaxed) }
        #expect(t.remaining != nil)
        #expect(t.cancel())
        #expect(!t.cancel())
        #expect(t.remaining == nil)
        try? await Task.sleep(for: .milliseconds(80))
        #expect(fired.load(ordering: .relaxed) == 0)
    }

    @Test("Cancelled timers are swept, so long cancelled timeouts don't pile up")
    func sweep() {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        for _ in 0..<10_000 { s.timers.schedule(after: .seconds(3600)) {}.cancel() }
        #expect(s.timers.count < 2100)
    }

    @Test("A cancelled earliest timer leaves the queue's next deadline at the earliest pending one, so idle workers don't wake for it")
    func cancelledEarliestLeavesDeadline() {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        let base = MonotonicClock.now
        let a = s.timers.schedule(at: base &+ 3_600_000_000_000) {}
        let b = s.timers.schedule(at: base &+ 7_200_000_000_000) {}
        #expect(s.timers.nextDeadline == a.deadline)
        a.cancel()
        #expect(s.timers.nextDeadline == b.deadline)
        b.cancel()
        #expect(s.timers.nextDeadline == UInt64.max)
        #expect(s.timers.count == 0)
    }

    @Test("A timer that becomes the earliest wakes a worker parked with no deadline, and fires on time")
    func newEarliestWakesParkedWorker() async {
        let s = Scheduler(configuration: .init(schedulers: 2))
        defer { s.shutdown() }
        // Let both workers run out of work and park with no deadline.
        try? await Task.sleep(for: .milliseconds(100))
        let firedAt = Atomic<UInt64>(0)
        let due = MonotonicClock.now &+ 20_000_000
        s.timers.schedule(at: due) { firedAt.store(MonotonicClock.now, ordering: .relaxed) }
        #expect(await waitUntil { firedAt.load(ordering: .relaxed) != 0 })
        // Late by a wake-up, not by a park that only a later event would end (generous for a
        // busy machine).
        #expect(firedAt.load(ordering: .relaxed) < due &+ 2_000_000_000)
    }

    @Test("A call-timeout pattern (schedule far, cancel soon, repeat) keeps the queue empty")
    func scheduleCancelChurn() {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        for _ in 0..<10_000 { s.timers.schedule(after: .seconds(5)) {}.cancel() }
        #expect(s.timers.count == 0)
        #expect(s.timers.nextDeadline == UInt64.max)
    }

    /// A target that keeps its own armed state, as a process's receive does.
    final class Target: TimerTarget, Sendable {
        let armed = Atomic<UInt64>(0)
        let fired = Atomic<Int>(0)
        func timerIsPending(_ tag: UInt64) -> Bool { armed.load(ordering: .relaxed) == tag }
        func timerFired(_ tag: UInt64) -> Bool {
            guard armed.compareExchange(expected: tag, desired: 0, ordering: .relaxed).exchanged else { return false }
            fired.add(1, ordering: .relaxed)
            return true
        }
        func arm(_ tag: UInt64, at deadline: UInt64, on queue: TimerQueue) {
            armed.store(tag, ordering: .relaxed)
            queue.schedule(at: deadline, target: self, tag: tag)
        }
        func disarm(_ tag: UInt64, at deadline: UInt64, on queue: TimerQueue) -> Bool {
            guard armed.compareExchange(expected: tag, desired: 0, ordering: .relaxed).exchanged else { return false }
            queue.noteCancelled(deadline: deadline)
            return true
        }
    }

    @Test("erlang:cancel_timer for a target timer (no allocation): a disarmed one never fires, an armed one fires once")
    func targetTimers() async {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        let a = Target(), b = Target()
        let due = MonotonicClock.now &+ 20_000_000
        a.arm(1, at: due, on: s.timers)
        b.arm(1, at: due &+ 1, on: s.timers)
        #expect(a.disarm(1, at: due, on: s.timers))
        // The disarmed earliest left the queue: its deadline is b's.
        #expect(s.timers.nextDeadline == due &+ 1)
        #expect(await waitUntil { b.fired.load(ordering: .relaxed) == 1 })
        #expect(!b.disarm(1, at: due &+ 1, on: s.timers))   // already fired: cancel reports false
        try? await Task.sleep(for: .milliseconds(50))
        #expect(a.fired.load(ordering: .relaxed) == 0)
        #expect(b.fired.load(ordering: .relaxed) == 1)
        #expect(s.timers.count == 0)
    }

    @Test("A receive-timeout pattern with target timers (arm far, disarm soon, re-arm with a new tag) keeps the queue empty")
    func targetChurn() {
        let s = Scheduler(configuration: .init(schedulers: 1))
        defer { s.shutdown() }
        let t = Target()
        for g in 1...10_000 as ClosedRange<UInt64> {
            let deadline = MonotonicClock.deadline(after: .seconds(5))
            t.arm(g, at: deadline, on: s.timers)
            #expect(t.disarm(g, at: deadline, on: s.timers))
        }
        #expect(s.timers.count == 0)
        #expect(s.timers.nextDeadline == UInt64.max)
    }
}
