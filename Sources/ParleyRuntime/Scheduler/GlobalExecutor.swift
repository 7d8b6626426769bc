#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Swift's global executor taken over by Parley's schedulers, through the Concurrency
/// runtime's enqueue hook (the route SwiftNIO's
/// `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()`
/// takes; Swift 6.3 has no supported API for it).
extension Scheduler {
    typealias EnqueueOriginal = @convention(thin) (UnownedJob) -> Void
    typealias EnqueueHook = @convention(thin) (UnownedJob, EnqueueOriginal) -> Void

    private static let installed = Atomic<Bool>(false)
    static let globalTaskExecutor = globalConcurrentExecutor.asUnownedTaskExecutor()

    /// Whether ``unsafeTryInstallAsGlobalExecutor()`` succeeded: processes then start as
    /// plain detached tasks (no task-executor preference to consult on each switch).
    public static var isGlobalExecutor: Bool { installed.load(ordering: .acquiring) }

    /// Makes ``shared`` Swift's global executor: every task without an executor preference
    /// (`Task {}`, `Task.detached {}`, async `main`) then runs on Parley's scheduler threads,
    /// and sequential processes start without a task-executor preference, which saves the
    /// runtime's status-record lock on each suspension and resumption.
    ///
    /// Opt-in and unsafe, with the caveats SwiftNIO states for its own takeover: it writes
    /// an unsupported runtime hook (`swift_task_enqueueGlobal_hook`); call it once, first
    /// thing in `main`, before any other concurrency; it cannot be undone. Delayed jobs
    /// (`Task.sleep`) still go through the runtime's default executor and come back on the
    /// next resumption. Blocking calls in a plain `Task {}` then hold a Parley scheduler
    /// thread, as they would in a process.
    ///
    /// ```swift
    /// @main struct App {
    ///     static func main() async throws {
    ///         _ = Scheduler.unsafeTryInstallAsGlobalExecutor()
    ///         // ...
    ///     }
    /// }
    /// ```
    /// - Returns: false if the hook is missing or already taken.
    public static func unsafeTryInstallAsGlobalExecutor() -> Bool {
        guard let handle = dlopen(nil, RTLD_NOW),
              let symbol = dlsym(handle, "swift_task_enqueueGlobal_hook") else { return false }
        // The hook variable holds a thin function pointer; nil means "not installed". Written
        // once, before the jobs it routes exist, as SwiftNIO does.
        let slot = symbol.assumingMemoryBound(to: EnqueueHook?.self)
        guard slot.pointee == nil else { return false }
        let hook: EnqueueHook = { job, _ in Scheduler.withShared { $0.wake(.task(job)) } }
        slot.pointee = hook
        installed.store(true, ordering: .releasing)
        return true
    }
}
