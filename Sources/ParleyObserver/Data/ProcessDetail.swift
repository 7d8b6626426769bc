@_spi(Distribution) import Parley
import ParleyOTP

/// Everything the process page shows of one process (observer's process window).
public struct ProcessDetail: Sendable, Codable {
    public let pid: String
    public let name: String?
    public let label: String?
    public let behaviour: String?
    public let kind: String
    public let status: String
    public let queue: Int
    public let handled: Int
    public let reductions: Int
    public let memory: Int
    public let links: [String]
    public let monitors: [String]
    public let monitoredBy: [String]
    public let trapExit: Bool
    public let mailboxLimit: Int?
    public let droppedMessages: Int
    /// The first messages of its mailbox, rendered and cut to ``ProcessDetail/messageLength``.
    public let mailbox: [String]
    /// A behaviour's state as the process rendered it (sys `get_status`), cut to
    /// ``ProcessDetail/stateLength``; nil for a plain process.
    public let state: String?
    /// Why the state could not be read (a busy server's timeout, say).
    public let stateError: String?

    /// How many characters of a message or a state the page gets (the browser never
    /// receives an unbounded string from a process).
    public static let messageLength = 500
    public static let stateLength = 8_000
    public static let mailboxHead = 20
}

enum ProcessLookup {
    /// The pid written `N.ID.SERIAL` or `<N.ID.SERIAL>` on `node`, as that node prints its own
    /// pids, if it names a live process there (other nodes' pids are not this page's).
    static func pid(_ text: String, on node: LocalNode) -> Pid? {
        var t = Substring(text)
        if t.hasPrefix("<") && t.hasSuffix(">") { t = t.dropFirst().dropLast() }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let id = UInt32(parts[1]), let serial = UInt32(parts[2]) else { return nil }
        let pid = node.localPid(id: id, serial: serial)
        // The first number is the node's own index as its pids print (0 for the default
        // node; a node hosted beside it in the OS process prints another).
        return key(pid) == t && pid.isAlive ? pid : nil
    }

    /// The pid as the page's URLs write it (`0.ID.SERIAL`).
    static func key(_ pid: Pid) -> String { String(pid.description.dropFirst().dropLast()) }

    static func cut(_ s: String, _ n: Int) -> String {
        s.count <= n ? s : String(s.prefix(n)) + "…"
    }

    static func detail(_ pid: Pid, node: LocalNode, stateTimeout: Duration) async -> ProcessDetail? {
        guard let info = Process.info(pid) else { return nil }
        let head = node.peekMailbox(pid, limit: ProcessDetail.mailboxHead) { cut(String(describing: $0), ProcessDetail.messageLength) }
        var state: String? = nil
        var stateError: String? = nil
        if info.behaviour != nil {
            do {
                let reply = try await Gen.systemCall(pid, .getStatus, timeout: stateTimeout)
                state = cut(reply as? String ?? String(describing: type(of: reply)), ProcessDetail.stateLength)
            } catch {
                stateError = "\(error)"
            }
        }
        return ProcessDetail(
            pid: pid.description, name: info.registeredName, label: info.label, behaviour: info.behaviour,
            kind: info.kind.rawValue, status: info.status.rawValue, queue: info.messageQueueLength,
            handled: info.messagesHandled, reductions: info.reductions, memory: info.memory,
            links: info.links.map(\.description), monitors: info.monitors.map(\.description),
            monitoredBy: info.monitoredBy.map(\.description), trapExit: info.trapExit,
            mailboxLimit: info.mailboxLimit?.capacity, droppedMessages: info.droppedMessages,
            mailbox: head?.messages ?? [], state: state, stateError: stateError)
    }
}
