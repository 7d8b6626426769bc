#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Scheduler {
    /// How a scheduler is set up: the counterpart of `erl +S`, the reduction budget and
    /// `erlang:system_monitor(long_schedule)`.
    ///
    /// ```swift
    /// try Scheduler.configure(.init(schedulers: 2, reductions: 4000))
    /// ```
    public struct Configuration: Sendable {
        /// Scheduler threads; one per core by default (`PARLEY_SCHEDULERS` overrides it, like `erl +S`).
        public var schedulers: Int
        /// Reductions a process may use before it goes to the back of the run queue (BEAM: 4000).
        /// One reduction is counted at least once per message handled.
        public var reductions: Int
        /// A job that holds a scheduler longer than this is reported through swift-log; `nil` turns it off.
        public var longScheduleLimit: Duration?
        /// How many times an idle scheduler looks for work before it parks its thread.
        public var spinIterations: Int
        /// The most threads the blocking pool (the BEAM's dirty schedulers) grows to.
        public var blockingThreads: Int

        public init(
            schedulers: Int = Configuration.defaultSchedulers,
            reductions: Int = 4000,
            longScheduleLimit: Duration? = .milliseconds(100),
            spinIterations: Int = 2000,
            blockingThreads: Int = 16
        ) {
            self.schedulers = max(1, schedulers)
            self.reductions = max(1, reductions)
            self.longScheduleLimit = longScheduleLimit
            self.spinIterations = max(0, spinIterations)
            self.blockingThreads = max(1, blockingThreads)
        }

        /// One per online core, or `PARLEY_SCHEDULERS` when set.
        public static var defaultSchedulers: Int {
            if let s = getenv("PARLEY_SCHEDULERS"), let n = Int(String(cString: s)), n > 0 { return n }
            return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        }
    }
}
