import CParleyShims
import ParleyRuntime
import Synchronization

/// Whoever waits for one or more channel operations: a parked task, a blocked thread, a
/// callback, a process in `receive`, or a `select` over several cases. It completes exactly
/// once: the party that moves `state` from `waiting` to `done` (a channel, a timer, a
/// cancellation) owns the completion, writes `winner`, and wakes it (core.async's handler
/// flag, Go's `selectDone`).
///
/// Two waiters are claimed together when two selects meet on one channel: each is first
/// moved to `busy` in address order, so two claimers never wait for each other (no cycle).
@usableFromInline
package class Waiter: ScheduledJob, @unchecked Sendable {
    // @unchecked Sendable: `winner`, `wake` and the cells' values are written by the one
    // party that claimed `state` (or by the owner before it publishes the waiter under a
    // channel lock) and read by the owner after it is woken; the wake (continuation resume,
    // Parker, process lock, job enqueue) orders those accesses.
    @usableFromInline
    static let waiting: UInt8 = 0, busy: UInt8 = 1, done: UInt8 = 2

    @usableFromInline
    final let state = Atomic<UInt8>(Waiter.waiting)
    /// The wake hand-shake: 0 until the owner has set `wake` (armed, 1) or a claimer has
    /// signalled first (2), in which case the owner does not sleep at all.
    @usableFromInline
    final let armState = Atomic<UInt8>(0)
    /// The index of the case that completed; `cancelledIndex` or `timeoutIndex` otherwise.
    @usableFromInline
    @exclusivity(unchecked) package final var winner: Int = -1
    @exclusivity(unchecked) final var wake: Wake = .none
    /// Wake a parked task behind the work queued on the waking thread, not next (see
    /// `SelectEngine.choose`). Set by the owner before it arms.
    @usableFromInline @exclusivity(unchecked) final var wakeBehind = false

    @usableFromInline
    package static let cancelledIndex = -2
    @usableFromInline
    static let timeoutIndex = -3

    package enum Wake {
        case none
        case task(UnsafeContinuation<Void, Never>)
        case thread(Parker)
        /// Run this waiter as a scheduler job (a callback cell).
        case schedule
        /// Something that parks elsewhere and is woken by a call (a process in a receive
        /// that also selects over channels: `Parley`'s select over a mailbox).
        case wakeable(any ChannelWakeable)
    }

    @inlinable
    override package init() {}

    override package var scheduleDescription: String { "channel callback" }

    /// Whether the completion has been signalled, so its results can be read (a thread
    /// that polls instead of being resumed waits for this, not for `state`).
    @inlinable
    package final var isSignalled: Bool { armState.load(ordering: .acquiring) >= 2 }

    /// Whether nobody has completed this waiter yet (stale as soon as it is read).
    @inlinable
    final var isWaiting: Bool { state.load(ordering: .acquiring) != Waiter.done }

    /// Completes this waiter alone (it is the only party involved).
    @inlinable
    package final func claim() -> Bool { leaveWaiting(for: Waiter.done) }

    /// Takes the busy lock on this waiter; false if it completed already.
    @inlinable
    final func lockForPair() -> Bool { leaveWaiting(for: Waiter.busy) }

    /// Moves `state` from waiting to `next`, waiting out another claimer's brief busy lock;
    /// false if the waiter completed already.
    @inlinable
    final func leaveWaiting(for next: UInt8) -> Bool {
        while true {
            let (ok, seen) = state.compareExchange(expected: Waiter.waiting, desired: next, ordering: .acquiringAndReleasing)
            if ok { return true }
            if seen == Waiter.done { return false }
            parley_cpu_relax()
        }
    }

    @usableFromInline
    enum PairClaim { case claimed, selfGone, otherGone }

    /// Completes `me` (a select that is registering) and `other` (a waiter parked in a
    /// channel) together, or neither.
    @inlinable
    static func claimPair(_ me: Waiter, _ other: Waiter) -> PairClaim {
        let meFirst = ObjectIdentifier(me) < ObjectIdentifier(other)
        let (a, b) = meFirst ? (me, other) : (other, me)
        guard a.lockForPair() else { return a === me ? .selfGone : .otherGone }
        guard b.lockForPair() else {
            a.state.store(Waiter.waiting, ordering: .releasing)
            return b === me ? .selfGone : .otherGone
        }
        a.state.store(Waiter.done, ordering: .releasing)
        b.state.store(Waiter.done, ordering: .releasing)
        return .claimed
    }

    /// Sets how the owner is woken. Returns false if it was completed already, so it must
    /// not sleep (the completion happened between queueing and arming).
    package final func arm(_ how: Wake) -> Bool {
        wake = how
        return armState.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged
    }

    /// Arms the waiter to wake the calling thread; returns the thread's parker.
    @usableFromInline
    final func armThread() -> Parker {
        if Scheduler.isSchedulerThread { ChannelErrors.warnBlockingOnScheduler() }
        let p = Parker.forCurrentThread
        _ = arm(.thread(p))
        return p
    }

    /// Arms the waiter to run itself as a scheduler job when it is completed (callbacks).
    @usableFromInline
    final func armCallback() {
        _ = arm(.schedule)
    }

    /// Forgets the wake (the operation completed at once).
    @usableFromInline
    final func disarm() { wake = .none }

    /// Wakes the owner after a claim (and after the claimer wrote the results); call it
    /// outside channel locks.
    @usableFromInline
    final func signal() {
        if armState.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged { return }
        let how = wake
        wake = .none
        armState.store(3, ordering: .releasing)
        switch how {
        case .none: break
        case .task(let c):
            if wakeBehind { Scheduler.wakeBehind { c.resume() } } else { c.resume() }
        case .thread(let p): p.unpark()
        case .schedule: Scheduler.withShared { $0.enqueue(self) }
        case .wakeable(let w): w.wakeFromChannel()
        }
    }
}

/// One operation of a waiter, queued in one channel: a value to send, or a slot for the
/// value received. A single send or receive is its own waiter (`group == nil`); each case
/// of a select is a cell whose owner is the select's waiter.
///
/// `Cell<Value>` is `SlotCell<Value?>`: the stored field's type is the class's own generic
/// parameter, so code that is not specialized for the value's type (the class's deinit, a
/// callback cell's `run`, both reached through the vtable) finds its metadata in the
/// class's metadata. A field of type `Value?` made each of them look `Optional<Value>`'s
/// metadata up in the runtime's table (a hashed, locked lookup): 15–20 % of a callback
/// channel hop.
@usableFromInline
typealias Cell<Value> = SlotCell<Value?>

/// A ``Cell`` by its stored type (always `Value?`; see ``Cell``).
@usableFromInline
class SlotCell<Slot: ExpressibleByNilLiteral>: Waiter, @unchecked Sendable {
    // @unchecked Sendable: see Waiter; `value` and `closed` follow the same claim discipline.
    /// The select this cell is a case of (nil: the cell is its own waiter). Strong, so a dead
    /// cell left in a channel's queue can still be asked whether its owner completed.
    @usableFromInline
    final let group: Waiter?
    @usableFromInline
    final let index: Int
    /// Send: the value to deliver. Receive: the value delivered (nil with `closed`).
    @usableFromInline
    @exclusivity(unchecked) final var value: Slot
    /// Receive: the channel was closed and drained. Send: the channel was closed first.
    @usableFromInline
    @exclusivity(unchecked) final var closed = false

    /// A cell that is its own waiter (a single send or receive).
    @inlinable
    init(value: Slot) {
        self.group = nil
        self.index = 0
        self.value = value
        super.init()
    }

    /// A select case's cell.
    @inlinable
    init(owner: Waiter, index: Int, value: Slot) {
        self.group = owner
        self.index = index
        self.value = value
        super.init()
    }

    @inlinable
    final var owner: Waiter { group ?? self }
}

/// A cell whose completion runs a callback as a scheduler job (core.async's `put!` and
/// `take!`): the cell is the job, so a callback operation allocates one object.
@usableFromInline
typealias CallbackCell<Value> = CallbackSlotCell<Value?>

/// A ``CallbackCell`` by its stored type (always `Value?`; see ``Cell``).
@usableFromInline
final class CallbackSlotCell<Slot: ExpressibleByNilLiteral>: SlotCell<Slot>, @unchecked Sendable {
    // @unchecked Sendable: see Waiter; the handlers are immutable.
    @usableFromInline let onPut: (@Sendable (Bool) -> Void)?
    @usableFromInline let onTake: (@Sendable (Slot) -> Void)?

    @inlinable
    init(put value: Slot, _ onPut: (@Sendable (Bool) -> Void)?) {
        self.onPut = onPut
        self.onTake = nil
        super.init(value: value)
    }

    @inlinable
    init(take onTake: @escaping @Sendable (Slot) -> Void) {
        self.onPut = nil
        self.onTake = onTake
        super.init(value: nil)
    }

    override func run(budget: Int) {
        if let onTake {
            let v = value
            value = nil
            onTake(v)
        } else {
            onPut?(winner != Waiter.cancelledIndex)
        }
    }
}

/// An owner of a ``Waiter`` that is woken by a call rather than a continuation or a parker:
/// `Parley`'s processes, whose receive can also wait for channel cases. Called once, outside
/// channel locks, after the waiter completed.
package protocol ChannelWakeable: AnyObject, Sendable {
    func wakeFromChannel()
}
