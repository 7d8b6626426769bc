import ParleyRuntime
import CParleyShims
import Synchronization

/// A process whose body is an async function that calls `receive`: a Swift task on
/// Parley's `TaskExecutor`, parked on an `UnsafeContinuation` while it waits.
@usableFromInline
final class SequentialProcess: ProcessCore, TimerTarget, @unchecked Sendable {
    // @unchecked Sendable: see ProcessCore; `task` is guarded by the process's shared lock
    // (no lock object of its own: one allocation less per process); `sinceYield` is the
    // owner's, as ProcessCore's `saved` is.

    // The owner's fields first: they follow ProcessCore's own (64 bytes or more after the
    // mailbox's status, see ProcessCore), and only sequential processes need them.
    /// The armed receive timeout's generation (0: none); see `armTimeout`.
    let armedTimer = Atomic<UInt32>(0)
    /// Messages taken since the process last yielded its thread.
    @exclusivity(unchecked) var sinceYield: UInt32 = 0
    @exclusivity(unchecked) private var task: Task<Void, any Error>? = nil
    /// The address of the Swift task running the body, to tell it from child tasks that
    /// inherit the `current` task-local. Written once before the body runs.
    @exclusivity(unchecked) private(set) var taskAddress: UInt = 0
    /// The body, from `start` until the task's `main` takes it: the task's closure then
    /// captures only `self`, and a closure whose one capture is an object uses that object
    /// as its context, so the spawn allocates no context (a 40-byte one for `self` and the
    /// body before; 16 bytes here). Written before the task is made, read once by it.
    @exclusivity(unchecked) private var pendingBody: (@Sendable @concurrent (Process) async throws -> Void)? = nil

    /// The process whose body the current task runs (set for the body's duration).
    @TaskLocal static var current: SequentialProcess?

    /// What calls and timeouts need (``WaitState``), made on first use under the shared
    /// lock: an idle process that never calls nor waits with a timeout carries one word for
    /// it. Other threads read it only under that lock (a reply) or after a timer entry it
    /// made was queued (the timer queue), both ordered after the write.
    @exclusivity(unchecked) private var waitState: WaitState? = nil

    /// The wait state, made if the process has none yet. `s` is the locked shared state
    /// (``withShared(_:)``'s argument): only a caller that holds the lock can pass it.
    private func waits(_ s: inout Shared) -> WaitState {
        if let w = waitState { return w }
        let w = WaitState()
        waitState = w
        return w
    }

    /// The last call message this process sent, reused once nothing else holds it
    /// (``Gen/CallMessage/reusing(_:from:request:)``). Touched by the owner only.
    @exclusivity(unchecked) var spareCall: Gen.CallMessage? = nil

    override func acceptReply(_ alias: UInt64, _ reply: any Sendable) -> Bool {
        guard let wake = withShared({ s -> Wake? in
            guard let w = waitState else { return nil }
            return s.mailbox.acceptReply(alias, reply, slot: &w.slot)
        }) else { return false }
        perform(wake)
        if let t = traceSession(.receive) { t.record(.receive, detail: String(describing: reply)) }
        return true
    }

    /// Starts call `alias` (``MailboxState/beginCall(_:local:slot:)``).
    func beginCall(_ alias: UInt64, local: Bool) {
        withShared { s in s.mailbox.beginCall(alias, local: local, slot: &waits(&s).slot) }
    }

    /// Starts local call `alias` (``MailboxState/beginCall(_:local:slot:)``, the reply slot
    /// open) and arms its timeout if it has a `deadline`, in one lock round trip. Returns the
    /// timer's generation (0: none) for ``awaitCall(_:generation:)`` and ``disarmTimeout(_:)``.
    func beginLocalCall(_ alias: UInt64, deadline: UInt64?) -> UInt32 {
        guard let deadline else {
            beginCall(alias, local: true)
            return 0
        }
        let (g, queue) = withShared { s -> (UInt32, Bool) in
            s.mailbox.beginCall(alias, local: true, slot: &waits(&s).slot)
            return armLocked(&s, deadline)
        }
        if queue { queueEntry(deadline) }
        return g
    }

    /// Ends call `alias`: its alias is deactivated; returns what the slot held.
    func endCall(_ alias: UInt64) -> (any Sendable)? {
        withShared { s in
            guard let w = waitState else { return nil }
            return s.mailbox.endCall(alias, slot: &w.slot)
        }
    }

    /// The server a local call monitors died (a monitor whose reference is the call's
    /// alias, ``Gen``): its DOWN goes to the reply slot, if the call still waits.
    override func callServerDied(_ alias: UInt64, reason: ExitReason) -> Bool {
        acceptReply(alias, Gen.CallDown(reason: reason))
    }

    /// Waits for local call `alias` to end: returns what its reply slot received (the reply,
    /// or a ``Gen/CallDown``), or nil once the call's timer (`generation`, 0: none) fired
    /// with the slot empty. The call has ended either way when this returns (its alias is
    /// deactivated; on a timeout, by the caller). A small function of its own, so that a
    /// process parked in a call keeps a small frame. Throws if the process is dead.
    func awaitCall(_ alias: UInt64, generation: UInt32) async throws -> (any Sendable)? {
        // Made by beginCall, which every call takes first.
        let w = waitState!
        while true {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                if !withShared({ $0.mailbox.parkForReply(c, alias: alias, generation: generation, slot: w.slot) }) { c.resume() }
            }
            switch withShared({ $0.mailbox.callStep(alias, generation: generation, slot: &w.slot) }) {
            case .done(let r):
                Scheduler.noteRunning(self)
                return r
            case .timedOut:
                Scheduler.noteRunning(self)
                return nil
            case .dead:
                throw ProcessExit(finalReason())
            case .wait:
                continue
            }
        }
    }

    /// The process the current task *is*: `nil` in a child task of a process (it inherits
    /// the task-local but does not own the mailbox), and outside any process.
    static func currentOwned() -> SequentialProcess? {
        guard let p = current else { return nil }
        return currentTaskAddress() == p.taskAddress ? p : nil
    }

    static func currentTaskAddress() -> UInt {
        // UnsafeCurrentTask is one pointer to the task object; compared, never dereferenced.
        withUnsafeCurrentTask { t in t.map { unsafeBitCast($0, to: UInt.self) } ?? 0 }
    }

    init(limit: MailboxLimit?, hosted: LocalNode?) {
        super.init(initialStatus: .running, limit: limit, hosted: hosted)
    }

    override var kind: Process.Kind { .sequential }

    // A receive's (or a call's) timeout, armed lazily. `armedTimer` (above) holds
    // the generation of the receive whose timeout is armed (0: none) and the wait state's
    // `armedDeadline` its deadline; its `queuedDeadline` is the deadline of the timer queue
    // entry the process counts on to look at them (0: none). Arming takes no timer-queue lock unless no entry
    // fires by the new deadline, and disarming is one atomic exchange: a process that calls
    // or receives with the same timeout over and over keeps one queue entry per timeout
    // period, which re-arms itself when it fires early (Go's timers move later the same way).
    // `armedDeadline` and `queuedDeadline` are written under the shared lock; `armedTimer` is
    // set under it and cleared by whichever of the receive's end and the firing entry
    // exchanges it first (relaxed: what a timeout changes is published under the lock, and
    // a stale firing finds its generation gone).

    func timerIsPending(_ tag: UInt64) -> Bool {
        waitState?.queuedDeadline.load(ordering: .relaxed) == tag
    }

    /// The queue entry due at `tag` fired: fires the armed timeout if it is due, else makes
    /// sure an entry fires by its deadline.
    func timerFired(_ tag: UInt64) -> Bool {
        let now = MonotonicClock.now
        let (wake, requeue) = withShared { s -> (Wake, UInt64) in
            guard let w = waitState else { return (.none, 0) }
            if w.queuedDeadline.load(ordering: .relaxed) == tag { w.queuedDeadline.store(0, ordering: .relaxed) }
            let g = armedTimer.load(ordering: .relaxed)
            guard g != 0 else { return (.none, 0) }
            if w.armedDeadline <= now {
                guard armedTimer.compareExchange(expected: g, desired: 0, ordering: .relaxed).exchanged else { return (.none, 0) }
                return (s.mailbox.timeout(g), 0)
            }
            return (.none, w.needsEntry(by: w.armedDeadline) ? w.armedDeadline : 0)
        }
        if requeue != 0 { queueEntry(requeue) }
        guard case .none = wake else {
            perform(wake)
            return true
        }
        return false
    }

    /// Arms the timeout of a receive that waits until `deadline` (no allocation); returns
    /// the generation it drew, to pass to the wait (``awaitMessages(beyond:generation:)``)
    /// and then to ``disarmTimeout(_:)``.
    @usableFromInline
    func armTimeout(_ deadline: UInt64) -> UInt32 {
        let (g, queue) = withShared { armLocked(&$0, deadline) }
        if queue { queueEntry(deadline) }
        return g
    }

    /// Puts the entry ``WaitState/needsEntry(by:)`` asked for in the timer queue (outside
    /// the shared lock).
    private func queueEntry(_ deadline: UInt64) {
        Scheduler.withShared { $0.timers.schedule(at: deadline, target: self, tag: deadline) }
    }

    /// Arms a timeout at `deadline` under the shared lock; returns its generation and whether
    /// the caller must put an entry for it in the timer queue (no entry fires by then).
    private func armLocked(_ s: inout Shared, _ deadline: UInt64) -> (UInt32, Bool) {
        let w = waits(&s)
        let g = s.mailbox.nextGeneration()
        w.armedDeadline = deadline
        armedTimer.store(g, ordering: .relaxed)
        return (g, w.needsEntry(by: deadline))
    }

    /// Disarms it when the receive ends first (a no-op if it fired). The queue entry stays:
    /// the next receive with a timeout uses it.
    @usableFromInline
    func disarmTimeout(_ g: UInt32) {
        if g != 0 { _ = armedTimer.compareExchange(expected: g, desired: 0, ordering: .relaxed) }
    }

    /// At exit: the queue entry is dropped (now if it is the earliest, else at its deadline
    /// or the next sweep), so it does not keep the process's object alive.
    func dropQueuedTimer() {
        let q = withShared { _ in waitState?.queuedDeadline.exchange(0, ordering: .relaxed) ?? 0 }
        if q != 0 { Scheduler.withShared { $0.timers.noteCancelled(deadline: q) } }
    }

    func start(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) {
        // With Parley as the global executor, no preference (it would only cost a check per
        // switch); otherwise a preference for Parley's executor. Written out twice, not through
        // a helper taking the closure: passing it on costs a reabstraction context per spawn.
        // The closures are typed as throwing though they never throw (`main` catches all):
        // the throwing `Task.detached` takes them as they are, where the non-throwing one
        // wraps each in a thunk, a 32-byte allocation per spawn. They capture only `self`
        // (the body waits in `pendingBody`): no context is allocated for them.
        pendingBody = body
        let t: Task<Void, any Error>
        if Scheduler.isGlobalExecutor {
            t = Task.detached { [self] () async throws in await self.main() }
        } else {
            t = Task.detached(executorPreference: Scheduler.shared.executor) { [self] () async throws in await self.main() }
        }
        withShared { _ in task = t }
        if !isAlive { t.cancel() }
    }

    private func main() async {
        let body = pendingBody!
        pendingBody = nil
        Scheduler.noteRunning(self)
        taskAddress = Self.currentTaskAddress()
        let reason: ExitReason
        do {
            try await Self.$current.withValue(self) { try await body(Process(core: self)) }
            reason = .normal
        } catch let e as ProcessExit {
            reason = e.reason
        } catch {
            reason = isAlive ? .error(error) : finalReason()
        }
        if isAlive { ExitSignals.exit(self, reason: reason) }
        dropQueuedTimer()
        spareCall = nil
        saved.removeAll()
        savedCount.store(0)
        withShared { _ in task = nil }
    }

    override func didDie(external: Bool, wasIdle: Bool) {
        // A process ended from outside stops at its next suspension point: receive throws,
        // and cancellation interrupts Task.sleep and other cancellable waits.
        if external { withShared { _ in task }?.cancel() }
    }

    func finalReason() -> ExitReason {
        withShared { $0.extras?.exitReason } ?? .killed
    }

    /// Selective receive: scans the mailbox in arrival order for the first message `match`
    /// accepts, removes it and returns true, leaving the others in place; false on timeout.
    /// `deadline` nil waits forever; a deadline in the past polls once (`after 0`).
    /// Not generic, so that it is compiled once; the public generic wrappers are inlinable.
    @usableFromInline
    func receive(deadline: UInt64?, from start: Int = 0, _ match: (any Sendable) throws -> Bool) async throws -> Bool {
        try await receive(deadline: deadline, from: start, also: .none, match) == .matched
    }

    /// The first step of a receive, without an async frame or a lock: takes the first
    /// message at or after `cursor` that `match` accepts if the owner's queue holds one
    /// (true), else leaves `cursor` past what it scanned for the waiting receive that
    /// follows (false), which moves in what arrived since. A process draining a backlog
    /// (fan-in's consumer, a busy server) takes most messages this way and allocates no task
    /// frame for them; one that waits for each message (ping-pong, a ring) pays a check
    /// that its queue is empty. The message counts a reduction; when the budget is spent,
    /// `yieldDue` says so and the caller yields (``yieldForReductions()``).
    @usableFromInline
    @inline(__always)
    func receiveNow(from cursor: inout Int, _ match: (any Sendable) throws -> Bool) throws -> Bool {
        // A bounded mailbox's drops of messages already in the owner's queue go first (and
        // move the cursor with them, never below 0: the wait that follows counts on it).
        if mailboxLimit > 0 { cursor = max(0, cursor - applyPendingDrops()) }
        guard !saved.isEmpty else { return false }
        guard isAlive else { throw ProcessExit(finalReason()) }
        guard try takeSaved(from: &cursor, match) == .taken else { return false }
        sinceYield &+= 1
        return true
    }

    /// ``receiveNow(from:_:)`` for a receive that takes any message: the first one in the
    /// owner's queue, moved out (no copy for a match to keep), or nil if the queue is empty.
    @usableFromInline
    @inline(__always)
    func receiveFirstNow() throws -> (any Sendable)? {
        if mailboxLimit > 0 { _ = applyPendingDrops() }
        guard !saved.isEmpty else { return nil }
        guard isAlive else { throw ProcessExit(finalReason()) }
        let m = saved.removeFirst()
        savedCount.store(saved.count)
        noteHandled()
        sinceYield &+= 1
        return m
    }

    /// Waits until the owner's queue holds more than `seen` messages: moves in what has
    /// arrived, or parks until a delivery does (invariant 2 of ``MailboxState``: a delivery
    /// before the park keeps it from parking). With `generation` (a timeout armed by
    /// ``armTimeout(_:)``), returns false once it fires and nothing new came. The waiting
    /// half of ``Process/receive()``, of the receives with a pattern, and of `sleep`,
    /// which scan what it moved in with ``receiveNow(from:_:)`` or ``receiveFirstNow()``.
    /// Kept apart from the scan, so that a parked process's suspended frame is this small
    /// one: a process waiting in `receive` then fits in its task's first allocation (about
    /// 1 KB less each). Throws if the process is dead.
    @usableFromInline
    func awaitMessages(beyond seen: Int = 0, generation: UInt32 = 0) async throws -> Bool {
        // A negative `seen` would return at once with nothing moved in, and a receive loop
        // would spin on it.
        let seen = max(0, seen)
        while saved.count <= seen {
            guard isAlive else { throw ProcessExit(finalReason()) }
            switch moveArrivals(generation: generation) {
            case .dead: throw ProcessExit(finalReason())
            case .timedOut: return false
            case .taken: continue
            case .empty, .refused: break
            }
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                if !withShared({ $0.mailbox.park(c, generation: generation) }) { c.resume() }
            }
            Scheduler.noteRunning(self)
        }
        return true
    }

    /// Moves in what has arrived, without waiting: whether the owner's queue now holds more
    /// than `seen` messages. For a receive whose deadline has passed (`after 0` polls).
    @usableFromInline
    func refillNow(beyond seen: Int) throws -> Bool {
        guard isAlive, moveArrivals() != .dead else { throw ProcessExit(finalReason()) }
        return saved.count > seen
    }

    /// Whether the messages taken since the last yield have spent the reduction budget.
    @usableFromInline
    var yieldDue: Bool {
        // The running job's budget is the scheduler's configured reductions, kept in a
        // thread-local by the worker that runs the process: reading it here, once per
        // message, costs no `swift_once` for `Scheduler.shared` (2 % of fan-in).
        let budget = parley_reduction_budget()
        return budget > 0 && Int(sinceYield) >= budget
    }

    /// Yields the scheduler thread once the budget is spent (as the BEAM preempts a process
    /// after its reductions), and starts counting again.
    @usableFromInline
    func yieldForReductions() async {
        sinceYield = 0
        await Scheduler.yield()
        Scheduler.noteRunning(self)
    }

    /// A wake source a receive waits on besides its mailbox.
    enum AlsoWake {
        case none
        /// A select's channel cases: the waiter wakes this process when one completes
        /// (``ProcessCore/wakeFromChannel()``), and a message is taken only if the select
        /// is still this receive's to win (`claim`).
        case select(Waiter)
    }

    enum Received { case matched, timedOut, woken }

    /// The one selective receive (`receive`, `select`, `Gen.call`): ``ProcessCore/take(from:generation:claim:_:)``
    /// from `start` (the BEAM's receive marker: messages before it cannot match), then park
    /// until a message arrives, the deadline passes, or `also` fires. Every message taken
    /// counts a reduction, and a spent budget yields the scheduler.
    @inline(__always)   // one async frame per receive: the wrappers above add none
    func receive(deadline: UInt64?, from start: Int, also: AlsoWake, _ match: (any Sendable) throws -> Bool) async throws -> Received {
        var cursor = start
        var generation: UInt32 = 0
        var armed = false
        defer { if armed { disarmTimeout(generation) } }
        var claim: (() -> Bool)? = nil
        if case .select(let w) = also { claim = { w.claim() } }
        while true {
            guard isAlive else { throw ProcessExit(finalReason()) }
            switch also {
            case .none: break
            case .select(let w): if w.isSignalled { return .woken }
            }
            switch try take(from: &cursor, generation: generation, claim: claim, match) {
            case .taken:
                sinceYield &+= 1
                if yieldDue { await yieldForReductions() }
                return .matched
            case .dead: throw ProcessExit(finalReason())
            case .timedOut: return .timedOut
            case .refused, .empty: break   // refused: a channel case won; its wake is on its way
            }
            if let deadline {
                if deadline <= MonotonicClock.now { return .timedOut }
                if !armed {
                    generation = armTimeout(deadline)
                    armed = true
                }
            }
            let g = generation
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let parked = withShared { s -> Bool in
                    switch also {
                    case .none: return s.mailbox.park(c, generation: g)
                    case .select(let w): return s.mailbox.park(c, generation: g, signalled: w.isSignalled)
                    }
                }
                if !parked { c.resume() }
            }
            Scheduler.noteRunning(self)
        }
    }
}

/// What a sequential process needs once it calls or waits with a timeout (made on first
/// use, ``SequentialProcess``): the reply slot of its local calls and its timeout's timer.
final class WaitState: @unchecked Sendable {
    // @unchecked Sendable: `slot` and `armedDeadline` are guarded by the process's shared
    // lock (unchecked exclusivity: that lock makes each access exclusive); `queuedDeadline`
    // is atomic.
    /// The reply slot of the local call the process is making (``ReplySlot``), changed only
    /// through the mailbox's transitions.
    @exclusivity(unchecked) var slot = ReplySlot()
    /// The deadline of the armed timeout.
    @exclusivity(unchecked) var armedDeadline: UInt64 = 0
    /// The deadline of the process's live timer-queue entry, 0 if none. Relaxed: written
    /// under the shared lock, always before the entry it names is inserted; the queue reads
    /// it (to drop entries that are not live) under its own lock, which the insertion
    /// released after that store, so it sees the store or a later one: a live entry is never
    /// dropped, and a stale read only keeps a dead one until its deadline.
    let queuedDeadline = Atomic<UInt64>(0)

    /// Under the shared lock: whether an entry due at `deadline` must be queued (no live
    /// entry fires by then); if so, it is recorded as the live one, and the caller queues it.
    func needsEntry(by deadline: UInt64) -> Bool {
        let q = queuedDeadline.load(ordering: .relaxed)
        guard q == 0 || q > deadline else { return false }
        queuedDeadline.store(deadline, ordering: .relaxed)
        return true
    }
}
