@_spi(Distribution) import Parley

/// Messages from one read, grouped by consecutive target, delivered together at the end of
/// the read: one mailbox lock and one wake-up per group instead of per message.
final class Inbox {
    // Only the owning connection's event loop thread touches it, so the dynamic exclusivity
    // check is redundant.
    @exclusivity(unchecked) private var groups: [(Pid, [any Sendable])] = []

    func add(_ message: any Sendable, to pid: Pid) {
        if let last = groups.indices.last, groups[last].0 == pid {
            groups[last].1.append(message)
        } else {
            groups.append((pid, [message]))
        }
    }

    func flush() {
        guard !groups.isEmpty else { return }
        let taken = groups
        groups.removeAll(keepingCapacity: true)
        for (pid, messages) in taken { Remote.deliverBatch(messages, to: pid) }
    }
}
