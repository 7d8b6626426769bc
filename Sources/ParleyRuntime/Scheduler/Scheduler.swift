import CParleyShims
import DequeModule
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Parley's scheduler: one OS thread per core by default, a run queue per thread with a
/// `runnext` slot (as Go's runtime has), work stealing, a short spin before parking, and
/// no thread wake-up while every scheduler is busy.
///
/// Sequential processes run as Swift tasks on ``executor`` (a `TaskExecutor`); callback
/// processes are ``ScheduledJob``s. Neither touches Swift's global executor or Dispatch.
///
/// ```swift
/// let scheduler = Scheduler.shared
/// let task = Task(executorPreference: scheduler.executor) { 40 + 2 }
/// print(await task.value)
/// ```
public final class Scheduler: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is `Locked` or an Atomic; `workers` is written
    // once in init before any thread starts.

    /// The configuration this scheduler runs with.
    public let configuration: Configuration
    /// The `TaskExecutor` that runs Swift tasks (sequential processes) on this scheduler's threads.
    public let executor: ParleyExecutor
    /// Timers that fire on the scheduler threads (no thread or task per timer).
    public let timers: TimerQueue
    /// The pool for blocking and CPU-heavy work (the BEAM's dirty schedulers).
    public let blocking: BlockingPool
    let logger: Logger
    // Unchecked exclusivity: set once in init, before any other thread sees the scheduler,
    // then only read (every job start and park reads it; the checks cost time on each).
    @exclusivity(unchecked) private(set) var workers: [Worker] = []
    let unownedExecutor: UnownedTaskExecutor

    private let global = Locked<Deque<Runnable>>([])
    private let globalCount = Atomic<Int>(0)
    private let parked = Locked<[Int]>([])
    let parkedCount = Atomic<Int>(0)
    let spinning = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let longScheduleNanos: UInt64
    private let longSchedules = Locked<(count: Int, recent: Deque<LongScheduleReport>)>((0, []))

    /// Starts a scheduler with its own threads. Most programs use ``shared``; tests and
    /// embedders may run several.
    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "parley.scheduler")) {
        self.configuration = configuration
        self.logger = logger
        self.longScheduleNanos = configuration.longScheduleLimit.map(MonotonicClock.nanoseconds) ?? 0
        let executor = ParleyExecutor()
        self.executor = executor
        self.unownedExecutor = executor.asUnownedTaskExecutor()
        self.timers = TimerQueue()
        self.blocking = BlockingPool(maxThreads: configuration.blockingThreads)
        executor.scheduler = self
        timers.onNewEarliest = { [unowned self] in self.wakeForTimer($0) }
        workers = (0..<configuration.schedulers).map { Worker(index: $0, scheduler: self) }
        for w in workers {
            startThread(name: "parley-sched-\(w.index)") { w.loop() }
        }
    }

    // MARK: The shared scheduler

    /// Runs `body` with ``shared``, borrowed: a call through `Scheduler.shared` retained and
    /// released the scheduler object around it, a write to one reference count that every
    /// wake-up on every core made (its cache line then crossed cores with the messages).
    /// Unretained: `shared` is a global constant, never released.
    ///
    /// ```swift
    /// Scheduler.withShared { $0.enqueue(job) }
    /// ```
    @inlinable @inline(__always)
    package static func withShared<R>(_ body: (Scheduler) throws -> R) rethrows -> R {
        try Unmanaged.passUnretained(shared)._withUnsafeGuaranteedRef(body)
    }

    private static let pending = Locked<(configuration: Configuration?, started: Bool)>((nil, false))

    /// The process-wide scheduler, started on first use with the configuration given to
    /// ``configure(_:)`` or the defaults.
    public static let shared: Scheduler = {
        let config = pending.withLock { state -> Configuration in
            state.started = true
            return state.configuration ?? Configuration()
        }
        return Scheduler(configuration: config)
    }()

    /// Sets the configuration of ``shared``. Call it before anything uses Parley.
    /// - Throws: ``SchedulerError/alreadyStarted`` once the shared scheduler runs.
    public static func configure(_ configuration: Configuration) throws(SchedulerError) {
        try pending.withLock { state throws(SchedulerError) in
            if state.started { throw SchedulerError.alreadyStarted }
            state.configuration = configuration
        }
    }

    /// Stops this scheduler's threads once they finish their current job. Jobs still queued
    /// are not run. For schedulers created in tests; never call it on ``shared``.
    public func shutdown() {
        stopping.store(true, ordering: .releasing)
        for w in workers { w.parker.unpark() }
    }

    // MARK: Enqueueing

    /// Makes a job runnable because something it waited for happened (a message arrived).
    /// On a scheduler thread the job goes to that thread's `runnext` slot, so a receiver runs
    /// right after its sender yields, on the same core, without waking any thread.
    @inlinable
    public func enqueue(_ job: ScheduledJob) { wake(.job(job)) }

    /// Puts a job behind all queued work: for a job that used up its reductions. Like Go's
    /// `Gosched`, it goes to the global queue, so work queued anywhere runs before it again.
    public func enqueueAtBack(_ job: ScheduledJob) {
        pushGlobal(.job(job))
    }

    @usableFromInline
    func wake(_ r: Runnable) {
        // The calling thread's worker, borrowed: a strong reference's retain and release
        // cost every wake-up two atomic writes.
        // Unretained: a thread's current worker outlives the job the thread runs.
        if let p = parley_get_current_worker(),
           Unmanaged<Worker>.fromOpaque(p)._withUnsafeGuaranteedRef({ wakeOn($0, r) }) {
            return
        }
        pushGlobal(r)
    }

    /// `r` to worker `w`'s runnext slot (the global queue if its current job asked to yield
    /// first); false if `w` belongs to another scheduler.
    @inline(__always)
    private func wakeOn(_ w: Worker, _ r: Runnable) -> Bool {
        guard w.scheduler === self else { return false }
        if w.yieldRequested {
            w.yieldRequested = false
            pushGlobal(r)
        } else {
            w.pushNext(r)
        }
        return true
    }

    func pushGlobal(_ r: Runnable) {
        global.withLock { $0.append(r) }
        globalCount.add(1, ordering: .sequentiallyConsistent)
        wakeIdle()
    }

    func popGlobal() -> Runnable? {
        guard globalCount.load(ordering: .relaxed) > 0 else { return nil }
        let r = global.withLock { $0.popFirst() }
        if r != nil { globalCount.subtract(1, ordering: .relaxed) }
        return r
    }

    /// Wakes one parked scheduler thread if there is one and none is already spinning
    /// (a spinning thread will find the work itself).
    func wakeIdle() {
        guard parkedCount.load(ordering: .sequentiallyConsistent) > 0,
              spinning.load(ordering: .sequentiallyConsistent) == 0 else { return }
        unparkOne()
    }

    /// A timer became the earliest: wake a worker that sleeps past its deadline (none if
    /// one will wake in time anyway, or none is parked: running workers fire timers between
    /// jobs). Its sequentially consistent read of `parkedUntil` pairs with the parking
    /// worker's store (see ``TimerQueue``'s `nextDeadlineValue`).
    func wakeForTimer(_ deadline: UInt64) {
        for w in workers {
            let until = w.parkedUntil.load(ordering: .sequentiallyConsistent)
            if until != 0 && until > deadline {
                w.parker.unpark()
                return
            }
        }
    }

    private func unparkOne() {
        let index = parked.withLock { list -> Int? in
            guard let i = list.popLast() else { return nil }
            parkedCount.subtract(1, ordering: .sequentiallyConsistent)
            return i
        }
        if let index { workers[index].parker.unpark() }
    }

    func registerParked(_ index: Int) {
        parked.withLock {
            $0.append(index)
            parkedCount.add(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Removes the worker from the parked list if nobody has popped it yet.
    func unregisterParked(_ index: Int) {
        parked.withLock { list in
            if let pos = list.firstIndex(of: index) {
                list.remove(at: pos)
                parkedCount.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// Whether any queue holds work (used by a worker about to park, after registering).
    func hasVisibleWork() -> Bool {
        if globalCount.load(ordering: .sequentiallyConsistent) > 0 { return true }
        for w in workers where w.hasWork() { return true }
        return false
    }

    // MARK: Long schedules

    func reportLongSchedule(_ description: String, nanoseconds: UInt64) {
        let report = LongScheduleReport(job: description, milliseconds: Double(nanoseconds) / 1e6)
        longSchedules.withLock {
            $0.count += 1
            $0.recent.append(report)
            if $0.recent.count > 64 { $0.recent.removeFirst() }
        }
        logger.warning("long_schedule", metadata: [
            "process": "\(description)",
            "ms": "\(Int(report.milliseconds))",
            "limit_ms": "\(longScheduleNanos / 1_000_000)",
        ])
    }

    /// What each scheduler thread has done so far, read without stopping it (each figure is
    /// an atomic read; together they are an estimate, as Erlang's `scheduler_wall_time` is).
    /// Utilization is the change of ``WorkerStatistics/parkedNanoseconds`` between two reads.
    ///
    /// ```swift
    /// let before = Scheduler.shared.statistics
    /// try await Task.sleep(for: .seconds(1))
    /// let after = Scheduler.shared.statistics
    /// for (a, b) in zip(before, after) { print(a.utilization(until: b)) }
    /// ```
    public var statistics: [WorkerStatistics] {
        let now = MonotonicClock.now
        return workers.map { w in
            let since = w.parkedSince.load(ordering: .relaxed)
            let ongoing = since != 0 && now > since ? now - since : 0
            return WorkerStatistics(
                index: w.index, at: now, jobsRun: w.ticks.load(ordering: .relaxed),
                steals: w.steals.load(ordering: .relaxed),
                parkedNanoseconds: w.parkedNanos.load(ordering: .relaxed) &+ ongoing,
                runQueueLength: w.queuedHint.load(ordering: .relaxed) + (w.hasNextHint.load(ordering: .relaxed) ? 1 : 0),
                isParked: since != 0)
        }
    }

    /// Jobs waiting in the global run queue (behind every worker's own queue).
    public var globalQueueLength: Int { globalCount.load(ordering: .relaxed) }

    /// The most recent long-schedule reports (at most 64), oldest first, and how many there were in all.
    public var longScheduleReports: (total: Int, recent: [LongScheduleReport]) {
        longSchedules.withLock { ($0.count, Array($0.recent)) }
    }

    /// Records which job the current scheduler thread is running, so that a long schedule is
    /// reported with its pid and name. Sequential processes call it when they resume.
    public static func noteRunning(_ job: ScheduledJob) {
        Worker.withCurrent { $0.current = job }
    }

    /// Sends the current Swift task to the back of its scheduler's run queue, as the BEAM does
    /// to a process whose reductions are used up.
    ///
    /// ```swift
    /// for i in 0..<1_000_000 { work(i); if i % 4000 == 0 { await Scheduler.yield() } }
    /// ```
    public static func yield() async {
        Worker.withCurrent { $0.yieldRequested = true }
        await Task.yield()
        Worker.withCurrent { $0.yieldRequested = false }
    }

    /// Counts one reduction for the Swift task running on this scheduler thread and says
    /// whether its budget is spent, so that code that never waits (a go block whose channel
    /// operations all complete at once) still lets timers and other work run.
    ///
    /// ```swift
    /// if Scheduler.reductionSpent() { await Scheduler.yield() }
    /// ```
    @inlinable
    public static func reductionSpent() -> Bool {
        parley_spend_reduction() != 0
    }

    /// Whether the calling thread is one of a scheduler's threads (where blocking stalls
    /// every process queued on it).
    public static var isSchedulerThread: Bool { parley_get_current_worker() != nil }

    /// The job the calling scheduler thread is running (as ``noteRunning(_:)`` recorded it),
    /// or nil off the schedulers.
    package static var runningJob: ScheduledJob? {
        Worker.withCurrent { $0.current ?? $0.currentJob } ?? nil
    }

    /// Runs `body` (which resumes a task) so that the task is queued behind the work already
    /// queued on this scheduler thread rather than in its `runnext` slot.
    package static func wakeBehind(_ body: () -> Void) {
        guard Worker.withCurrent({ $0.yieldRequested = true }) != nil else { body(); return }
        body()
        Worker.withCurrent { $0.yieldRequested = false }
    }

    /// Runs `body` on the calling thread, then, on the same thread, the processes and tasks
    /// that `body` made runnable (at most `limit` jobs; the rest go to the scheduler threads).
    ///
    /// For I/O threads: the BEAM's scheduler that polls a socket runs the process its input
    /// wakes, so a message from the network reaches a waiting process without a thread
    /// hand-off. Parley's distribution connections deliver each read this way. The woken
    /// process then runs on the I/O thread until it waits again or spends its reductions
    /// (then it goes to a scheduler thread), so a process that computes for long without
    /// receiving holds up that thread's I/O, as a callback process's handler would.
    /// On a scheduler thread, `body` just runs: what it wakes is queued there as usual.
    ///
    /// ```swift
    /// Scheduler.shared.runWoken(limit: 64) { deliverMessagesRead(from: socket) }
    /// ```
    public func runWoken(limit: Int, _ body: () -> Void) {
        if parley_get_current_worker() != nil { body(); return }
        let guest = Worker.guest(of: self)
        Worker.setCurrent(guest)
        body()
        var ran = 0
        guest.jobStart = MonotonicClock.coarse
        while ran < limit, let r = guest.popLocal() {
            guest.run(r)
            ran += 1
        }
        Worker.setCurrent(nil)
        // Back to an ordinary thread: its channel operations never spend a budget.
        if ran > 0 { parley_reset_reductions(0) }
        while let r = guest.popLocal() { pushGlobal(r) }
    }

    /// The number of scheduler threads.
    public var count: Int { workers.count }
}

/// A process or job that held a scheduler thread longer than the configured limit
/// (`erlang:system_monitor(long_schedule)`).
public struct LongScheduleReport: Sendable, CustomStringConvertible {
    /// The pid and name of the process, or a description of the job.
    public let job: String
    /// How long it ran without giving the scheduler back.
    public let milliseconds: Double
    public var description: String { "long_schedule: \(job) ran \(Int(milliseconds)) ms" }
}

/// One scheduler thread's counters (``Scheduler/statistics``).
public struct WorkerStatistics: Sendable, Hashable, Codable {
    /// The thread's index (`parley-sched-N`).
    public let index: Int
    /// When the counters were read, in monotonic nanoseconds.
    public let at: UInt64
    /// Jobs (process runs, Swift task slices, go blocks) run so far.
    public let jobsRun: UInt64
    /// Jobs taken from other threads' queues so far.
    public let steals: UInt64
    /// Nanoseconds spent parked (asleep with nothing to run) so far, a park going on included.
    public let parkedNanoseconds: UInt64
    /// Jobs in its own run queue (including the runnext slot).
    public let runQueueLength: Int
    /// Whether it is parked now.
    public let isParked: Bool

    /// The fraction of the time from this read to `later` the thread was not parked (0...1),
    /// as Erlang's `scheduler:utilization/1`.
    public func utilization(until later: WorkerStatistics) -> Double {
        guard later.at > at else { return 0 }
        let parked = later.parkedNanoseconds > parkedNanoseconds ? later.parkedNanoseconds - parkedNanoseconds : 0
        return max(0, min(1, 1 - Double(parked) / Double(later.at - at)))
    }
}

/// Errors from configuring the scheduler.
public enum SchedulerError: Error, Sendable, Equatable {
    /// ``Scheduler/configure(_:)`` was called after the shared scheduler had started.
    case alreadyStarted
}

/// The `TaskExecutor` of a Parley scheduler: tasks created with this executor preference
/// run on Parley's scheduler threads.
///
/// ```swift
/// Task(executorPreference: Scheduler.shared.executor) { /* runs on Parley's threads */ }
/// ```
public final class ParleyExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: `scheduler` is set once in Scheduler.init, before the executor is
    // published to any other thread.
    fileprivate(set) var scheduler: Scheduler!

    public func enqueue(_ job: consuming ExecutorJob) {
        // Borrowed, not retained: a scheduler and its workers hold one another and are never
        // freed, shut down or not.
        let job = UnownedJob(job)
        Unmanaged.passUnretained(scheduler)._withUnsafeGuaranteedRef { $0.wake(.task(job)) }
    }
}
