import DequeModule

/// A process's mailbox as a state machine: the part senders share (behind the process's
/// lock) and the part only the owner touches, with every transition in this file. Each
/// mutating method returns what must happen next (``Wake``); the caller does it after the
/// lock is released, as `Chan`'s operations do. Generic over `Waiter` (the parked receiver's
/// continuation), so that tests drive it with plain values and no threads.
///
/// The queues are the BEAM's two: `incoming`, which senders append to under the lock, and
/// the owner's ``SavedQueue``, which selective receive scans without the lock. The owner
/// moves `incoming` into it in one step when it has scanned everything it holds.
///
/// Invariants (each method keeps them; `MailboxTests` checks them):
/// 1. `dead` is final. A dead mailbox holds no messages and no waiter, and every delivery
///    to it is dropped.
/// 2. `status` is `.waiting` or `.calling` exactly when `waiter` is set: a sequential
///    process parked in receive, or in a local call. ``park(_:generation:signalled:)``
///    parks only if nothing that would wake it has happened: `incoming` is empty, the
///    receive's timer (`generation`) has not fired, and no extra wake source (a select's
///    channel) is signalled. ``parkForReply(_:alias:generation:slot:)`` parks only if the
///    call's reply slot is empty and its timer has not fired; deliveries do not wake a
///    `.calling` process (they wait in `incoming` for its next receive). Every waker
///    (``deliver(_:)`` and its bounded form, ``timeout(_:)``, ``signal()``,
///    ``acceptReply(_:_:slot:)``, ``die()``) takes the same lock, so a wake-up is either
///    seen by the park or finds the waiter: none is lost.
/// 3. A callback process is `.idle` (no messages, in no run queue) or `.scheduled` (exactly
///    one owner runs it: a run queue entry, a scheduler thread, or an I/O thread that
///    claimed it). Only the `.idle → .scheduled` transitions
///    (``deliver(_:)``'s `.schedule`, ``claim(_:bounded:)``) hand out
///    ownership, so the process is never queued twice.
/// 4. A message sent to an alias is kept only while the alias is active; a local call's
///    reply (or its server's DOWN) goes into the reply slot (``ReplySlot``) only while
///    `slot.alias == callAlias == alias`, the slot keeps the first that comes, and once a
///    call's alias is deactivated nothing more arrives for it.
/// 5. With a capacity, `incoming + saved - pendingDrops` never exceeds it after a delivery:
///    `dropOldest` drops the oldest incoming message, or, when the oldest sit in the owner's
///    queue, counts a drop there (``Limit/pendingDrops``) that the owner applies before it
///    scans. The count is the bound's, kept by the process beside the bound (only bounded
///    mailboxes have one), not in this state.
@usableFromInline
struct MailboxState<Waiter> {
    @usableFromInline
    enum Status: UInt8 {
        case running      // sequential: running or runnable
        case waiting      // sequential: parked in receive, `waiter` set
        case calling      // sequential: parked in a local call, on its reply slot; `waiter` set
        case idle         // callback: no messages, not in a run queue
        case scheduled    // callback: in a run queue, running, or claimed
        case dead
    }

    /// What a transition asks of its caller once the lock is released.
    enum Wake {
        case none
        /// Put the (callback) process in a run queue.
        case schedule
        /// Resume the parked receiver.
        case resume(Waiter)
        /// A full mailbox with the `exit` policy: the owner must die with `mailboxOverflow`.
        case overflowExit
    }

    /// The outcome of ``claim(_:bounded:)``.
    enum Claim: Equatable {
        /// Idle with an empty mailbox: the claimer owns the run loop and holds the message.
        case direct
        /// Idle: the claimer owns the run loop; the message is queued behind `ahead` others.
        case queued(ahead: Int)
        /// Not idle (or bounded): deliver the ordinary way.
        case busy
        case dead
    }

    /// What a local call finds when it looks at its reply slot
    /// (``callStep(_:generation:slot:)``).
    enum CallStep {
        /// The slot's content (the reply, or the server's DOWN); the call has ended.
        case done(any Sendable)
        /// The call's timer fired with the slot empty.
        case timedOut
        case dead
        /// Nothing yet (a spurious wake-up): park again.
        case wait
    }

    /// The bound (0: none) and its policy; kept by the process, passed to the transitions
    /// that need them, so an unbounded mailbox carries no room for them.
    struct Limit {
        var capacity = 0
        var overflow = MailboxLimit.Overflow.dropNewest
        /// `dropOldest`'s drops counted against the owner's queue and not yet applied
        /// (invariant 5): an input, and raised by a delivery that counts one.
        var pendingDrops = 0
    }

    // The status first (byte 0), then the timer word, the queue (one word) and the waiter:
    // the process's field order relies on it (ProcessCore: the owner's fields start 64
    // bytes or more after the status). 32 bytes in all; it is in every process object.
    private(set) var status: Status
    /// The generation of the current receive's or call's timer (bits 0–30; 0 until one is
    /// drawn) and, in bit 31, whether that timer has fired. One word for both: a timer that
    /// is not the current one changes nothing, so only the current one's firing needs keeping.
    private var timer: UInt32 = 0
    private(set) var incoming = MessageQueue()
    private(set) var waiter: Waiter? = nil
    /// The alias of the call this process is making (0: none). A process makes one call at
    /// a time, so one slot covers the hot path; other aliases live in the process's extras.
    private(set) var callAlias: UInt64 = 0

    init(status: Status) {
        self.status = status
    }

    var isDead: Bool { status == .dead }

    // MARK: Senders

    /// Appends a message to an unbounded mailbox and says whom to wake.
    mutating func deliver(_ message: any Sendable) -> Wake {
        if status == .dead { return .none }
        incoming.append(message)
        return wakeOwner()
    }

    /// ``deliver(_:)``, except that the message that wakes an idle callback process goes
    /// straight into the owner's queue (`saved`, empty while the process is idle): this
    /// delivery hands out the run loop (invariant 3), and nothing else touches `saved`
    /// until the run that takes it, which then needs no refill (no lock round trip) for it.
    /// Later messages queue in `incoming` behind it, as sent.
    mutating func deliver(_ message: any Sendable, waking saved: inout SavedQueue) -> Wake {
        switch status {
        case .idle:
            status = .scheduled
            saved.append(message)
            return .schedule
        case .dead:
            return .none
        case .running, .waiting, .calling, .scheduled:
            incoming.append(message)
            return wakeOwner()
        }
    }

    /// ``deliver(_:)`` into a bounded mailbox. `savedCount`: what the owner's queue holds;
    /// `limit`: the bound, its policy and the drops pending against the owner's queue, which
    /// a `dropOldest` delivery may raise (invariant 5). `dropped`: a full mailbox dropped a
    /// message (the arrival, or with `dropOldest` the oldest one), for the process to count.
    mutating func deliver(_ message: any Sendable, savedCount: Int, limit: inout Limit) -> (wake: Wake, dropped: Bool) {
        if status == .dead { return (.none, false) }
        var droppedOne = false
        if limit.capacity > 0 {
            let length = incoming.count + savedCount - limit.pendingDrops
            if length >= limit.capacity {
                switch limit.overflow {
                case .dropNewest:
                    return (.none, true)
                case .dropOldest:
                    droppedOne = true
                    if savedCount - limit.pendingDrops > 0 {
                        limit.pendingDrops += 1
                    } else if !incoming.isEmpty {
                        incoming.removeFirst()
                    }
                case .exit:
                    return (.overflowExit, false)
                }
            }
        }
        incoming.append(message)
        return (wakeOwner(), droppedOne)
    }

    /// Appends a batch in order with at most one wake-up. Unbounded mailboxes only (a bounded
    /// one takes a batch message by message, so its policy sees each).
    mutating func deliver(contentsOf messages: [any Sendable]) -> Wake {
        if status == .dead || messages.isEmpty { return .none }
        incoming.append(contentsOf: messages)
        return wakeOwner()
    }

    /// A message went into a queue the owner drains under this lock before it reads
    /// `incoming` (``ArrivalShards``): wake the owner as ``deliver(_:)``
    /// would. A dead mailbox wakes nobody (the caller drops what waits).
    mutating func arrivedElsewhere() -> Wake {
        status == .dead ? .none : wakeOwner()
    }

    /// Appends messages that waited elsewhere (``ArrivalShards``), in order, leaving
    /// `arrivals` empty. Wakes nobody: the sender that queued the first of them does
    /// (``arrivedElsewhere()``). The caller skips a dead mailbox (invariant 1).
    mutating func absorb(_ arrivals: inout MessageQueue) {
        incoming.append(contentsOf: &arrivals)
    }

    private mutating func wakeOwner() -> Wake {
        switch status {
        case .idle:
            status = .scheduled
            return .schedule
        case .waiting:
            return resumeWaiter()
        case .running, .calling, .scheduled, .dead:
            return .none
        }
    }

    private mutating func resumeWaiter() -> Wake {
        status = .running
        let w = waiter!
        waiter = nil
        return .resume(w)
    }

    /// An extra wake source completed (a channel case of a select over the mailbox): the
    /// owner wakes if parked, or sees it before it parks.
    mutating func signal() -> Wake {
        status == .waiting ? resumeWaiter() : .none
    }

    /// The timer of the receive that drew `generation` fired.
    mutating func timeout(_ generation: UInt32) -> Wake {
        // An earlier receive's timer (not cancelled in time) changes nothing.
        guard generation != 0, timer & ~Self.timerFired == generation else { return .none }
        timer |= Self.timerFired
        guard status == .waiting || status == .calling else { return .none }
        return resumeWaiter()
    }

    /// Bit 31 of `timer`: the current generation's timer has fired.
    private static var timerFired: UInt32 { 1 << 31 }

    /// Claims an idle callback process's run loop for the caller, with `message` for it to
    /// handle: how a message from the wire runs on the I/O thread that read it.
    mutating func claim(_ message: any Sendable, bounded: Bool = false) -> Claim {
        if status == .dead { return .dead }
        guard !bounded, status == .idle else { return .busy }
        status = .scheduled
        let ahead = incoming.count
        if ahead == 0 { return .direct }
        incoming.append(message)
        return .queued(ahead: ahead)
    }

    // MARK: Aliases and the reply slot

    /// Starts a call: its alias is active, and with `slot` open (a local call) its reply, or
    /// its server's DOWN, goes to `slot`; a remote call's reply comes through the mailbox.
    mutating func beginCall(_ alias: UInt64, local: Bool, slot: inout ReplySlot) {
        callAlias = alias
        slot = ReplySlot(alias: local ? alias : 0)
    }

    /// Deactivates the call's alias and closes the slot; returns what the slot holds (a
    /// reply that beat the deactivation).
    mutating func endCall(_ alias: UInt64, slot: inout ReplySlot) -> (any Sendable)? {
        guard callAlias == alias else { return nil }
        callAlias = 0
        guard slot.alias == alias else { return nil }
        let r = slot.reply
        slot = ReplySlot()
        return r
    }

    /// Takes a reply (or the server's DOWN) into the slot if the call `alias` is open for it
    /// and the slot is empty; wakes the owner if it is parked in the call (or in a receive).
    mutating func acceptReply(_ alias: UInt64, _ reply: any Sendable, slot: inout ReplySlot) -> Wake? {
        guard status != .dead, alias != 0, slot.alias == alias, callAlias == alias, slot.reply == nil else { return nil }
        slot.reply = reply
        return status == .calling || status == .waiting ? resumeWaiter() : Wake.none
    }

    /// Parks the owner on call `alias`'s reply slot unless it holds something, the call's
    /// timer (`generation`) has fired, or the mailbox is dead (invariant 2). Deliveries do
    /// not wake it. Returns false if it must not park.
    mutating func parkForReply(_ w: Waiter, alias: UInt64, generation: UInt32, slot: ReplySlot) -> Bool {
        if status == .dead || slot.holds(alias) || timedOut(generation) { return false }
        status = .calling
        waiter = w
        return true
    }

    /// Looks at call `alias`'s slot: what it holds ends the call (the alias is deactivated
    /// and the slot closed in the same step), else the timer or death, else wait.
    mutating func callStep(_ alias: UInt64, generation: UInt32, slot: inout ReplySlot) -> CallStep {
        if status == .dead { return .dead }
        if slot.holds(alias), let r = endCall(alias, slot: &slot) { return .done(r) }
        return timedOut(generation) ? .timedOut : .wait
    }

    // MARK: The owner

    /// Moves arrived messages into the owner's queue. False if none arrived.
    mutating func refill(_ saved: inout SavedQueue) -> Bool {
        if incoming.isEmpty { return false }
        saved.append(&incoming)
        return true
    }

    /// A generation for a receive's timer (never 0; 31 bits, wrapping): it becomes the
    /// current one, not fired.
    mutating func nextGeneration() -> UInt32 {
        var g = (timer & ~Self.timerFired) &+ 1
        if g == Self.timerFired { g = 1 }
        timer = g
        return g
    }

    /// Whether the timer of `generation` (0: none) has fired.
    func timedOut(_ generation: UInt32) -> Bool { generation != 0 && timer == generation | Self.timerFired }

    /// Parks the owner unless something would wake it at once (invariant 2). Returns false
    /// if it must not park (the caller resumes itself). `signalled`: the extra wake source
    /// (a select's channel case), read under the same lock its ``signal()`` takes.
    mutating func park(_ w: Waiter, generation: UInt32, signalled: Bool = false) -> Bool {
        if status == .dead || !incoming.isEmpty || timedOut(generation) || signalled { return false }
        status = .waiting
        waiter = w
        return true
    }

    /// A callback process found nothing to do: idle (the next delivery schedules it), unless
    /// messages arrived (moved into `saved`, still scheduled).
    mutating func refillOrIdle(_ saved: inout SavedQueue) -> RefillStep {
        if status == .dead { return .dead }
        if refill(&saved) { return .more }
        status = .idle
        return .idle
    }

    /// A callback process finished its `init`: idle, or still scheduled if messages came.
    /// Nil if it died meanwhile.
    mutating func started() -> Bool? {
        if status == .dead { return nil }
        if incoming.isEmpty { status = .idle; return false }
        return true
    }

    /// Marks the mailbox dead (invariant 1). Returns the status it had and the parked
    /// receiver to resume, or nil if it was already dead.
    mutating func die() -> (before: Status, waiter: Waiter?, dropped: MessageQueue)? {
        guard status != .dead else { return nil }
        let before = status
        status = .dead
        let w = waiter
        waiter = nil
        var gone = MessageQueue()
        swap(&gone, &incoming)
        callAlias = 0
        return (before, w, gone)
    }
}

enum RefillStep { case more, idle, dead }

/// Where a local call's reply goes: straight to the caller, with no message box and no
/// mailbox scan; the server's DOWN (if it dies first) comes here too. Only callers
/// (sequential processes) have one; it is guarded by the caller's lock and changed only
/// through ``MailboxState``'s transitions.
struct ReplySlot {
    /// The call whose reply may come here (0: closed).
    var alias: UInt64 = 0
    var reply: (any Sendable)? = nil

    /// Whether the slot holds the reply (or the end) of call `alias`.
    func holds(_ alias: UInt64) -> Bool { self.alias == alias && reply != nil }
}

/// The owner's half of a mailbox: messages it has looked at and left (selective receive,
/// `items`) followed by those it moved in from `incoming` and has not looked at yet
/// (`unread`, chunks taken over in constant time). A receive takes from the front of
/// `unread` without moving anything; a message it passes over moves to `items`. Touched by
/// the owner only, without a lock.
struct SavedQueue {
    /// Nil until a receive first passes a message over: an empty `Deque` holds the one
    /// shared empty storage object, whose reference count every process's spawn and exit
    /// then wrote, from every core (a retain and a release per process, 2–4 % of
    /// skynet-callback).
    private(set) var items: Deque<any Sendable>? = nil
    private(set) var unread = MessageQueue()

    /// How many messages `items` holds.
    private var passedCount: Int { items?.count ?? 0 }

    var count: Int { passedCount + unread.count }
    var isEmpty: Bool { passedCount == 0 && unread.isEmpty }

    /// The message at position `i` of the whole queue (tests and introspection; walks `unread`).
    subscript(i: Int) -> any Sendable {
        if let items, i < items.count { return items[i] }
        var k = i - passedCount
        for m in unread {
            if k == 0 { return m }
            k -= 1
        }
        preconditionFailure("SavedQueue index \(i) out of range (count \(count))")
    }

    /// The first `n` messages, oldest first.
    func prefix(_ n: Int) -> [any Sendable] {
        var out = items.map { Array($0.prefix(n)) } ?? []
        if out.count < n { out.append(contentsOf: unread.prefix(n - out.count)) }
        return out
    }

    /// Appends one message (an idle process's first, ``MailboxState/deliver(_:waking:)``).
    mutating func append(_ message: any Sendable) {
        unread.append(message)
    }

    /// Takes every message of `incoming` (in constant time), leaving it empty.
    mutating func append(_ incoming: inout MessageQueue) {
        unread.append(contentsOf: &incoming)
    }

    /// Applies `n` drops of the oldest messages; returns how many went.
    mutating func dropOldest(_ n: Int) -> Int {
        let k = min(n, count)
        let fromItems = min(k, passedCount)
        if fromItems > 0 { items!.removeFirst(fromItems) }
        for _ in fromItems..<k { unread.removeFirst() }
        return k
    }

    /// The first message at or after `cursor` that `match` accepts: removed and returned
    /// with `cursor` left at its place. Nil with `cursor` at the end if none. `claim` is asked
    /// before a match is removed (a select whose channel case may already have won); if it
    /// refuses, nothing is removed and the result is `.refused`.
    @inline(__always)
    mutating func take(from cursor: inout Int, claim: (() -> Bool)? = nil, _ match: (any Sendable) throws -> Bool) rethrows -> Found {
        cursor = max(cursor, 0)
        while cursor < passedCount {
            if try match(items![cursor]) {
                if let claim, !claim() { return .refused }
                if cursor == 0 { items!.removeFirst() } else { items!.remove(at: cursor) }
                return .taken
            }
            cursor += 1
        }
        // Past what was looked at before: the unread messages, oldest first. Those before a
        // cursor beyond `items` (a receive marker) cannot match and are only moved over.
        while !unread.isEmpty {
            if cursor <= passedCount, try unread.withFirst(match)! {
                if let claim, !claim() { return .refused }
                unread.dropFirst()
                return .taken
            }
            if items == nil { items = Deque(minimumCapacity: 4) }
            items!.append(unread.removeFirst())
            if cursor < passedCount { cursor = passedCount }
        }
        cursor = passedCount
        return .notFound
    }

    enum Found { case taken, notFound, refused }

    /// Removes the first message, for a callback process's run loop.
    mutating func removeFirst() -> any Sendable {
        passedCount == 0 ? unread.removeFirst() : items!.removeFirst()
    }

    mutating func removeAll() {
        items = nil
        unread.removeAll()
    }
}
