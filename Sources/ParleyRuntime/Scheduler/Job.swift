/// A unit of work the scheduler runs that is not a Swift task: Parley's callback
/// processes are jobs. Subclasses override ``run(budget:)``.
///
/// ```swift
/// final class Hello: ScheduledJob {
///     override func run(budget: Int) { print("hello from a scheduler thread") }
/// }
/// Scheduler.shared.enqueue(Hello())
/// ```
open class ScheduledJob: @unchecked Sendable {
    // @unchecked Sendable: the base class has no stored state; subclasses document their own.
    public init() {}

    /// Runs the job once. `budget` is the number of reductions the job may use
    /// before it should give the scheduler back (the BEAM's 4000 by default).
    open func run(budget: Int) {}

    /// How the long-schedule detector names this job in its report (a pid and name for processes).
    open var scheduleDescription: String { "job" }
}

/// What sits in a run queue: a Swift task's job (sequential processes are tasks on
/// Parley's own `TaskExecutor`) or a ``ScheduledJob``.
@usableFromInline
enum Runnable: @unchecked Sendable {
    // @unchecked Sendable: an UnownedJob is handed to exactly one worker, which runs it once.
    case task(UnownedJob)
    case job(ScheduledJob)
}
