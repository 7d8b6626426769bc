import DequeModule
import Synchronization
import CParleyShims

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The guest worker of a thread that is not a scheduler thread (see ``Scheduler/runWoken``),
/// retained by the key; released when the thread exits.
private let guestKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { p in
        #if canImport(Darwin)
        Unmanaged<Worker>.fromOpaque(p).release()
        #else
        if let p { Unmanaged<Worker>.fromOpaque(p).release() }
        #endif
    }
    return key
}()

/// One scheduler thread and its run queue.
@usableFromInline
final class Worker: @unchecked Sendable {
    // @unchecked Sendable: `queue` is `Locked` and `ticks` an Atomic; `yieldRequested`,
    // `current`, `rng` and `seen` are touched only by this worker's own thread.
    let index: Int
    let scheduler: Scheduler
    let parker = Parker()
    /// Jobs run so far; a stealer that sees it unchanged knows this worker is stuck on one job.
    let ticks = Atomic<UInt64>(0)
    private let queue = Locked<LocalQueue>(LocalQueue())
    /// Lock-free hints for stealers, written under `queue`'s lock: items in the queue, and
    /// whether runnext is occupied. Stale reads only cost a wasted or a skipped steal attempt.
    let queuedHint = Atomic<Int>(0)
    /// While parked: the deadline it sleeps until (`UInt64.max`: none, or not yet read);
    /// 0 while running. A new earliest timer wakes it only if it sleeps past it.
    let parkedUntil = Atomic<UInt64>(0)
    let hasNextHint = Atomic<Bool>(false)
    /// For ``Scheduler/statistics`` (observer, metrics): nanoseconds spent parked, and jobs
    /// taken from other workers. Written only by this worker, off the job path (around a park
    /// and after a steal), so relaxed load-then-store is enough; readers get an estimate.
    let parkedNanos = Atomic<UInt64>(0)
    /// When the park going on now began (0: not parked), so a reader counts it too.
    let parkedSince = Atomic<UInt64>(0)
    let steals = Atomic<UInt64>(0)
    // Touched only by the worker's own thread (exclusivity is by construction).
    @usableFromInline @exclusivity(unchecked) var yieldRequested = false
    /// The process whose Swift task runs on this thread, as it noted when it resumed
    /// (``Scheduler/noteRunning(_:)``), for long-schedule reports and ``Scheduler/runningJob``.
    /// A strong reference: the task may end, and free the process, before the report reads it.
    @usableFromInline @exclusivity(unchecked) var current: ScheduledJob?
    /// The job ``run(_:)`` is running (a callback process), for the same readers.
    /// unowned(unsafe): no retain and release per job (about 2 % of callback ping-pong); the
    /// `Runnable` that `run(_:)` was given holds the job until after it clears this.
    @exclusivity(unchecked) unowned(unsafe) var currentJob: ScheduledJob?
    /// The reduction budget of each job (`parley_reset_reductions` before each one).
    let budget: Int
    @exclusivity(unchecked) private var rng: UInt64
    /// What `stealOnce` saw of each victim during one search (reset per search; kept here so
    /// that a worker running out of work allocates nothing).
    @exclusivity(unchecked) private var seen: [(ticks: UInt64, since: UInt64)] = []

    struct LocalQueue {
        var next: Runnable?
        var items = Deque<Runnable>()
    }

    init(index: Int, scheduler: Scheduler) {
        self.index = index
        self.scheduler = scheduler
        self.rng = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        self.budget = scheduler.configuration.reductions
    }

    /// Runs `body` with the calling thread's worker, borrowed (nil off the schedulers): a
    /// strong reference's retain and release are two atomic writes on paths that run once per
    /// message. Unretained: a thread's current worker outlives anything the thread runs
    /// meanwhile.
    @inline(__always)
    static func withCurrent<R>(_ body: (Worker) throws -> R) rethrows -> R? {
        guard let p = parley_get_current_worker() else { return nil }
        return try Unmanaged<Worker>.fromOpaque(p)._withUnsafeGuaranteedRef(body)
    }

    /// The calling thread's guest worker for `scheduler`: a run queue that only this thread
    /// fills and drains, never stolen from, never parked. Index -1 keeps it out of the
    /// scheduler's worker list.
    static func guest(of scheduler: Scheduler) -> Worker {
        if let p = pthread_getspecific(guestKey) {
            let w = Unmanaged<Worker>.fromOpaque(p).takeUnretainedValue()
            if w.scheduler === scheduler { return w }
            Unmanaged<Worker>.fromOpaque(p).release()
        }
        let w = Worker(index: -1, scheduler: scheduler)
        pthread_setspecific(guestKey, Unmanaged.passRetained(w).toOpaque())
        return w
    }

    /// Makes this worker the calling thread's `current` (a guest's, for the span of `runWoken`), or none.
    static func setCurrent(_ w: Worker?) {
        parley_set_current_worker(w.map { Unmanaged.passUnretained($0).toOpaque() })
    }

    // MARK: Queue operations

    /// Puts `r` in the runnext slot; a job already there moves to the back of the queue,
    /// where other schedulers can steal it.
    func pushNext(_ r: Runnable) {
        let kicked = queue.withLock { q -> Bool in
            guard let old = q.next else {
                q.next = r
                hasNextHint.store(true, ordering: .relaxed)
                return false
            }
            q.next = r
            q.items.append(old)
            queuedHint.store(q.items.count, ordering: .relaxed)
            return true
        }
        if kicked { scheduler.wakeIdle() }
    }

    func popLocal() -> Runnable? {
        queue.withLock { q in
            if let n = q.next {
                q.next = nil
                hasNextHint.store(false, ordering: .relaxed)
                return n
            }
            let r = q.items.popFirst()
            if r != nil { queuedHint.store(q.items.count, ordering: .relaxed) }
            return r
        }
    }

    func hasWork() -> Bool {
        queue.withLock { $0.next != nil || !$0.items.isEmpty }
    }

    /// Takes half of this worker's queue for `thief`; the runnext slot too when `includeNext`
    /// (its owner has been running the same job for a while).
    private func steal(into thief: Worker, includeNext: Bool) -> Runnable? {
        var taken: [Runnable] = []
        let first: Runnable? = queue.withLock { q in
            let n = q.items.count
            if n == 0 {
                if includeNext, let next = q.next {
                    q.next = nil
                    hasNextHint.store(false, ordering: .relaxed)
                    return next
                }
                return nil
            }
            let half = (n + 1) / 2
            let head = q.items.popFirst()
            if half > 1 {
                taken.reserveCapacity(half - 1)
                for _ in 1..<half { if let r = q.items.popFirst() { taken.append(r) } }
            }
            queuedHint.store(q.items.count, ordering: .relaxed)
            return head
        }
        if !taken.isEmpty {
            thief.queue.withLock { q in
                q.items.append(contentsOf: taken)
                thief.queuedHint.store(q.items.count, ordering: .relaxed)
            }
        }
        return first
    }

    // MARK: The loop

    func loop() {
        Self.setCurrent(self)
        var tick: UInt32 = 0
        jobStart = MonotonicClock.coarse
        while !scheduler.stopping.load(ordering: .relaxed) {
            tick &+= 1
            if tick & 15 == 0 {
                scheduler.timers.fireDue()
                jobStart = MonotonicClock.coarse
            }
            var r: Runnable? = nil
            if tick % 61 == 0 { r = scheduler.popGlobal() }
            if r == nil { r = popLocal() }
            if r == nil { r = scheduler.popGlobal() }
            if r == nil {
                r = findWorkOrPark()
                jobStart = MonotonicClock.coarse
            }
            if let r { run(r) }
        }
    }

    /// The coarse clock when the job about to run was taken: the previous job's end, or the
    /// end of a timer sweep or a park (or, on an I/O thread, the start of ``Scheduler/runWoken(limit:_:)``'s
    /// jobs). One clock read per job (at its end) instead of two; what lies between a job's
    /// end and the next one's start is a queue pop. Owner thread only.
    @exclusivity(unchecked) var jobStart: UInt64 = 0

    @inline(__always)
    func run(_ r: Runnable) {
        ticks.store(ticks.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        parley_reset_reductions(budget)
        let limit = scheduler.longScheduleNanos
        let start = jobStart
        switch r {
        case .task(let job):
            current = nil
            if Scheduler.isGlobalExecutor {
                job.runSynchronously(on: Scheduler.globalTaskExecutor)
            } else {
                job.runSynchronously(on: scheduler.unownedExecutor)
            }
        case .job(let job):
            currentJob = job
            job.run(budget: scheduler.configuration.reductions)
        }
        let end = MonotonicClock.coarse
        jobStart = end
        let elapsed = end &- start
        if limit > 0 && elapsed >= limit {
            scheduler.reportLongSchedule((current ?? currentJob)?.scheduleDescription ?? "a Swift task", nanoseconds: elapsed)
        }
        // A job that took a clock tick or more: fire the timers due meanwhile now, not after
        // up to 15 more jobs (each may be as long), so a timeout is late by one job at most.
        if elapsed > 0 { scheduler.timers.fireDue() }
        current = nil
        currentJob = nil
    }

    /// Spins a bounded number of rounds looking for work (timers, the global queue, other
    /// workers' queues), then parks until woken or until the next timer is due.
    ///
    /// Why no wake-up is lost (the argument Go's `proc.go` makes for `findrunnable`), with
    /// every count below read and written sequentially consistent:
    /// - A producer makes work visible first (the global queue's count, or a worker queue's
    ///   hint under its lock), then reads `parkedCount` and `spinning` (``Scheduler/wakeIdle()``).
    /// - A worker about to park first counts itself in `parkedCount` (``Scheduler/registerParked(_:)``),
    ///   then looks for visible work once more (``Scheduler/hasVisibleWork()``), then parks.
    /// - Of the producer's write and the worker's, one comes first in the single order:
    ///   either the worker sees the work and does not park, or the producer sees the worker
    ///   parked and unparks one. If it skipped the unpark because a worker was spinning, that
    ///   spinner does the same final check before it parks. The `Parker` keeps an unpark that
    ///   comes before its park, so the window between the check and the park loses nothing.
    /// - A job a running worker puts in its own `runnext` wakes nobody: that worker runs it
    ///   when its current job returns (others may steal it after ``runnextStealAfter``).
    /// - Timers: the worker marks itself parked with no deadline (`parkedUntil`), then reads
    ///   the earliest deadline and sleeps until it. A timer that becomes the earliest wakes a
    ///   worker whose `parkedUntil` is later (`onNewEarliest`). Both sides write, then read the
    ///   other's word, sequentially consistent: either the worker reads the new deadline, or
    ///   the timer sees the worker's mark and wakes it (the Parker keeps an early unpark).
    private func findWorkOrPark() -> Runnable? {
        let s = scheduler
        s.spinning.add(1, ordering: .sequentiallyConsistent)
        if seen.count != s.workers.count { seen = Array(repeating: (.max, 0), count: s.workers.count) }
        for i in seen.indices { seen[i] = (.max, 0) }
        var round = 0
        while round < max(1, s.configuration.spinIterations / 64) && !s.stopping.load(ordering: .relaxed) {
            s.timers.fireDue()
            if let r = popLocal() ?? s.popGlobal() ?? stealOnce(&seen) {
                s.spinning.subtract(1, ordering: .sequentiallyConsistent)
                return r
            }
            for _ in 0..<64 { spinPause() }
            round += 1
        }
        s.spinning.subtract(1, ordering: .sequentiallyConsistent)

        s.registerParked(index)
        if s.hasVisibleWork() || s.stopping.load(ordering: .relaxed) {
            s.unregisterParked(index)
            return nil
        }
        parkedUntil.store(.max, ordering: .sequentiallyConsistent)
        let deadline = s.timers.nextDeadline
        parkedUntil.store(deadline, ordering: .sequentiallyConsistent)
        let parkedAt = MonotonicClock.now
        parkedSince.store(parkedAt, ordering: .relaxed)
        parker.park(deadline: deadline)
        parkedNanos.store(parkedNanos.load(ordering: .relaxed) &+ (MonotonicClock.now &- parkedAt), ordering: .relaxed)
        parkedSince.store(0, ordering: .relaxed)
        parkedUntil.store(0, ordering: .relaxed)
        s.unregisterParked(index)
        s.timers.fireDue()
        // This worker may now take a job that holds it for long (a handler that blocks),
        // and a running worker fires timers only between jobs. It may also be the one a
        // timer woke (``Scheduler/wakeForTimer(_:)`` wakes one parked worker) while another
        // still sleeps past that timer: pass the duty on, so that while any worker is
        // parked, one of them sleeps no later than the earliest timer.
        let next = s.timers.nextDeadline
        if next != .max { s.wakeForTimer(next) }
        return nil
    }

    /// A worker whose job count has not moved for this long is stuck on one job, and its
    /// runnext slot may be stolen (Go waits about 3 µs; wake-ups cost ~50 µs here).
    static let runnextStealAfter: UInt64 = 50_000

    private func stealOnce(_ seen: inout [(ticks: UInt64, since: UInt64)]) -> Runnable? {
        let all = scheduler.workers
        let n = all.count
        guard n > 1 else { return nil }
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let start = Int(rng % UInt64(n))
        for k in 0..<n {
            let victim = all[(start + k) % n]
            if victim === self { continue }
            let t = victim.ticks.load(ordering: .relaxed)
            var stuck = false
            if victim.hasNextHint.load(ordering: .relaxed) {
                let now = MonotonicClock.now
                if seen[victim.index].ticks == t {
                    stuck = now - seen[victim.index].since >= Self.runnextStealAfter
                } else {
                    seen[victim.index] = (t, now)
                }
            }
            guard stuck || victim.queuedHint.load(ordering: .relaxed) > 0 else { continue }
            if let r = victim.steal(into: self, includeNext: stuck) {
                steals.store(steals.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
                return r
            }
        }
        return nil
    }
}

@inline(__always)
func spinPause() {
    parley_cpu_relax()
}
