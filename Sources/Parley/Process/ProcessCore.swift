import DequeModule
import ParleyRuntime
import Synchronization

/// The state every process has, whatever its shape: identity, mailbox, links, monitors,
/// name, and the exit procedure. ``SequentialProcess`` and ``CallbackProcess`` add how the
/// process runs.
///
/// The mailbox is two queues, as the BEAM's is: `incoming`, which senders append to under
/// the lock, and `saved`, which only the owner touches (no lock) and which selective
/// `receive` scans. The owner moves `incoming` into `saved` in one step when it runs dry.
@usableFromInline
class ProcessCore: ScheduledJob, @unchecked Sendable {
    // @unchecked Sendable: shared mutable state lives in `sharedState` (behind `sharedLock`) or in Atomics;
    // `saved` and `sinceYield` are touched only by the thread currently running the process,
    // which the scheduler serialises (each hand-over goes through a run-queue lock or the
    // mailbox lock, so it is ordered).

    enum Status: UInt8 {
        case running      // sequential: running or runnable
        case waiting      // sequential: parked in receive, `waiter` set
        case idle         // callback: no messages, not in a run queue
        case scheduled    // callback: in a run queue or running
        case dead
    }

    struct Shared {
        var incoming = Deque<any Sendable>()
        var status: Status
        var pendingDrops: Int32 = 0
        var waitGeneration: UInt32 = 0
        var timedOutGeneration: UInt32 = 0
        var waiter: UnsafeContinuation<Void, Never>? = nil
        var extras: Extras? = nil
        /// The alias of the call this process is making (0: none). A process makes one call
        /// at a time, so one slot covers the hot path; other aliases live in `extras`.
        var callAlias: UInt64 = 0

        mutating func ensureExtras() -> Extras {
            if let e = extras { return e }
            let e = Extras()
            extras = e
            return e
        }
    }

    /// Everything most processes never use, allocated on first use.
    final class Extras {
        // Accessed only with the owning ProcessCore's `shared` lock held.
        var links = Set<Pid>()
        var monitoredBy: [Reference: Pid] = [:]
        var monitoring: [Reference: Pid] = [:]
        var name: String?
        var label: String?
        var trapExit = false
        var exitReason: ExitReason?
        var dropped = 0
        var aliases = Set<UInt64>()
    }

    let id: UInt32
    let serial: UInt32
    let mailboxLimit: Int
    let overflow: MailboxLimit.Overflow
    let sharedLock = LockWord()
    @exclusivity(unchecked) var sharedState: Shared
    private let alive = Atomic<Bool>(true)
    let handledCount = Atomic<Int>(0)
    let reductionCount = Atomic<Int>(0)
    let savedCount = Atomic<Int>(0)
    let onCPU = Atomic<Bool>(false)
    // Owner-only (see the class comment), so the dynamic exclusivity check is redundant here.
    @exclusivity(unchecked) var saved = Deque<any Sendable>()
    @exclusivity(unchecked) var sinceYield = 0

    init(initialStatus: Status, limit: MailboxLimit?) {
        let n = ProcessTable.nextIdentity()
        id = n.id
        serial = n.serial
        mailboxLimit = limit?.capacity ?? 0
        overflow = limit?.overflow ?? .dropNewest
        sharedState = Shared(status: initialStatus)
        super.init()
    }

    /// Runs `body` with the shared state locked. Keep it short: no user code, no sends.
    @inline(__always)
    final func withShared<R, E: Error>(_ body: (inout Shared) throws(E) -> R) throws(E) -> R {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        return try body(&sharedState)
    }

    final var pid: Pid { Pid(local: self) }
    final var isAlive: Bool { alive.load(ordering: .acquiring) }
    var kind: Process.Kind { .sequential }

    override var scheduleDescription: String {
        let name = withShared { $0.extras?.name }
        return name.map { "\(pid) (\($0))" } ?? "\(pid)"
    }

    // MARK: Delivery

    private enum Wake {
        case none
        case schedule
        case resume(UnsafeContinuation<Void, Never>)
        case overflowExit
    }

    /// Wakes the process if it is parked in a receive that also selects over channels (a
    /// channel case completed); if it is not parked yet, it sees the completion before it
    /// parks (it checks under this same lock).
    final func wakeFromChannel() {
        let w = withShared { s -> UnsafeContinuation<Void, Never>? in
            guard s.status == .waiting, let w = s.waiter else { return nil }
            s.status = .running
            s.waiter = nil
            return w
        }
        w?.resume()
    }

    /// Appends a message to the mailbox and wakes the process if it waits. Never blocks
    /// beyond the mailbox lock; a dead process drops the message. With `alias` (non-zero),
    /// the message is dropped unless that alias is active.
    final func deliver(_ message: any Sendable, alias: UInt64 = 0) {
        let wake = withShared { s -> Wake in
            if s.status == .dead { return .none }
            if alias != 0 && s.callAlias != alias && s.extras?.aliases.contains(alias) != true { return .none }
            if mailboxLimit > 0 {
                let length = s.incoming.count + savedCount.load(ordering: .relaxed) - Int(s.pendingDrops)
                if length >= mailboxLimit {
                    switch overflow {
                    case .dropNewest:
                        s.ensureExtras().dropped += 1
                        return .none
                    case .dropOldest:
                        s.ensureExtras().dropped += 1
                        if savedCount.load(ordering: .relaxed) - Int(s.pendingDrops) > 0 {
                            s.pendingDrops += 1
                        } else if !s.incoming.isEmpty {
                            s.incoming.removeFirst()
                        }
                    case .exit:
                        return .overflowExit
                    }
                }
            }
            s.incoming.append(message)
            switch s.status {
            case .idle:
                s.status = .scheduled
                return .schedule
            case .waiting:
                s.status = .running
                let w = s.waiter!
                s.waiter = nil
                return .resume(w)
            default:
                return .none
            }
        }
        switch wake {
        case .none: break
        case .schedule: Scheduler.shared.enqueue(self)
        case .resume(let c): c.resume()
        case .overflowExit: ExitSignals.propagate(die(.mailboxOverflow, external: true))
        }
    }

    /// Appends `messages` in order with one lock round trip and at most one wake-up: how a
    /// batch read from another node's connection reaches its process. Bounded mailboxes
    /// take them one by one, so their overflow policy sees each.
    final func deliver(contentsOf messages: [any Sendable]) {
        if mailboxLimit > 0 {
            for m in messages { deliver(m) }
            return
        }
        let wake = withShared { s -> Wake in
            if s.status == .dead { return .none }
            s.incoming.append(contentsOf: messages)
            switch s.status {
            case .idle:
                s.status = .scheduled
                return .schedule
            case .waiting:
                s.status = .running
                let w = s.waiter!
                s.waiter = nil
                return .resume(w)
            default:
                return .none
            }
        }
        switch wake {
        case .none, .overflowExit: break
        case .schedule: Scheduler.shared.enqueue(self)
        case .resume(let c): c.resume()
        }
    }

    enum Claim {
        /// The process was idle with an empty mailbox: the caller now owns its run loop
        /// (status `.scheduled`) and holds the message, which it hands straight to the
        /// handler (``runClaimed(first:max:)``) without queueing it.
        case claimedDirect
        /// The process was idle: the caller now owns its run loop (status `.scheduled`) and
        /// must run it (``runClaimed(first:max:)``). `ahead` messages precede this one.
        case claimed(ahead: Int)
        /// Delivered the ordinary way.
        case delivered
        /// The process was dead; the message was dropped.
        case dead
    }

    /// Delivers `message`; if the process is an idle callback process with an unbounded
    /// mailbox, takes ownership of its run loop instead of scheduling it, so that the caller
    /// can run it on its own thread (a call's direct hand-off: no thread switch, no queue).
    final func deliverClaiming(_ message: any Sendable) -> Claim {
        if mailboxLimit == 0 {
            let ahead = withShared { s -> Int in
                guard s.status == .idle else { return -1 }
                s.status = .scheduled
                let n = s.incoming.count
                if n > 0 { s.incoming.append(message) }
                return n
            }
            if ahead == 0 { return .claimedDirect }
            if ahead > 0 { return .claimed(ahead: ahead) }
        }
        if !isAlive { return .dead }
        deliver(message)
        return .delivered
    }

    /// Takes a call's reply straight into the caller's hand-off slot instead of its mailbox,
    /// if the caller is waiting on that alias in a hand-off. Only sequential processes make calls.
    func acceptHandoffReply(_ alias: UInt64, _ reply: any Sendable) -> Bool { false }

    /// Runs a claimed callback process on this thread: `first` (if given, ahead of its
    /// mailbox), then at most `max` messages in all; returns whether it is still alive.
    /// Only callback processes can be claimed.
    func runClaimed(first: (any Sendable)?, max: Int) -> Bool { isAlive }

    /// The reason the process exited with, once dead: recorded for abnormal and external
    /// exits, `normal` otherwise. `nil` while alive.
    final var exitReason: ExitReason? {
        if isAlive { return nil }
        return withShared { $0.extras?.exitReason } ?? .normal
    }

    /// Owner only: applies drops that `dropOldest` asked for while the oldest messages sat in `saved`.
    final func applyPendingDrops() -> Int {
        let n = withShared { s -> Int32 in
            let n = s.pendingDrops
            s.pendingDrops = 0
            return n
        }
        let k = min(Int(n), saved.count)
        if k > 0 { saved.removeFirst(k) }
        savedCount.store(saved.count, ordering: .relaxed)
        return k
    }

    /// Owner only: moves `incoming` into `saved`. Returns false if nothing arrived.
    final func refill(_ s: inout Shared) -> Bool {
        if s.incoming.isEmpty { return false }
        if saved.isEmpty {
            swap(&saved, &s.incoming)
        } else {
            saved.append(contentsOf: s.incoming)
            s.incoming.removeAll(keepingCapacity: true)
        }
        savedCount.store(saved.count, ordering: .relaxed)
        return true
    }

    // MARK: Exit

    /// Marks the process dead exactly once, frees its name and table slot, fires its monitors,
    /// and returns the exit signals its links must receive (the caller propagates them, so a
    /// chain of 100,000 linked processes dies without recursion).
    /// `external` is true when something other than the process itself ends it.
    final func die(_ reason: ExitReason, external: Bool) -> [ExitSignals.Pending] {
        var dropped = Deque<any Sendable>()
        let taken = withShared { s -> (Extras?, UnsafeContinuation<Void, Never>?, Status)? in
            guard s.status != .dead else { return nil }
            let before = s.status
            s.status = .dead
            let w = s.waiter
            s.waiter = nil
            swap(&dropped, &s.incoming)
            s.callAlias = 0
            if external || !reason.isNormal { s.ensureExtras().exitReason = reason }
            return (s.extras, w, before)
        }
        guard let (extras, waiter, before) = taken else { return [] }
        alive.store(false, ordering: .releasing)
        dropped.removeAll()
        let me = pid
        ProcessTable.remove(self)

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
        if let name { LocalRegistry.remove(name, ifOwnedBy: me) }
        for (ref, watcher) in watchers {
            if let w = watcher.process {
                w.monitorFired(ref, pid: me, reason: reason)
            } else if watcher.node != nil {
                Remote.router?.monitorFired(ref: ref, watcher: watcher, target: me, reason: reason)
            }
        }
        for (ref, target) in watched {
            if let t = target.process {
                t.removeMonitor(ref)
            } else if target.node != nil {
                Remote.router?.demonitor(watcher: me, target: target, ref: ref)
            }
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
        withShared { s in
            guard s.status != .dead else { return false }
            s.ensureExtras().links.insert(other)
            return true
        }
    }

    final func removeLink(_ other: Pid) {
        withShared { s in _ = s.extras?.links.remove(other) }
    }

    /// Records that `watcher` monitors this process; false if this process is dead.
    final func addMonitor(_ ref: Reference, watcher: Pid) -> Bool {
        withShared { s in
            guard s.status != .dead else { return false }
            s.ensureExtras().monitoredBy[ref] = watcher
            return true
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

    /// The monitored process `pid` died: forget the monitor and deliver DOWN.
    final func monitorFired(_ ref: Reference, pid: Pid, reason: ExitReason) {
        let wanted = withShared { s -> Bool in
            guard s.status != .dead else { return false }
            return s.extras?.monitoring.removeValue(forKey: ref) != nil
        }
        if wanted { deliver(DownMessage(ref: ref, pid: pid, reason: reason)) }
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
    public init(capacity: Int, overflow: Overflow = .dropNewest) {
        precondition(capacity > 0, "a mailbox limit needs a capacity of at least 1")
        self.capacity = capacity
        self.overflow = overflow
    }
}
