import HeapModule
import Synchronization

/// A timer scheduled on a ``TimerQueue``: it fires its action once on a scheduler thread,
/// unless it is cancelled first.
///
/// ```swift
/// let timer = Scheduler.shared.timers.schedule(after: .milliseconds(50)) { print("fired") }
/// if timer.cancel() { print("cancelled with \(timer.remaining ?? .zero) left") }
/// ```
public final class ScheduledTimer: Sendable {
    /// Monotonic nanoseconds at which the timer fires.
    public let deadline: UInt64
    fileprivate let state = Atomic<UInt8>(ScheduledTimer.pending)
    /// What firing does.
    fileprivate let action: @Sendable () -> Void
    /// Strong: a weak reference would move the queue's reference count to a side table and
    /// make every retain of it slow. A timer in the heap and its queue form a cycle only until
    /// the timer leaves the heap (fired, or cancelled and swept).
    fileprivate let queue: TimerQueue

    fileprivate static let pending: UInt8 = 0, fired: UInt8 = 1, cancelled: UInt8 = 2

    fileprivate init(deadline: UInt64, queue: TimerQueue, action: @escaping @Sendable () -> Void) {
        self.deadline = deadline
        self.queue = queue
        self.action = action
    }

    fileprivate func fire() {
        action()
    }

    /// Cancels the timer. Returns `true` if it had not fired yet, so it never will;
    /// `false` if it already fired or was cancelled before (as `erlang:cancel_timer` returns `false`).
    @discardableResult
    public func cancel() -> Bool {
        let (exchanged, _) = state.compareExchange(
            expected: Self.pending, desired: Self.cancelled, ordering: .acquiringAndReleasing)
        if exchanged { queue.noteCancelled(self) }
        return exchanged
    }

    /// Whether the timer has neither fired nor been cancelled.
    public var isPending: Bool { state.load(ordering: .acquiring) == Self.pending }

    /// Time left until the timer fires, or `nil` if it fired or was cancelled (`erlang:read_timer`).
    public var remaining: Duration? {
        guard isPending else { return nil }
        let now = MonotonicClock.now
        return .nanoseconds(Int64(deadline > now ? deadline - now : 0))
    }
}

/// The scheduler's timers: a min-heap under one lock, checked by scheduler threads between
/// jobs and used as the deadline when they park. No thread or task per timer.
public final class TimerQueue: @unchecked Sendable {
    // @unchecked Sendable: `state` is `Locked` and `nextDeadlineValue` an Atomic; `onNewEarliest`
    // is set once by the Scheduler before the queue is shared.
    private struct Entry: Comparable {
        let deadline: UInt64
        let seq: UInt64
        let job: Job
        static func < (a: Entry, b: Entry) -> Bool { (a.deadline, a.seq) < (b.deadline, b.seq) }
        static func == (a: Entry, b: Entry) -> Bool { a.deadline == b.deadline && a.seq == b.seq }

        /// A timer object, or a target that keeps its own armed state (no allocation).
        enum Job {
            case timer(ScheduledTimer)
            case target(any TimerTarget, UInt64)
        }

        var isPending: Bool {
            switch job {
            case .timer(let t): return t.isPending
            case .target(let t, let tag): return t.timerIsPending(tag)
            }
        }

        func isTimer(_ timer: ScheduledTimer) -> Bool {
            if case .timer(let t) = job { return t === timer }
            return false
        }
    }

    private struct State {
        var heap = Heap<Entry>()
        var seq: UInt64 = 0
        var cancelled = 0
    }

    private let state = Locked<State>(State())
    /// The earliest pending timer's deadline. Sequentially consistent, with a parking
    /// worker's `parkedUntil` (Worker.findWorkOrPark): either the worker reads the new
    /// earliest deadline, or the queue sees the worker parked past it and wakes it.
    private let nextDeadlineValue = Atomic<UInt64>(.max)
    /// Called with the deadline of a timer that became the earliest (outside the lock).
    /// Set once by the scheduler before the queue is shared, then only read.
    @exclusivity(unchecked) var onNewEarliest: (@Sendable (UInt64) -> Void)?

    init() {}

    /// The deadline of the earliest pending timer, or `UInt64.max`.
    public var nextDeadline: UInt64 { nextDeadlineValue.load(ordering: .sequentiallyConsistent) }

    /// The number of timers in the queue, cancelled ones not yet swept included.
    public var count: Int { state.withLock { $0.heap.count } }

    /// Schedules `action` to run once, on a scheduler thread, after `delay`.
    @discardableResult
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> ScheduledTimer {
        schedule(at: MonotonicClock.deadline(after: delay), action)
    }

    /// Schedules `action` to run once, on a scheduler thread, at the monotonic `deadline`.
    @discardableResult
    public func schedule(at deadline: UInt64, _ action: @escaping @Sendable () -> Void) -> ScheduledTimer {
        schedule(ScheduledTimer(deadline: deadline, queue: self, action: action))
    }

    /// Schedules `target.timerFired(tag)` at `deadline` with no allocation: the target keeps
    /// whether entry `tag` is live (``TimerTarget/timerIsPending(_:)``; the queue drops
    /// entries that are not), and when it gives one up before its deadline it may call
    /// ``noteCancelled(deadline:)`` to have it dropped sooner. How a process's receive and
    /// call timeouts are armed.
    package func schedule(at deadline: UInt64, target: any TimerTarget, tag: UInt64) {
        insert(deadline, .target(target, tag))
    }

    private func schedule(_ timer: ScheduledTimer) -> ScheduledTimer {
        insert(timer.deadline, .timer(timer))
        return timer
    }

    private func insert(_ deadline: UInt64, _ job: Entry.Job) {
        let earliest = state.withLock { s -> Bool in
            s.seq &+= 1
            s.heap.insert(Entry(deadline: deadline, seq: s.seq, job: job))
            if deadline < nextDeadlineValue.load(ordering: .relaxed) {
                nextDeadlineValue.store(deadline, ordering: .sequentiallyConsistent)
                return true
            }
            return false
        }
        if earliest { onNewEarliest?(deadline) }
    }

    fileprivate func noteCancelled(_ timer: ScheduledTimer) {
        noteCancelled { $0.isTimer(timer) }
    }

    /// A target disarmed its timer due at `deadline` (``schedule(at:target:tag:)``) before it
    /// fired: the queue drops it now if it is the earliest, or sweeps it later.
    package func noteCancelled(deadline: UInt64) {
        noteCancelled { $0.deadline == deadline && !$0.isPending }
    }

    private func noteCancelled(isTop: (Entry) -> Bool) {
        state.withLock { s in
            s.cancelled += 1
            if let top = s.heap.min, isTop(top) {
                // The earliest went: drop it and the cancelled ones behind it, so that the
                // deadline workers park until is a pending timer's, not a cancelled one's
                // (a call's timeout is almost always cancelled: parking until each of them
                // would wake an idle worker once per call).
                popCancelled(&s)
                nextDeadlineValue.store(s.heap.min?.deadline ?? .max, ordering: .sequentiallyConsistent)
            } else if s.cancelled > 1024, s.cancelled * 2 > s.heap.count {
                // Sweep cancelled timers once they outnumber live ones, so that long timeouts
                // cancelled out of order don't pile up.
                s.heap = Heap(s.heap.unordered.filter { $0.isPending })
                s.cancelled = 0
                nextDeadlineValue.store(s.heap.min?.deadline ?? .max, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// Removes cancelled timers from the top of the heap: afterwards its minimum is pending.
    private func popCancelled(_ s: inout State) {
        while let top = s.heap.min, !top.isPending {
            _ = s.heap.popMin()
            if s.cancelled > 0 { s.cancelled -= 1 }
        }
    }

    /// Runs every timer that is due. Returns whether any fired. Cheap when none is due:
    /// one atomic load.
    @discardableResult
    public func fireDue() -> Bool {
        guard nextDeadlineValue.load(ordering: .acquiring) != .max else { return false }
        let now = MonotonicClock.now
        guard nextDeadlineValue.load(ordering: .acquiring) <= now else { return false }
        var due: [Entry.Job] = []
        state.withLock { s in
            while let top = s.heap.min, top.deadline <= now {
                _ = s.heap.popMin()
                if top.isPending { due.append(top.job) } else if s.cancelled > 0 { s.cancelled -= 1 }
            }
            popCancelled(&s)
            nextDeadlineValue.store(s.heap.min?.deadline ?? .max, ordering: .sequentiallyConsistent)
        }
        var fired = false
        for job in due {
            switch job {
            case .timer(let timer):
                let (exchanged, _) = timer.state.compareExchange(
                    expected: ScheduledTimer.pending, desired: ScheduledTimer.fired, ordering: .acquiringAndReleasing)
                if exchanged { timer.fire(); fired = true }
            case .target(let target, let tag):
                // The target claims the timer against its own cancel (timerFired's contract).
                if target.timerFired(tag) { fired = true }
            }
        }
        return fired
    }
}

/// Something a timer calls when it fires (``TimerQueue/schedule(at:target:tag:)``), on a
/// scheduler thread, outside the queue's lock. It keeps its timer's armed state itself, so
/// the queue allocates nothing for it.
package protocol TimerTarget: AnyObject, Sendable {
    /// Whether timer `tag` is still armed (neither fired nor cancelled). The queue asks it
    /// under its lock, to drop cancelled timers: keep it to an atomic load.
    func timerIsPending(_ tag: UInt64) -> Bool
    /// Entry `tag` is due: act on it (or schedule a later entry). Returns whether it acted.
    func timerFired(_ tag: UInt64) -> Bool
}
