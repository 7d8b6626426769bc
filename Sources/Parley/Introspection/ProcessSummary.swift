import ParleyRuntime

extension Process {
    /// One row of a process listing: what ``Info`` tells, without the lists of links and
    /// monitors, so that listing every process of a large node stays cheap (observer's
    /// process table).
    ///
    /// ```swift
    /// let busiest = LocalNode.current.summaries().max { $0.messageQueueLength < $1.messageQueueLength }
    /// ```
    public struct Summary: Sendable, Hashable {
        public let pid: Pid
        public let kind: Kind
        public let status: Info.Status
        /// Messages in the mailbox (`message_queue_len`).
        public let messageQueueLength: Int
        /// Reductions used so far.
        public let reductions: Int
        /// The same estimate as ``Info/memory``.
        public let memory: Int
        public let registeredName: String?
        public let label: String?
        /// The OTP behaviour it runs (`gen_server`, `supervisor`), or nil.
        public let behaviour: String?
    }
}

extension LocalNode {
    /// A summary of every live process of this node, in no particular order.
    ///
    /// The walk is bounded: it holds one shard of the process table's lock at a time (a
    /// 64th of the processes) only to copy references, and reads each process afterwards
    /// under that process's own lock, so spawns and exits go on meanwhile. Processes spawned
    /// during the walk may be missed and ones that exit during it are left out.
    ///
    /// ```swift
    /// for row in LocalNode.current.summaries() where row.messageQueueLength > 1000 { print(row.pid) }
    /// ```
    public func summaries() -> [Process.Summary] {
        var out: [Process.Summary] = []
        out.reserveCapacity(processes.count)
        processes.forEach { p in if let s = p.summary() { out.append(s) } }
        return out
    }

    /// The summary of one live local process of this node, or nil.
    public func summary(_ pid: Pid) -> Process.Summary? {
        guard let p = pid.process, p.home === self else { return nil }
        return p.summary()
    }

    /// Up to `limit` messages of `pid`'s mailbox, oldest first, each as `describe` renders
    /// it, and how many messages it holds in all (`process_info(Pid, messages)`, bounded).
    ///
    /// While the process waits (for a message, or idle between callbacks) the whole mailbox
    /// is shown. While it runs, the messages a selective receive has already passed over sit
    /// in its own queue, which only it may read then: those are counted, not shown. The
    /// values are copied under the process's lock and rendered outside it. Nil for a dead or
    /// remote pid.
    ///
    /// ```swift
    /// if let (head, total) = LocalNode.current.peekMailbox(pid, limit: 10) { print(total, head) }
    /// ```
    public func peekMailbox(_ pid: Pid, limit: Int,
                            describe: (any Sendable) -> String = { String(describing: $0) }) -> (messages: [String], total: Int)? {
        guard let p = pid.process, p.home === self else { return nil }
        let n = max(0, limit)
        let copied = p.withShared { s -> (head: [any Sendable], total: Int)? in
            guard !s.mailbox.isDead else { return nil }
            var head: [any Sendable] = []
            var total = s.mailbox.incoming.count + p.savedCount.load()
            switch s.status {
            case .waiting, .calling, .idle:
                // The owner is parked and only a wake-up under this lock can start it again,
                // so its own queue holds still while the lock is held (the owner wrote it
                // before it released the lock to park).
                head = p.saved.prefix(n)
                total = s.mailbox.incoming.count + p.saved.count
            default:
                break
            }
            head.append(contentsOf: s.mailbox.incoming.prefix(n - head.count))
            return (head, total)
        }
        guard let copied else { return nil }
        return (copied.head.map(describe), copied.total)
    }
}

extension ProcessCore.Extras {
    /// What the extras hold, for the memory estimate (under the process's lock).
    var estimatedBytes: Int { 64 + links.count * 48 + (monitoredBy.count + monitoring.count) * 64 }
}

extension ProcessCore {
    func summary() -> Process.Summary? {
        typealias Snap = (status: Status, incoming: Int, name: String?, label: String?, behaviour: String?, extrasBytes: Int)
        let snap = withShared { s -> Snap? in
            guard s.status != .dead else { return nil }
            let e = s.extras
            let extrasBytes = e?.estimatedBytes ?? 0
            return (s.status, s.mailbox.incoming.count, e?.name, e?.label, e?.behaviour, extrasBytes)
        }
        guard let snap else { return nil }
        let queued = snap.incoming + savedCount.load()
        return Process.Summary(
            pid: pid, kind: kind, status: infoStatus(snap.status), messageQueueLength: queued,
            reductions: handledCount.load(ordering: .relaxed), memory: memoryEstimate(queued: queued, extrasBytes: snap.extrasBytes),
            registeredName: snap.name, label: snap.label, behaviour: snap.behaviour)
    }
}
