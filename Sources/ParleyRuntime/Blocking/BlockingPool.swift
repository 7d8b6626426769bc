import DequeModule
import Synchronization

/// A pool of OS threads for blocking and CPU-heavy work, kept apart from the scheduler
/// threads (the BEAM's dirty schedulers, core.async's `thread`). Threads start on demand up
/// to a limit and retire after 30 s idle.
///
/// ```swift
/// let bytes = try await Scheduler.shared.blocking.run { try readWholeFile(path) }
/// ```
public final class BlockingPool: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is inside `state`, a `Locked`.
    private struct State {
        var work = Deque<@Sendable () -> Void>()
        var idle: [Parker] = []
        var threads = 0
        var busy = 0
    }

    private let state = Locked<State>(State())
    /// The most threads the pool starts.
    public let maxThreads: Int

    init(maxThreads: Int) { self.maxThreads = maxThreads }

    /// Threads currently started, and how many of them are running work.
    public var threadCounts: (started: Int, busy: Int) { state.withLock { ($0.threads, $0.busy) } }

    /// Runs `work` on a pool thread; returns at once.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        enum Next { case none, unpark(Parker), start }
        let next = state.withLock { s -> Next in
            s.work.append(work)
            if let p = s.idle.popLast() { return .unpark(p) }
            if s.threads < maxThreads { s.threads += 1; return .start }
            return .none
        }
        switch next {
        case .none: break
        case .unpark(let p): p.unpark()
        case .start:
            let n = state.withLock { $0.threads }
            startThread(name: "parley-blocking-\(n)") { [self] in self.threadLoop() }
        }
    }

    /// Runs `work` on a pool thread and suspends the caller (without holding a scheduler
    /// thread) until it returns or throws.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        // Through `awaitResult`: the pool thread's resume often wins the race with the task's
        // suspension (short work), the case the thread sanitizer cannot order.
        try await awaitResult { deliver in
            submit { deliver(Result { try work() }) }
        }
    }

    private func threadLoop() {
        let parker = Parker()
        while true {
            enum Step { case run(@Sendable () -> Void), park, exit }
            let step = state.withLock { s -> Step in
                if let w = s.work.popFirst() { s.busy += 1; return .run(w) }
                s.idle.append(parker)
                return .park
            }
            switch step {
            case .run(let w):
                w()
                state.withLock { $0.busy -= 1 }
            case .park:
                parker.park(deadline: MonotonicClock.deadline(after: .seconds(30)))
                let retire = state.withLock { s -> Bool in
                    // Still on the idle list: nobody woke us, so we timed out; retire if no work.
                    if let i = s.idle.firstIndex(where: { $0 === parker }), s.work.isEmpty {
                        s.idle.remove(at: i)
                        s.threads -= 1
                        return true
                    }
                    if let i = s.idle.firstIndex(where: { $0 === parker }) { s.idle.remove(at: i) }
                    return false
                }
                if retire { return }
            case .exit:
                return
            }
        }
    }
}
