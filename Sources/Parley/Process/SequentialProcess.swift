import ParleyRuntime
import Synchronization

/// A process whose body is an async function that calls `receive`: a Swift task on
/// Parley's `TaskExecutor`, parked on an `UnsafeContinuation` while it waits.
@usableFromInline
final class SequentialProcess: ProcessCore, @unchecked Sendable {
    // @unchecked Sendable: see ProcessCore; `task` is behind its own lock (`Locked`).
    let task = Locked<Task<Void, Never>?>(nil)
    /// The address of the Swift task running the body, to tell it from child tasks that
    /// inherit the `current` task-local. Written once before the body runs.
    @exclusivity(unchecked) private(set) var taskAddress: UInt = 0

    /// The process whose body the current task runs (set for the body's duration).
    @TaskLocal static var current: SequentialProcess?

    /// The alias of the call whose reply may go to `handoffReply` (0: none), and that reply.
    /// Both only touched under the shared lock.
    @exclusivity(unchecked) var handoffAlias: UInt64 = 0
    @exclusivity(unchecked) var handoffReply: (any Sendable)? = nil

    override func acceptHandoffReply(_ alias: UInt64, _ reply: any Sendable) -> Bool {
        withShared { s in
            guard handoffAlias == alias, s.callAlias == alias, s.status != .dead, handoffReply == nil else { return false }
            handoffReply = reply
            return true
        }
    }

    /// Ends the hand-off window and returns its reply, if one came; with `deactivate`, a
    /// reply also switches the call's alias off in the same lock round (without one, the
    /// alias stays active for a reply that comes later through the mailbox).
    func endHandoff(_ alias: UInt64, deactivate: Bool) -> (any Sendable)? {
        withShared { s in
            handoffAlias = 0
            if deactivate && handoffReply != nil && s.callAlias == alias { s.callAlias = 0 }
            let r = handoffReply
            handoffReply = nil
            return r
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

    init(limit: MailboxLimit?) {
        super.init(initialStatus: .running, limit: limit)
    }

    override var kind: Process.Kind { .sequential }

    func start(_ body: @escaping @Sendable (Process) async throws -> Void) {
        let t = Task.detached(executorPreference: Scheduler.shared.executor) { [self] in
            await self.main(body)
        }
        task.withLock { $0 = t }
        if !isAlive { t.cancel() }
    }

    private func main(_ body: @Sendable (Process) async throws -> Void) async {
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
        saved.removeAll()
        savedCount.store(0, ordering: .relaxed)
        task.withLock { $0 = nil }
    }

    override func didDie(external: Bool, wasIdle: Bool) {
        // A process ended from outside stops at its next suspension point: receive throws,
        // and cancellation interrupts Task.sleep and other cancellable waits.
        if external { task.withLock { $0 }?.cancel() }
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
        var index = start
        var generation: UInt32 = 0
        var timer: ScheduledTimer? = nil
        defer { timer?.cancel() }
        while true {
            guard isAlive else { throw ProcessExit(finalReason()) }
            if mailboxLimit > 0 { index = max(0, index - applyPendingDrops()) }
            index = min(index, saved.count)
            while index < saved.count {
                if try match(saved[index]) {
                    if index == 0 { saved.removeFirst() } else { saved.remove(at: index) }
                    savedCount.store(saved.count, ordering: .relaxed)
                    handledCount.store(handledCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
                    reductionCount.store(reductionCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
                    sinceYield &+= 1
                    if sinceYield >= Scheduler.shared.configuration.reductions {
                        sinceYield = 0
                        await Scheduler.yield()
                        Scheduler.noteRunning(self)
                    }
                    return true
                }
                index += 1
            }
            let gen = generation
            let step = withShared { s -> ReceiveStep in
                if s.status == .dead { return .dead }
                if refill(&s) { return .pulled }
                if gen != 0 && s.timedOutGeneration == gen { return .timedOut }
                return .wait
            }
            switch step {
            case .pulled: continue
            case .dead: throw ProcessExit(finalReason())
            case .timedOut: return false
            case .wait: break
            }
            if let deadline {
                if deadline <= MonotonicClock.now { return false }
                if timer == nil {
                    generation = withShared { s in
                        s.waitGeneration &+= 1
                        if s.waitGeneration == 0 { s.waitGeneration = 1 }
                        return s.waitGeneration
                    }
                    let g = generation
                    timer = Scheduler.shared.timers.schedule(at: deadline) { [self] in self.timeout(g) }
                }
            }
            let g = generation
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let resumeNow = withShared { s -> Bool in
                    if s.status == .dead || !s.incoming.isEmpty || (g != 0 && s.timedOutGeneration == g) { return true }
                    s.status = .waiting
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
            Scheduler.noteRunning(self)
        }
    }

    private func timeout(_ generation: UInt32) {
        let waiter = withShared { s -> UnsafeContinuation<Void, Never>? in
            s.timedOutGeneration = generation
            guard s.status == .waiting, s.waitGeneration == generation, let w = s.waiter else { return nil }
            s.status = .running
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Removes the first message `match` accepts without waiting (demonitor's flush).
    func removeFirst(where match: (any Sendable) -> Bool) -> Bool {
        _ = withShared { s in refill(&s) }
        if let i = saved.firstIndex(where: match) {
            saved.remove(at: i)
            savedCount.store(saved.count, ordering: .relaxed)
            return true
        }
        return false
    }
}

enum ReceiveStep { case pulled, dead, timedOut, wait }
