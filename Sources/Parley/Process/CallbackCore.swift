import CParleyShims
import ParleyRuntime

/// What a callback process's handler returns after each message.
public enum Next: Sendable {
    /// Wait for the next message (a gen_server's `{noreply, State}`).
    case `continue`
    /// Exit with the reason (a gen_server's `{stop, Reason, State}`).
    case stop(ExitReason)
}

/// A process that holds no Swift task: its handler runs once per message, on whichever
/// scheduler thread picks the process up. Idle, it costs its object and its state.
@usableFromInline
final class CallbackCore<State>: ProcessCore, @unchecked Sendable {
    // @unchecked Sendable: `state` and `handler` are touched only by the run loop, which the
    // scheduler runs on one thread at a time (status `.scheduled` guards re-entry), or by
    // `didDie` when the process was idle (no run loop active).
    @usableFromInline typealias Handler = @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
    @usableFromInline @exclusivity(unchecked) var state: State?
    @usableFromInline @exclusivity(unchecked) var handler: Handler?

    // Inlinable, as the spawn that calls it (``Process/spawnCallback(_:parent:state:handler:)``):
    // specialised where the state's type is known, the class's and the optional state's
    // metadata come from the caller's cache. Generic, each spawn looked them up in the
    // runtime's table (three lookups, 4–5 % of skynet-callback and spawn-idle-callback).
    @inlinable
    init(state: sending State?, limit: MailboxLimit?, initialStatus: Status = .idle, hosted: LocalNode?, handler: @escaping Handler) {
        self.state = state
        self.handler = handler
        super.init(initialStatus: initialStatus, limit: limit, hosted: hosted)
    }

    override var kind: Process.Kind { .callback }

    override func run(budget: Int) {
        // Reductions used up with messages left: to the back of the run queue (status stays
        // .scheduled, so senders don't enqueue it twice).
        if drain(max: budget) == .more { Scheduler.withShared { $0.enqueueAtBack(self) } }
    }

    override func runClaimed(first: (any Sendable)?, max: Int) -> Bool {
        let drained: Drained
        if let first { drained = drain(first: first, max: max) } else { drained = drain(max: max) }
        switch drained {
        case .more: Scheduler.withShared { $0.enqueue(self) }; return true
        case .idle: return true
        case .dead: return false
        }
    }

    enum Drained { case idle, more, dead }

    /// Handles up to `max` messages from the mailbox. The caller owns the run loop (status
    /// `.scheduled`). The scheduler's run comes here, with no claimed message at all: an
    /// optional one (copied, tested and destroyed on every run even when nil, since the
    /// optimiser did not fold it away) was 3–4 % of callback ping-pong and ring.
    @inline(__always)
    private func drain(max: Int) -> Drained {
        asRunning { handler, me in handleQueued(used: 0, max: max, handler, me) }
    }

    /// ``drain(max:)`` after `first`, the message an I/O thread claimed the process with.
    private func drain(first: any Sendable, max: Int) -> Drained {
        asRunning { handler, me in
            guard isAlive else { release(); return .dead }
            if !handle(first, handler, me) { return .dead }
            return handleQueued(used: 1, max: max, handler, me)
        }
    }

    /// Runs `body` as this process: marked on the CPU, its node current, the running
    /// callback set, with the handler and the context taken once for the whole run (each
    /// copy of the closure and each `CallbackProcess` retained and released an object per
    /// message: a third of a callback consumer's time in fan-in-callback). A stop releases
    /// the process's references; these locals end with the run.
    @inline(__always)
    private func asRunning(_ body: (Handler, CallbackProcess) -> Drained) -> Drained {
        onCPU.store(true, ordering: .relaxed)
        // The handler may run off the schedulers (on a connection's I/O thread, which claims
        // a process a message from the wire wakes):
        // code in it that asks for the current node gets this process's.
        let outer = LocalNode.enter(hosted)
        // Unretained: this process outlives the drain that set it, and the pointer is
        // cleared (to the outer one) before the drain returns.
        let outerRunning = parley_swap_running_callback(Unmanaged.passUnretained(self).toOpaque())
        defer {
            _ = parley_swap_running_callback(outerRunning)
            LocalNode.leave(outer)
            onCPU.store(false, ordering: .relaxed)
        }
        guard let handler else { release(); return .dead }
        return body(handler, CallbackProcess(core: self))
    }

    /// The mailbox loop: each message is handled as it comes out of the queue, with no
    /// optional in between (every message paid for one's copies, tag checks and destroys,
    /// which took callback ping-pong from about 400 to 500 ns a round trip).
    @inline(__always)
    private func handleQueued(used start: Int, max: Int, _ handler: Handler, _ me: CallbackProcess) -> Drained {
        var used = start
        while used < max {
            guard isAlive else { release(); return .dead }
            if mailboxLimit > 0 { _ = applyPendingDrops() }
            if saved.isEmpty {
                switch refillOrIdle() {
                case .more: break
                case .idle: return .idle
                case .dead: release(); return .dead
                }
            }
            used += 1
            let message = saved.removeFirst()
            savedCount.store(saved.count)
            if !handle(message, handler, me) { return .dead }
        }
        if !isAlive { release(); return .dead }
        if saved.isEmpty {
            // Budget spent exactly as the mailbox ran dry: go idle now rather than queue a
            // run that would find nothing (and keep the next claim from the wire from taking it).
            switch refillOrIdle() {
            case .more: return .more
            case .idle: return .idle
            case .dead: release(); return .dead
            }
        }
        return .more
    }

    /// Runs the handler on one message; false if the process ended (its exit is done and its
    /// state released).
    @inline(__always)
    private func handle(_ message: any Sendable, _ handler: Handler, _ me: CallbackProcess) -> Bool {
        let next: Next
        do {
            next = try handler(&state!, message, me)
        } catch let e as ProcessExit {
            next = .stop(e.reason)
        } catch {
            next = .stop(.error(error))
        }
        noteHandled()
        if case .stop(let reason) = next {
            if isAlive { ExitSignals.exit(self, reason: reason) }
            release()
            return false
        }
        return true
    }

    /// With `saved` empty: moves arrived messages into it, or marks the process idle (so
    /// the next delivery schedules it) if none arrived.
    private func refillOrIdle() -> RefillStep {
        // `saved` is read under the lock too: once the unlock publishes `.idle`, an I/O
        // thread may claim the process and fill `saved` on its own thread (invariant 3).
        withShared { s in
            let step = s.mailbox.refillOrIdle(&saved)
            savedCount.store(saved.count)
            return step
        }
    }

    /// Runs `initialize` as this process, on the caller's thread, before the process takes
    /// any message (status is `.scheduled`, so senders queue without scheduling it). Returns
    /// the outcome; on success the process is live and scheduled if messages arrived.
    func start(_ initialize: (CallbackProcess) throws -> sending State?) -> StartOutcome {
        let value: State?
        do {
            let outer = LocalNode.enter(hosted)
            defer { LocalNode.leave(outer) }
            value = try initialize(CallbackProcess(core: self))
        } catch let e as ProcessExit {
            release()
            return .failed(e.reason)
        } catch {
            release()
            return .failed(.error(error))
        }
        guard let value else { release(); return .ignored }
        guard isAlive else { release(); return .failed(exitReason ?? .killed) }
        state = value
        let schedule = withShared { $0.mailbox.started() }
        switch schedule {
        case nil:
            release()
            return .failed(exitReason ?? .killed)
        case true?:
            Scheduler.shared.enqueue(self)
        case false?:
            break
        }
        return .started
    }

    enum StartOutcome {
        case started
        case ignored
        case failed(ExitReason)
    }

    private func release() {
        state = nil
        handler = nil
        saved.removeAll()
        savedCount.store(0)
    }

    override func didDie(external: Bool, wasIdle: Bool) {
        // Idle means no run loop holds the process: free its state now. Otherwise the run loop
        // frees it when it notices.
        if wasIdle { release() }
    }
}

