import CParleyShims
import DequeModule
import ParleyRuntime
import Synchronization

/// The state every process has, whatever its shape: identity, mailbox, links, monitors,
/// name, and the exit procedure. ``SequentialProcess`` and ``CallbackCore`` add how the
/// process runs.
///
/// The mailbox is two queues, as the BEAM's is: `incoming`, which senders append to under
/// the lock, and `saved`, which only the owner touches (no lock) and which selective
/// `receive` scans. The owner moves `incoming` into `saved` in one step when it runs dry.
@usableFromInline
class ProcessCore: ScheduledJob, ChannelWakeable, @unchecked Sendable {
    // @unchecked Sendable: shared mutable state lives in `sharedState` (behind `sharedLock`) or in Atomics;
    // `saved` is touched only by the thread currently running the process,
    // which the scheduler serialises (each hand-over goes through a run-queue lock or the
    // mailbox lock, so it is ordered).

    @usableFromInline typealias Status = MailboxState<UnsafeContinuation<Void, Never>>.Status
    typealias Wake = MailboxState<UnsafeContinuation<Void, Never>>.Wake

    /// What the lock guards: the mailbox's shared half and the process's extras.
    struct Shared {
        var mailbox: MailboxState<UnsafeContinuation<Void, Never>>
        var extras: Extras? = nil

        var status: Status { mailbox.status }

        mutating func ensureExtras() -> Extras {
            if let e = extras { return e }
            let e = Extras()
            extras = e
            return e
        }

        /// Whether a message sent to `alias` (0: none) is kept (invariant 4 of ``MailboxState``).
        func accepts(alias: UInt64) -> Bool {
            alias == 0 || mailbox.callAlias == alias || extras?.aliases.contains(alias) == true
        }
    }

    /// Everything most processes never use, allocated on first use.
    final class Extras {
        // Accessed only with the owning ProcessCore's `shared` lock held, which makes every
        // access exclusive: the dynamic exclusivity checks would only cost time.
        @exclusivity(unchecked) var links = Set<Pid>()
        @exclusivity(unchecked) var monitoredBy = MonitorTable()
        @exclusivity(unchecked) var monitoring = MonitorTable()
        @exclusivity(unchecked) var name: String?
        @exclusivity(unchecked) var label: String?
        /// The OTP behaviour the process runs (`gen_server`, `supervisor`), for introspection.
        @exclusivity(unchecked) var behaviour: String?
        @exclusivity(unchecked) var trapExit = false
        @exclusivity(unchecked) var exitReason: ExitReason?
        @exclusivity(unchecked) var dropped = 0
        /// A bounded mailbox's drops counted against the owner's queue, not yet applied
        /// (``MailboxState/Limit/pendingDrops``).
        @exclusivity(unchecked) var pendingDrops = 0
        @exclusivity(unchecked) var aliases = Set<UInt64>()
        /// The trace recording this process (``Process/trace(_:_:limit:onEvent:)``).
        @exclusivity(unchecked) var trace: TraceSession?
    }

    // The fields are in three groups, in this order, so that senders and the owner do not
    // write to one cache line (false sharing cost fan-in's consumer a cache miss on each
    // receive, while four producers took the lock beside the fields it reads):
    // 1. what senders write: the lock word on every delivery (bytes 16–19, right after the
    //    object header, whose reference count senders touch too), the mailbox's status
    //    (byte 24) and waiter when a delivery wakes the owner. The queue's own count and
    //    chunks are in the chunks (``MessageQueue``), not here;
    // 2. what is written once or rarely;
    // 3. what the owner writes on each message, and the flags it reads and writes (running,
    //    alive), from byte 88 on: 64 bytes or more after the status, so never in its cache
    //    line (nor the lock's), wherever the allocator put the object. 120 bytes in all, so
    //    that a callback process whose state is a word and a tag (`Int?`) fits a 160-byte
    //    heap block (a sequential process's own fields, its receive timeout and its count
    //    since the last yield, are in ``SequentialProcess``; a bounded mailbox's pending
    //    drops are in ``Extras``).
    // (Offsets on 64-bit platforms; `ProcessLayoutTests` checks them.)

    // 1. Senders.
    let sharedLock = LockWord()
    /// Whether a trace records this process (``TraceSession``), read relaxed before the
    /// locked check, so that only traced processes take the lock for it. Written under the
    /// shared lock as the session attaches and detaches; a stale read costs one event at a
    /// trace's very start, or one needless lock round trip at its end.
    let traced = Atomic<Bool>(false)
    /// The mailbox bound's policy (the bound is `mailboxLimit`).
    let overflow: MailboxLimit.Overflow
    @exclusivity(unchecked) var sharedState: Shared

    // 2. Written once or rarely.
    let id: UInt32
    let serial: UInt32
    /// The node the process belongs to, unless it is ``LocalNode/default`` (nil): a
    /// default-node process holds no reference to its node, so spawning, sending and
    /// exiting on several cores never contend on that one object's reference count.
    let hosted: LocalNode?
    /// The mailbox bound, or the senders' queues of an unbounded mailbox, in one word: a
    /// bounded mailbox holds `capacity << 1 | 1` (fixed at spawn); an unbounded one holds 0
    /// until the process asks for parallel sends, then the address of its ``ArrivalShards`` (one retain,
    /// given back in deinit), stored once under the shared lock. Releasing store, acquiring
    /// load: a sender that sees the address sees the object initialised. One word for both
    /// keeps the object at 120 bytes.
    let mailboxWord: Atomic<UInt>

    // 3. The owner.
    /// How many messages the owner's queue holds (for a bound's accounting and `info`).
    let savedCount = MessageCount()
    /// Whether a thread is running the process (set as each run starts and ends). With the
    /// alive flag in the four bytes after `savedCount` (else padding): both are the owner's
    /// to read or write, and they keep the object at 120 bytes.
    let onCPU = Atomic<Bool>(false)
    private let alive = Atomic<Bool>(true)
    /// Messages taken so far. Each counts one reduction, and nothing else does yet, so it
    /// is also the process's reduction count (`info`'s `messagesHandled` and `reductions`).
    let handledCount = Atomic<Int>(0)
    // Owner-only (see the class comment), so the dynamic exclusivity check is redundant here.
    @exclusivity(unchecked) var saved = SavedQueue()

    @usableFromInline
    init(initialStatus: Status, limit: MailboxLimit?, hosted: LocalNode?) {
        let n = ProcessTable.nextIdentity()
        id = n.id
        serial = n.serial
        self.hosted = hosted
        mailboxWord = Atomic(limit.map { UInt($0.capacity) << 1 | 1 } ?? 0)
        overflow = limit?.overflow ?? .dropNewest
        sharedState = Shared(mailbox: MailboxState(status: initialStatus))
        super.init()
    }

    deinit {
        if let shards = arrivalShards { Unmanaged.passUnretained(shards).release() }
    }

    /// The mailbox bound (0: none); its policy is `overflow` (``MailboxState/Limit``).
    @inline(__always)
    final var mailboxLimit: Int {
        let w = mailboxWord.load(ordering: .relaxed)
        return w & 1 == 1 ? Int(w >> 1) : 0
    }

    /// The senders' queues, once the process asked for parallel sends (an unbounded mailbox only).
    final var arrivalShards: ArrivalShards? {
        Self.shards(in: mailboxWord.load(ordering: .acquiring))?.takeUnretainedValue()
    }

    /// The senders' queues a value of `mailboxWord` holds, if any: an even, non-zero word.
    /// Unmanaged: the word holds a retain of the object until deinit (see `mailboxWord`).
    @inline(__always)
    private static func shards(in w: UInt) -> Unmanaged<ArrivalShards>? {
        guard w & 1 == 0, let raw = UnsafeRawPointer(bitPattern: w) else { return nil }
        return Unmanaged.fromOpaque(raw)
    }

    /// Gives an unbounded mailbox its senders' queues (``Process/enableParallelSend()``).
    /// False for a bounded mailbox or a dead process.
    @discardableResult
    final func useArrivalShards() -> Bool {
        withShared { _ in installShards() }
    }

    /// Under the shared lock: makes the senders' queues unless the mailbox has them or is
    /// bounded or dead. True if it has them after.
    private func installShards() -> Bool {
        let w = mailboxWord.load(ordering: .relaxed)
        if w & 1 == 1 || sharedState.mailbox.isDead { return false }
        if w != 0 { return true }
        let raw = Unmanaged.passRetained(ArrivalShards()).toOpaque()
        mailboxWord.store(UInt(bitPattern: raw), ordering: .releasing)
        return true
    }

    /// The node the process belongs to: its table, registry and router.
    final var home: LocalNode { hosted ?? LocalNode.default }

    /// This node's process table (no reference count taken for the default node's).
    @inline(__always)
    final func withTable<R>(_ body: (ProcessTable) -> R) -> R {
        if let hosted { return body(hosted.processes) }
        return Self.defaultTable._withUnsafeGuaranteedRef(body)
    }

    /// The default node's table, unretained: `LocalNode.default` lives as long as the OS
    /// process. Reached through the node, each spawn and exit retained and released the node
    /// and its table, two objects every core wrote.
    private static let defaultTable = Unmanaged.passUnretained(LocalNode.default.processes)

    /// Runs `body` with the shared state locked. Keep it short: no user code, no sends.
    /// Messages waiting in the senders' queues are moved into the mailbox first, so every
    /// step under the lock sees all that has arrived.
    @inline(__always)
    final func withShared<R, E: Error>(_ body: (inout Shared) throws(E) -> R) throws(E) -> R {
        sharedLock.lockPatiently()
        absorbArrivals()
        defer { sharedLock.unlock() }
        return try body(&sharedState)
    }

    /// Under the shared lock: moves what waits in the senders' queues into `incoming`, in
    /// constant time per queue. A dead mailbox leaves them (its senders drop them).
    @inline(__always)
    private func absorbArrivals() {
        if let shards = Self.shards(in: mailboxWord.load(ordering: .relaxed)) { absorbArrivals(shards) }
    }

    @inline(never)
    private func absorbArrivals(_ shards: Unmanaged<ArrivalShards>) {
        shards._withUnsafeGuaranteedRef { shards in
            guard shards.mayHoldMessages, !sharedState.mailbox.isDead else { return }
            shards.drain { sharedState.mailbox.absorb(&$0) }
        }
    }

    @usableFromInline final var pid: Pid { Pid(local: self) }
    @usableFromInline final var isAlive: Bool { alive.load(ordering: .acquiring) }
    var kind: Process.Kind { .sequential }

    override var scheduleDescription: String {
        let name = withShared { $0.extras?.name }
        return name.map { "\(pid) (\($0))" } ?? "\(pid)"
    }

    // MARK: Delivery

    /// Does what a mailbox transition asked, outside the lock.
    @inline(__always)
    final func perform(_ wake: Wake) {
        switch wake {
        case .none: break
        case .schedule: Scheduler.withShared { $0.enqueue(self) }
        case .resume(let c): c.resume()
        case .overflowExit: ExitSignals.propagate(die(.mailboxOverflow, external: true))
        }
    }

    /// Wakes the process if it is parked in a receive that also selects over channels (a
    /// channel case completed); if it is not parked yet, it sees the completion before it
    /// parks (it reads it under this same lock).
    package final func wakeFromChannel() {
        perform(withShared { $0.mailbox.signal() })
    }

    /// Appends a message to the mailbox and wakes the process if it waits. Never blocks
    /// beyond the mailbox lock; a dead process drops the message. With `alias` (non-zero),
    /// the message is dropped unless that alias is active.
    // Always inlined: the optimiser's existential specialisation skips such functions. It
    // would otherwise take apart a message a caller had already boxed (`Pid.deliver`) and box
    // it again, a second allocation per message (`parley-allocs` counts them).
    @inline(__always)
    final func deliver(_ message: any Sendable, alias: UInt64 = 0) {
        let wake = withShared { s -> Wake in
            guard s.accepts(alias: alias) else { return .none }
            return append(message, &s)
        }
        perform(wake)
        if let t = traceSession(.receive) { t.record(.receive, detail: String(describing: message)) }
    }

    /// A message from local process `origin` (its id), the hot path of ``Pid/send(_:)``
    /// between processes: as ``deliver(_:alias:)``, unless the process asked for parallel
    /// sends; then through the sender's queue of ``ArrivalShards``, where senders of other
    /// queues never wait for it, and only a message into an empty queue takes the mailbox's
    /// lock.
    @inline(__always)
    final func deliver(_ message: any Sendable, origin: UInt32) {
        // Without queues, the ordinary delivery (queues made since this load are drained by
        // its withShared first).
        guard let shards = Self.shards(in: mailboxWord.load(ordering: .acquiring)) else { return deliver(message) }
        // A dead process drops what comes (one that dies meanwhile: see arrivedInShard).
        if isAlive, shards._withUnsafeGuaranteedRef({ $0.append(message, from: origin) }) {
            arrivedInShard()
        }
        if let t = traceSession(.receive) { t.record(.receive, detail: String(describing: message)) }
    }

    /// A sender's queue went from empty to holding a message: wake the owner if it waits.
    /// The owner drains the queues under this lock before it parks or goes idle, so either
    /// it saw the message or it is parked by now and this wakes it. If the process died
    /// meanwhile, what waits in the queues is taken out and dropped, outside the lock.
    @inline(never)
    private func arrivedInShard() {
        sharedLock.lockPatiently()
        var gone: [MessageQueue] = []
        let wake: Wake
        if sharedState.mailbox.isDead {
            wake = .none
            arrivalShards?.drain { q in
                var out = MessageQueue()
                swap(&out, &q)
                gone.append(out)
            }
        } else {
            wake = sharedState.mailbox.arrivedElsewhere()
        }
        sharedLock.unlock()
        gone.removeAll()
        perform(wake)
    }

    /// Under the lock: the mailbox's delivery, with the bound's policy and its drop count.
    @inline(__always)
    private func append(_ message: any Sendable, _ s: inout Shared) -> Wake {
        if mailboxLimit == 0 {
            // Only an idle process's `saved` is the sender's to touch (no run loop holds
            // it): asked for otherwise, even unused, the access would race with the owner's.
            guard s.mailbox.status == .idle else { return s.mailbox.deliver(message) }
            let wake = s.mailbox.deliver(message, waking: &saved)
            // The owner's count of `saved`, as a refill would set it (the process was idle).
            if case .schedule = wake { savedCount.store(1) }
            return wake
        }
        let pending = s.extras?.pendingDrops ?? 0
        var limit = MailboxState<UnsafeContinuation<Void, Never>>.Limit(capacity: mailboxLimit, overflow: overflow, pendingDrops: pending)
        let (wake, dropped) = s.mailbox.deliver(message, savedCount: savedCount.load(), limit: &limit)
        if dropped { s.ensureExtras().dropped += 1 }
        if limit.pendingDrops != pending { s.ensureExtras().pendingDrops = limit.pendingDrops }
        return wake
    }

    /// Records that `watcher` monitors this process with `ref`, and delivers `message`, in
    /// one lock round trip: a local call's monitor and request (gen.erl's `do_call`, whose
    /// monitor comes before the send). False, with neither done, if this process is dead.
    final func deliver(_ message: any Sendable, monitoredBy watcher: Pid, ref: Reference) -> Bool {
        let (alive, wake) = withShared { s -> (Bool, Wake) in
            guard s.status != .dead else { return (false, .none) }
            s.ensureExtras().monitoredBy[ref] = watcher
            return (true, append(message, &s))
        }
        guard alive else { return false }
        perform(wake)
        if let t = traceSession(.receive) { t.record(.receive, detail: String(describing: message)) }
        return true
    }

    /// Appends `messages` in order with one lock round trip and at most one wake-up: how a
    /// batch read from another node's connection reaches its process. Bounded mailboxes
    /// take them one by one, so their overflow policy sees each.
    final func deliver(contentsOf messages: [any Sendable]) {
        if mailboxLimit > 0 {
            for m in messages { deliver(m) }
            return
        }
        perform(withShared { $0.mailbox.deliver(contentsOf: messages) })
        if let t = traceSession(.receive) { for m in messages { t.record(.receive, detail: String(describing: m)) } }
    }

    typealias Claim = MailboxState<UnsafeContinuation<Void, Never>>.Claim

    /// Claims an idle callback process's run loop with `message` (``MailboxState/claim(_:)``):
    /// the caller must run it (``runClaimed(first:max:)``). Otherwise the message is
    /// delivered the ordinary way (`.busy`) or dropped (`.dead`).
    final func deliverClaiming(_ message: any Sendable) -> Claim {
        let claim = withShared { $0.mailbox.claim(message, bounded: mailboxLimit > 0) }
        if claim == .busy { deliver(message) } else if claim != .dead, let t = traceSession(.receive) {
            t.record(.receive, detail: String(describing: message))
        }
        return claim
    }

    /// Runs a claimed callback process on this thread: `first` (if given, ahead of its
    /// mailbox), then at most `max` messages in all; returns whether it is still alive.
    /// Only callback processes can be claimed.
    func runClaimed(first: (any Sendable)?, max: Int) -> Bool { isAlive }

    /// Runs a process this thread claimed with `message` (see ``deliverClaiming(_:)``).
    final func runClaim(_ claim: Claim, _ message: any Sendable) {
        switch claim {
        case .direct: _ = runClaimed(first: message, max: 1)
        case .queued(let ahead): _ = runClaimed(first: nil, max: ahead + 1)
        case .busy, .dead: break
        }
    }

    /// The reason the process exited with, once dead: recorded for abnormal and external
    /// exits, `normal` otherwise. `nil` while alive.
    final var exitReason: ExitReason? {
        if isAlive { return nil }
        return withShared { $0.extras?.exitReason } ?? .normal
    }

    /// Owner only: the one selective-receive step every path shares (`receive`, `select`,
    /// a call's reply, `demonitor`'s flush). Applies the drops `dropOldest` counted, scans
    /// from `cursor` for the first message `match` accepts, and moves arrived messages in
    /// when it has seen all it holds. A message taken counts as handled and as a reduction.
    /// `claim`: asked before a match is removed (``SavedQueue/take(from:claim:_:)``).
    /// `generation`: a receive's timer, whose firing ends the scan with `.timedOut`.
    @inline(__always)
    final func take(from cursor: inout Int, generation: UInt32 = 0, claim: (() -> Bool)? = nil,
                    _ match: (any Sendable) throws -> Bool) rethrows -> TakeStep {
        if mailboxLimit > 0 { cursor -= applyPendingDrops() }
        while true {
            switch try takeSaved(from: &cursor, claim: claim, match) {
            case .taken:
                return .taken
            case .refused:
                return .refused
            case .notFound:
                let step = moveArrivals(generation: generation)
                if step != .taken { return step }
            }
        }
    }

    /// Owner only: moves what has arrived into the owner's queue (`.taken`), or says that
    /// the mailbox is dead, that the timer of the receive that drew `generation` (0: none)
    /// fired, or that nothing arrived (`.empty`). The one refill step of every receive.
    final func moveArrivals(generation: UInt32 = 0) -> TakeStep {
        withShared { s in
            if s.mailbox.isDead { return .dead }
            if s.mailbox.refill(&saved) {
                // Under the lock, with the refill: a sender that found `incoming` empty must
                // also find the moved messages counted, or a bounded mailbox keeps more than
                // its capacity.
                savedCount.store(saved.count)
                return .taken
            }
            return s.mailbox.timedOut(generation) ? .timedOut : .empty
        }
    }

    /// Owner only: counts a message taken (each is also the process's one reduction for it).
    @inline(__always)
    final func noteHandled() {
        handledCount.store(handledCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    enum TakeStep { case taken, empty, timedOut, refused, dead }

    /// Owner only: ``take(from:generation:claim:_:)``'s scan of the owner's queue alone,
    /// with no lock (nothing that arrived since the last refill is looked at). A message
    /// taken counts as handled.
    @inline(__always)
    final func takeSaved(from cursor: inout Int, claim: (() -> Bool)? = nil,
                         _ match: (any Sendable) throws -> Bool) rethrows -> SavedQueue.Found {
        let found = try saved.take(from: &cursor, claim: claim, match)
        if found == .taken {
            savedCount.store(saved.count)
            noteHandled()
        }
        return found
    }

    /// Owner only: applies the drops `dropOldest` counted against the owner's queue while
    /// the oldest messages sat there; returns how many went.
    final func applyPendingDrops() -> Int {
        // The count senders see drops with the pending drops, under the lock (else one
        // sender would count them twice and drop one message too many); the messages
        // themselves are released outside it.
        let n = withShared { s -> Int in
            guard let e = s.extras, e.pendingDrops > 0 else { return 0 }
            let n = e.pendingDrops
            e.pendingDrops = 0
            savedCount.store(saved.count - min(n, saved.count))
            return n
        }
        guard n > 0 else { return 0 }
        return saved.dropOldest(n)
    }

    /// Owner only: removes the first message `match` accepts, without waiting
    /// (`demonitor`'s flush).
    final func flush(where match: (any Sendable) -> Bool) -> Bool {
        var cursor = 0
        return take(from: &cursor, match) == .taken
    }

    /// Takes a call's reply into the reply slot if this process's call `alias` is open
    /// for it (``MailboxState/acceptReply(_:_:slot:)``), waking the caller if it is parked.
    /// Only sequential processes make calls, so only they have a slot.
    func acceptReply(_ alias: UInt64, _ reply: any Sendable) -> Bool { false }

    /// The server of this process's local call `alias` died: false if the call is over (or
    /// this process makes no calls).
    func callServerDied(_ alias: UInt64, reason: ExitReason) -> Bool { false }

    // MARK: Exit

    /// Marks the process dead exactly once, frees its name and table slot, fires its monitors,
    /// and returns the exit signals its links must receive (the caller propagates them, so a
    /// chain of 100,000 linked processes dies without recursion).
    /// `external` is true when something other than the process itself ends it.
    final func die(_ reason: ExitReason, external: Bool) -> [ExitSignals.Pending] {
        let taken = withShared { s -> (Extras?, UnsafeContinuation<Void, Never>?, Status, MessageQueue)? in
            guard let (before, w, gone) = s.mailbox.die() else { return nil }
            if external || !reason.isNormal { s.ensureExtras().exitReason = reason }
            return (s.extras, w, before, gone)
        }
        // The dropped messages are released with `taken`, outside the lock.
        guard let (extras, waiter, before, _) = taken else { return [] }
        alive.store(false, ordering: .releasing)
        let me = pid
        withTable { $0.remove(self) }

        var signals: [ExitSignals.Pending] = []
        var watchers: [(Reference, Pid)] = []
        var watched: [(Reference, Pid)] = []
        var name: String?
        if let extras {
            // Status is .dead, so nothing adds to extras any more; the lock orders this read
            // after the last writer's release.
            let links = withShared { _ in
                let l = extras.links
                extras.links = []
                watchers = Array(extras.monitoredBy)
                watched = Array(extras.monitoring)
                extras.monitoredBy = [:]
                extras.monitoring = [:]
                name = extras.name
                extras.name = nil
                return l
            }
            signals.reserveCapacity(links.count)
            for l in links { signals.append(.init(target: l, from: me, reason: reason, isLink: true)) }
        }
        if let name { home.registry.remove(name, ifOwnedBy: me) }
        for (ref, watcher) in watchers {
            switch Route(watcher, sender: self) {
            case .local(let w): w?.monitorFired(ref, pid: me, reason: reason)
            case .remote(let router): router.monitorFired(ref: ref, watcher: watcher, target: me, reason: reason)
            case .unreachable: break
            }
        }
        for (ref, target) in watched { Self.demonitor(ref, watcher: me, target: target) }
        if parley_tracing() != 0, traced.load(ordering: .relaxed), let session = extras.flatMap({ e in withShared { _ in e.trace } }) {
            if session.flags.contains(.procs) { session.record(.exit, detail: reason.description) }
            session.finish("the process exited")
        }
        if let waiter { waiter.resume() }
        didDie(external: external, wasIdle: before == .idle)
        return signals
    }

    /// Subclass hook, called once after death (outside the lock).
    func didDie(external: Bool, wasIdle: Bool) {}

    /// Handles an exit signal by Erlang's rules and returns the signals a resulting death sends.
    final func receiveExitSignal(from: Pid, reason: ExitReason, isLink: Bool) -> [ExitSignals.Pending] {
        enum Outcome { case ignore, message(ExitMessage), die(ExitReason) }
        let me = pid
        let outcome = withShared { s -> Outcome in
            guard s.status != .dead else { return .ignore }
            if isLink { s.extras?.links.remove(from) }
            // exit(Pid, kill) is untrappable and becomes `killed`; a link signal carrying
            // `kill` is an ordinary signal (erlang:exit/1 docs, "Receiving Exit Signals").
            if case .kill = reason, !isLink { return .die(.killed) }
            if s.extras?.trapExit == true { return .message(ExitMessage(from: from, reason: reason)) }
            if reason.isNormal { return from == me ? .die(.normal) : .ignore }
            return .die(reason)
        }
        switch outcome {
        case .ignore: return []
        case .message(let m): deliver(m); return []
        case .die(let r): return die(r, external: true)
        }
    }

    // MARK: Links and monitors

    /// Adds `other` to this process's links unless this process is dead.
    final func addLink(_ other: Pid) -> Bool {
        let (alive, inserted) = withShared { s -> (Bool, Bool) in
            guard s.status != .dead else { return (false, false) }
            return (true, s.ensureExtras().links.insert(other).inserted)
        }
        if inserted, let t = traceSession(.procs) { t.record(.link, other: other) }
        return alive
    }

    final func removeLink(_ other: Pid) {
        let removed = withShared { s in s.extras?.links.remove(other) != nil }
        if removed, let t = traceSession(.procs) { t.record(.unlink, other: other) }
    }

    /// Records that `watcher` monitors this process; false if this process is dead.
    final func addMonitor(_ ref: Reference, watcher: Pid) -> Bool {
        withShared { s in
            guard s.status != .dead else { return false }
            s.ensureExtras().monitoredBy[ref] = watcher
            return true
        }
    }

    /// Removes the target's half of monitor `ref`, whose watcher has forgotten it: on this
    /// node, or through the target's node.
    static func demonitor(_ ref: Reference, watcher: Pid, target: Pid) {
        switch Route(target, senderPid: watcher) {
        case .local(let t): t?.removeMonitor(ref)
        case .remote(let router): router.demonitor(watcher: watcher, target: target, ref: ref)
        case .unreachable: break
        }
    }

    final func removeMonitor(_ ref: Reference) {
        withShared { s in _ = s.extras?.monitoredBy.removeValue(forKey: ref) }
    }

    final func noteMonitoring(_ ref: Reference, target: Pid) -> Bool {
        withShared { s in
            guard s.status != .dead else { return false }
            s.ensureExtras().monitoring[ref] = target
            return true
        }
    }

    final func forgetMonitoring(_ ref: Reference) -> Pid? {
        withShared { s in s.extras?.monitoring.removeValue(forKey: ref) }
    }

    /// The monitored process `pid` died: forget the monitor and deliver DOWN. A local
    /// call's monitor (its reference is the call's alias, and this side keeps no entry for
    /// it) sends its DOWN to the call's reply slot instead.
    final func monitorFired(_ ref: Reference, pid: Pid, reason: ExitReason) {
        let wanted = withShared { s -> Bool in
            guard s.status != .dead else { return false }
            return s.extras?.monitoring.removeValue(forKey: ref) != nil
        }
        if wanted {
            deliver(DownMessage(ref: ref, pid: pid, reason: reason))
        } else if ref.owner === self {
            _ = callServerDied(ref.id, reason: reason)
        }
    }
}

/// A bound on a mailbox and what to do when a message arrives at a full one.
///
/// ```swift
/// var options = SpawnOptions()
/// options.mailbox = MailboxLimit(capacity: 1000, overflow: .dropOldest)
/// ```
public struct MailboxLimit: Sendable, Hashable {
    public enum Overflow: Sendable, Hashable {
        /// The arriving message is dropped (the mailbox keeps its oldest messages).
        case dropNewest
        /// The oldest message is dropped to make room.
        case dropOldest
        /// The owner exits with reason `mailboxOverflow`; links and monitors see it.
        case exit
    }
    public var capacity: Int
    public var overflow: Overflow
    /// - Precondition: `capacity` is at least 1.
    public init(capacity: Int, overflow: Overflow = .dropNewest) {
        precondition(capacity > 0, "a mailbox limit needs a capacity of at least 1")
        self.capacity = capacity
        self.overflow = overflow
    }
}

/// A message count in 32 bits (no mailbox holds four billion messages: each takes at least
/// a 40-byte slot), read and written as an `Int`.
struct MessageCount: ~Copyable, Sendable {
    private let raw = Atomic<UInt32>(0)
    // Relaxed: the count is read under the mailbox lock by senders (ordered by that lock),
    // or as an estimate by `info`.
    @inline(__always) func load() -> Int { Int(raw.load(ordering: .relaxed)) }
    @inline(__always) func store(_ n: Int) { raw.store(UInt32(clamping: n), ordering: .relaxed) }
}
