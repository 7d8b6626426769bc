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
    fileprivate let action: @Sendable () -> Void
    fileprivate weak let queue: TimerQueue?

    fileprivate static let pending: UInt8 = 0, fired: UInt8 = 1, cancelled: UInt8 = 2

    fileprivate init(deadline: UInt64, queue: TimerQueue, action: @escaping @Sendable () -> Void) {
        self.deadline = deadline
        self.queue = queue
        self.action = action
    }

    /// Cancels the timer. Returns `true` if it had not fired yet, so it never will;
    /// `false` if it already fired or was cancelled before (as `erlang:cancel_timer` returns `false`).
    @discardableResult
    public func cancel() -> Bool {
        let (exchanged, _) = state.compareExchange(
            expected: Self.pending, desired: Self.cancelled, ordering: .acquiringAndReleasing)
        if exchanged { queue?.noteCancelled() }
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
        let timer: ScheduledTimer
        static func < (a: Entry, b: Entry) -> Bool { (a.deadline, a.seq) < (b.deadline, b.seq) }
        static func == (a: Entry, b: Entry) -> Bool { a.deadline == b.deadline && a.seq == b.seq }
    }

    private struct State {
        var heap = Heap<Entry>()
        var seq: UInt64 = 0
        var cancelled = 0
    }

    private let state = Locked<State>(State())
    private let nextDeadlineValue = Atomic<UInt64>(.max)
    var onNewEarliest: (@Sendable () -> Void)?

    init() {}

    /// The deadline of the earliest pending timer, or `UInt64.max`.
    public var nextDeadline: UInt64 { nextDeadlineValue.load(ordering: .acquiring) }

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
        let timer = ScheduledTimer(deadline: deadline, queue: self, action: action)
        let earliest = state.withLock { s -> Bool in
            s.seq &+= 1
            s.heap.insert(Entry(deadline: deadline, seq: s.seq, timer: timer))
            if deadline < nextDeadlineValue.load(ordering: .relaxed) {
                nextDeadlineValue.store(deadline, ordering: .releasing)
                return true
            }
            return false
        }
        if earliest { onNewEarliest?() }
        return timer
    }

    fileprivate func noteCancelled() {
        // Sweep cancelled timers once they outnumber live ones, so that long timeouts that are
        // almost always cancelled (call timeouts, receive ... after) don't pile up.
        state.withLock { s in
            s.cancelled += 1
            guard s.cancelled > 1024, s.cancelled * 2 > s.heap.count else { return }
            s.heap = Heap(s.heap.unordered.filter { $0.timer.isPending })
            s.cancelled = 0
            nextDeadlineValue.store(s.heap.min?.deadline ?? .max, ordering: .releasing)
        }
    }

    /// Runs every timer that is due. Returns whether any fired. Cheap when none is due:
    /// one atomic load.
    @discardableResult
    public func fireDue() -> Bool {
        guard nextDeadlineValue.load(ordering: .acquiring) != .max else { return false }
        let now = MonotonicClock.now
        guard nextDeadlineValue.load(ordering: .acquiring) <= now else { return false }
        var due: [ScheduledTimer] = []
        state.withLock { s in
            while let top = s.heap.min, top.deadline <= now {
                _ = s.heap.popMin()
                if top.timer.isPending { due.append(top.timer) } else if s.cancelled > 0 { s.cancelled -= 1 }
            }
            nextDeadlineValue.store(s.heap.min?.deadline ?? .max, ordering: .releasing)
        }
        var fired = false
        for timer in due {
            let (exchanged, _) = timer.state.compareExchange(
                expected: ScheduledTimer.pending, desired: ScheduledTimer.fired, ordering: .acquiringAndReleasing)
            if exchanged { timer.action(); fired = true }
        }
        return fired
    }
}
