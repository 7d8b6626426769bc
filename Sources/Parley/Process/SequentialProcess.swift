import ParleyRuntime
import Synchronization

/// A process whose body is an async function that calls `receive`: a Swift task on
/// Parley's `TaskExecutor`, parked on an `UnsafeContinuation` while it waits.
@usableFromInline
final class SequentialProcess: ProcessCore, TimerTarget, @unchecked Sendable {
    // @unchecked Sendable: see ProcessCore; `task` is guarded by the process's shared lock
    // (no lock object of its own: one allocation less per process).
    @exclusivity(unchecked) private var task: Task<Void, Never>? = nil
    /// The address of the Swift task running the body, to tell it from child tasks that
    /// inherit the `current` task-local. Written once before the body runs.
    @exclusivity(unchecked) private(set) var taskAddress: UInt = 0

    /// The process whose body the current task runs (set for the body's duration).
    @TaskLocal static var current: SequentialProcess?

    /// The reply slot of the call this process is making (``HandoffSlot``); guarded by the
    /// shared lock, changed only through the mailbox's transitions.
    @exclusivity(unchecked) var slot = HandoffSlot()

    /// The last call message this process sent, reused once nothing else holds it
    /// (``Gen/CallMessage/reusing(_:from:request:)``). Touched by the owner only.
    @exclusivity(unchecked) var spareCall: Gen.CallMessage? = nil

    override func acceptReply(_ alias: UInt64, _ reply: any Sendable) -> Bool {
        guard let wake = withShared({ $0.mailbox.acceptReply(alias, reply, slot: &slot) }) else { return false }
        perform(wake)
        if let t = traceSession(.receive) { t.record(.receive, detail: String(describing: reply)) }
        return true
    }

    /// Starts call `alias` (``MailboxState/beginCall(_:handoff:slot:)``).
    func beginCall(_ alias: UInt64, handoff: Bool) {
        withShared { $0.mailbox.beginCall(alias, handoff: handoff, slot: &slot) }
    }

    /// Ends call `alias`: its alias is deactivated; returns a reply the slot held.
    func endCall(_ alias: UInt64) -> (any Sendable)? {
        withShared { $0.mailbox.endCall(alias, slot: &slot) }
    }

    /// Closes call `alias`'s slot; a reply found there is returned and ends the call.
    func endHandoff(_ alias: UInt64) -> (any Sendable)? {
        withShared { $0.mailbox.endHandoff(alias, reply: true, slot: &slot) }
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

    // `armedTimer` (in ProcessCore, beside the saved count): the generation of the receive
    // whose timeout is armed (0: none). Relaxed order is enough: it only decides who of the
    // firing timer and the receive's cancel disarms the timer; what a timeout changes is
    // published under the mailbox lock, and a stale timeout is ignored there (it names an
    // older generation).

    func timerIsPending(_ tag: UInt64) -> Bool {
        armedTimer.load(ordering: .relaxed) == UInt32(truncatingIfNeeded: tag)
    }

    /// The timer of the receive that drew generation `tag` is due.
    func timerFired(_ tag: UInt64) -> Bool {
        let g = UInt32(truncatingIfNeeded: tag)
        guard armedTimer.compareExchange(expected: g, desired: 0, ordering: .relaxed).exchanged else { return false }
        perform(withShared { $0.mailbox.timeout(g) })
        return true
    }

    /// Arms the timeout of a receive that waits until `deadline` (no allocation); returns
    /// the generation it drew, to pass to the wait (``awaitMessages(beyond:generation:)``)
    /// and then to ``disarmTimeout(_:deadline:)``.
    @usableFromInline
    func armTimeout(_ deadline: UInt64) -> UInt32 {
        let g = withShared { $0.mailbox.nextGeneration() }
        armedTimer.store(g, ordering: .relaxed)
        Scheduler.shared.timers.schedule(at: deadline, target: self, tag: UInt64(g))
        return g
    }

    /// Disarms it when the receive ends first (a no-op if it fired); the queue drops it if
    /// it is the earliest.
    @usableFromInline
    func disarmTimeout(_ g: UInt32, deadline: UInt64) {
        if armedTimer.compareExchange(expected: g, desired: 0, ordering: .relaxed).exchanged {
            Scheduler.shared.timers.noteCancelled(deadline: deadline)
        }
    }

    func start(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) {
        // With Parley as the global executor, no preference (it would only cost a check per
        // switch); otherwise a preference for Parley's executor. Written out twice, not through
        // a helper taking the closure: passing it on costs a reabstraction context per spawn.
        let t: Task<Void, Never>
        if Scheduler.isGlobalExecutor {
            t = Task.detached { [self] in await self.main(body) }
        } else {
            t = Task.detached(executorPreference: Scheduler.shared.executor) { [self] in await self.main(body) }
        }
        withShared { _ in task = t }
        if !isAlive { t.cancel() }
    }

    private func main(_ body: @Sendable @concurrent (Process) async throws -> Void) async {
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
    var yieldDue: Bool { sinceYield >= UInt32(clamping: Scheduler.shared.configuration.reductions) }

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
        /// A call's reply in the caller's hand-off slot.
        case reply(UInt64)
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
        defer { if armed, let deadline { disarmTimeout(generation, deadline: deadline) } }
        var claim: (() -> Bool)? = nil
        if case .select(let w) = also { claim = { w.claim() } }
        while true {
            guard isAlive else { throw ProcessExit(finalReason()) }
            switch also {
            case .none: break
            case .select(let w): if w.isSignalled { return .woken }
            case .reply(let alias): if withShared({ _ in slot.holds(alias) }) { return .woken }
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
                    case .reply(let alias): return s.mailbox.park(c, generation: g, signalled: slot.holds(alias))
                    }
                }
                if !parked { c.resume() }
            }
            Scheduler.noteRunning(self)
        }
    }
}
