import CParleyShims
import ParleyRuntime

extension Process {
    /// What `Process.info/1` (Erlang's `process_info/2`) tells about a live process.
    ///
    /// ```swift
    /// if let info = Process.info(pid) {
    ///     print(info.status, info.messageQueueLength, info.reductions, info.memory)
    /// }
    /// ```
    public struct Info: Sendable, CustomStringConvertible {
        /// Erlang's `status` values that apply here.
        public enum Status: String, Sendable {
            /// Running on a scheduler thread now.
            case running
            /// Ready to run, waiting for a scheduler thread.
            case runnable
            /// Waiting for a message.
            case waiting
            /// Exited; the info is the last one seen.
            case exiting
        }
        public let pid: Pid
        public let kind: Kind
        public let status: Status
        /// Messages in the mailbox (`message_queue_len`).
        public let messageQueueLength: Int
        /// Messages taken out of the mailbox so far.
        public let messagesHandled: Int
        /// Reductions used so far (at least one per message handled).
        public let reductions: Int
        public let links: [Pid]
        /// Pids this process monitors (`monitors`).
        public let monitors: [Pid]
        /// Pids monitoring this process (`monitored_by`).
        public let monitoredBy: [Pid]
        public let registeredName: String?
        public let label: String?
        /// The OTP behaviour it runs (`gen_server`, `supervisor`), as observer shows
        /// `proc_lib`'s initial call; nil for a plain process.
        public let behaviour: String?
        public let trapExit: Bool
        /// The mailbox bound, if any, and messages dropped by its overflow policy.
        public let mailboxLimit: MailboxLimit?
        public let droppedMessages: Int
        /// Whether senders reach the mailbox in parallel (``Process/enableParallelSend()``,
        /// ``SpawnOptions/parallelSend``): what the BEAM's `process_info(Pid,
        /// message_queue_data)` answering `off_heap` means for its parallel signal sending.
        public let parallelSend: Bool
        /// An estimate in bytes of what the process holds: its object, its mailbox and its
        /// bookkeeping, plus for a sequential process the Swift task it runs as.
        public let memory: Int

        public var description: String {
            var parts = ["\(pid)", kind.rawValue, status.rawValue, "queue=\(messageQueueLength)",
                         "handled=\(messagesHandled)", "reductions=\(reductions)", "memory=\(memory)B"]
            if let registeredName { parts.append("name=\(registeredName)") }
            if let label { parts.append("label=\(label)") }
            if !links.isEmpty { parts.append("links=\(links.map(\.description).joined(separator: ","))") }
            if !monitors.isEmpty { parts.append("monitors=\(monitors.count)") }
            if !monitoredBy.isEmpty { parts.append("monitored_by=\(monitoredBy.count)") }
            if trapExit { parts.append("trap_exit") }
            if parallelSend { parts.append("parallel_send") }
            return parts.joined(separator: " ")
        }
    }

    /// Information about a live local process, or `nil` if it is dead or remote
    /// (`process_info/1` returning `undefined`).
    public static func info(_ pid: Pid) -> Info? {
        guard let p = pid.process, p.isAlive else { return nil }
        return p.info()
    }
}

/// Bytes a Swift task of a parked sequential process holds beyond the process object: two
/// heap blocks, the task with its first context (304 bytes asked, a 320-byte block) and its
/// allocator's first slab (1,016 asked, 1,024), where the parked async frames fit since a
/// waiting receive parks in a small function of its own. `parley bench spawn-idle`
/// measured 1,617 B per sequential process in all (BENCHMARKS.md, 2026-12-06, 09:00 UTC),
/// of which the process object (a 192-byte block), its table slot and the benchmark's pid
/// are the rest.
let estimatedTaskBytes = 1344

extension ProcessCore {
    func info() -> Process.Info? {
        typealias Snapshot = (status: Status, incoming: Int, links: [Pid], monitors: [Pid], monitoredBy: [Pid],
                              name: String?, label: String?, behaviour: String?, trap: Bool, dropped: Int, extrasBytes: Int)
        let snap = withShared { s -> Snapshot? in
            guard s.status != .dead else { return nil }
            let e = s.extras
            let extrasBytes = e?.estimatedBytes ?? 0
            return (s.status, s.mailbox.incoming.count, e.map { Array($0.links) } ?? [], e.map { $0.monitoring.values } ?? [],
                    e.map { $0.monitoredBy.values } ?? [], e?.name, e?.label, e?.behaviour, e?.trapExit ?? false,
                    e?.dropped ?? 0, extrasBytes)
        }
        guard let snap else { return nil }
        let status = infoStatus(snap.status)
        let queued = snap.incoming + savedCount.load()
        let memory = memoryEstimate(queued: queued, extrasBytes: snap.extrasBytes)
        return Process.Info(
            pid: pid, kind: kind, status: status, messageQueueLength: queued,
            messagesHandled: handledCount.load(ordering: .relaxed), reductions: handledCount.load(ordering: .relaxed),
            links: snap.links.sorted(), monitors: snap.monitors, monitoredBy: snap.monitoredBy,
            registeredName: snap.name, label: snap.label, behaviour: snap.behaviour, trapExit: snap.trap,
            mailboxLimit: mailboxLimit > 0 ? MailboxLimit(capacity: mailboxLimit, overflow: overflow) : nil,
            droppedMessages: snap.dropped, parallelSend: arrivalShards != nil, memory: memory)
    }

    func infoStatus(_ s: Status) -> Process.Info.Status {
        switch s {
        case .waiting, .calling, .idle: return .waiting
        case .scheduled: return onCPU.load(ordering: .relaxed) ? .running : .runnable
        case .running: return .running
        case .dead: return .exiting
        }
    }

    func memoryEstimate(queued: Int, extrasBytes: Int) -> Int {
        var memory = objectBytes + queued * MemoryLayout<any Sendable>.stride + extrasBytes
        if kind == .sequential { memory += estimatedTaskBytes }
        return memory
    }

    /// The size of this process's own heap block.
    private var objectBytes: Int {
        let n = parley_malloc_usable_size(Unmanaged.passUnretained(self).toOpaque())
        return n > 0 ? n : 128
    }
}

