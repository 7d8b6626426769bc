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
final class CallbackProcess<State>: ProcessCore, @unchecked Sendable {
    // @unchecked Sendable: `state` and `handler` are touched only by the run loop, which the
    // scheduler runs on one thread at a time (status `.scheduled` guards re-entry), or by
    // `didDie` when the process was idle (no run loop active).
    typealias Handler = @Sendable (inout State, any Sendable, Process) throws -> Next
    @exclusivity(unchecked) private var state: State?
    @exclusivity(unchecked) private var handler: Handler?

    init(state: sending State, limit: MailboxLimit?, handler: @escaping Handler) {
        self.state = state
        self.handler = handler
        super.init(initialStatus: .idle, limit: limit)
    }

    override var kind: Process.Kind { .callback }

    override func run(budget: Int) {
        onCPU.store(true, ordering: .relaxed)
        defer { onCPU.store(false, ordering: .relaxed) }
        var used = 0
        while used < budget {
            guard isAlive else { release(); return }
            if mailboxLimit > 0 { _ = applyPendingDrops() }
            if saved.isEmpty {
                let step = withShared { s -> RefillStep in
                    if s.status == .dead { return .dead }
                    if refill(&s) { return .more }
                    s.status = .idle
                    return .idle
                }
                switch step {
                case .more: break
                case .idle: return
                case .dead: release(); return
                }
            }
            let message = saved.removeFirst()
            savedCount.store(saved.count, ordering: .relaxed)
            used += 1
            let next: Next
            do {
                next = try handler!(&state!, message, Process(core: self))
            } catch let e as ProcessExit {
                next = .stop(e.reason)
            } catch {
                next = .stop(.error(error))
            }
            handledCount.store(handledCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            reductionCount.store(reductionCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            if case .stop(let reason) = next {
                if isAlive { ExitSignals.exit(self, reason: reason) }
                release()
                return
            }
        }
        // Reductions used up with messages left: to the back of the run queue (status stays
        // .scheduled, so senders don't enqueue it twice).
        Scheduler.shared.enqueueAtBack(self)
    }

    private func release() {
        state = nil
        handler = nil
        saved.removeAll()
        savedCount.store(0, ordering: .relaxed)
    }

    override func didDie(external: Bool, wasIdle: Bool) {
        // Idle means no run loop holds the process: free its state now. Otherwise the run loop
        // frees it when it notices.
        if wasIdle { release() }
    }
}

enum RefillStep { case more, idle, dead }
