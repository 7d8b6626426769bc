import ParleyRuntime
import Synchronization

/// The seam between processes and distribution: what the `Parley` module asks of a remote
/// node (sends, links, monitors, exit signals), and what distribution asks of local
/// processes when signals arrive from the wire. `ParleyDistribution` installs the router
/// when a node starts; without one, remote pids behave as on a BEAM node that is not
/// connected (sends are dropped, links and monitors see `noconnection`).
///
/// Not for application code: these are the hooks `ParleyDistribution` is built on.
@_spi(Distribution)
public protocol RemoteRouter: AnyObject, Sendable {
    /// `To ! Message` for a pid on another node. `from` is the sending process, if any.
    func send(_ message: any Sendable, to pid: Pid, from: Pid?)
    /// `{Name, Node} ! Message`.
    func send(_ message: any Sendable, toName name: String, on node: Node, from: Pid)
    /// `To ! Message` from a process that suspends (its task, not its thread) while the
    /// connection to `pid`'s node is busy: ``Process/sendSuspending(_:to:)``.
    func sendSuspending(_ message: any Sendable, to pid: Pid, from: Pid?) async
    /// Sets up the remote half of a link from local `from` to remote `to`. Returns false if
    /// the node cannot be reached (the caller then sees `noconnection`).
    func link(from: Pid, to: Pid) -> Bool
    /// Removes the remote half of a link (UNLINK_ID).
    func unlink(from: Pid, to: Pid)
    /// An exit signal from a local process to a remote one (a link's or `exit/2`).
    func exit(from: Pid, to: Pid, reason: ExitReason, isLink: Bool)
    /// Monitors remote `target` (a pid) for local `watcher`. Returns false if the node
    /// cannot be reached (the caller then delivers DOWN with `noconnection`).
    func monitor(watcher: Pid, target: Pid, ref: Reference) -> Bool
    /// Monitors the process registered as `name` on `node`.
    func monitor(watcher: Pid, name: String, on node: Node, ref: Reference) -> Bool
    /// Removes a monitor set up with `monitor`.
    func demonitor(watcher: Pid, target: Pid, ref: Reference)
    /// A local process that remote `watcher` monitors has died (MONITOR_P_EXIT).
    func monitorFired(ref: Reference, watcher: Pid, target: Pid, reason: ExitReason)
}

@_spi(Distribution)
extension RemoteRouter {
    /// A router without busy connections never suspends a sender.
    public func sendSuspending(_ message: any Sendable, to pid: Pid, from: Pid?) async {
        send(message, to: pid, from: from)
    }
}

/// Entry points for `ParleyDistribution`: signals arriving from other nodes for processes of
/// this OS process. A node's own state (router, creation, table) is on ``LocalNode``.
@_spi(Distribution)
public enum Remote {
    /// A reference this node made, as it comes back from the wire.
    public static func localReference(id: UInt64) -> Reference {
        Reference(node: nil, creation: LocalNode.memoryCreation, id: id)
    }

    /// Whether `ref` is an active alias (a call's tag) of the local process `pid`: a
    /// `{Ref, Reply}` from the wire is then the reply to that call.
    public static func isActiveAlias(_ ref: Reference, of pid: Pid) -> Bool {
        guard ref.node == nil, let p = pid.process else { return false }
        return p.withShared { s in !s.mailbox.isDead && s.accepts(alias: ref.id) }
    }

    /// A reply from another node to a call that process `pid` made to a process of this OS
    /// process (a server that forwarded the call, as a moving registry worker does): the
    /// caller waits on its reply slot, not in its mailbox. True if the slot took it.
    public static func acceptReplyFromWire(_ tag: Reference, _ reply: any Sendable, to pid: Pid) -> Bool {
        guard let p = pid.process, p.kind != .callback else { return false }
        return p.acceptReply(tag.id, reply)
    }

    /// Delivers a message that arrived from another node. An idle callback process handles it
    /// at once on the calling (I/O) thread, one message at most, as the BEAM's scheduler runs
    /// the process a port's input wakes: no thread hand-off on the way in. Anything else is
    /// delivered the ordinary way.
    public static func deliverFromWire(_ message: any Sendable, to pid: Pid) {
        guard let p = pid.process else { return }
        guard p.kind == .callback else {
            p.deliver(message)
            return
        }
        p.runClaim(p.deliverClaiming(message), message)
    }

    /// Links local process `local` to `remote` on another node (the spawn_link of a remote
    /// spawn); if that node cannot be reached the link fires at once with `noconnection`.
    public static func link(_ local: Pid, toRemote remote: Pid) {
        guard let p = local.process, remote.process == nil, p.addLink(remote) else { return }
        if p.home.router?.link(from: local, to: remote) != true {
            ExitSignals.propagate([.init(target: local, from: remote, reason: .noconnection, isLink: true)])
        }
    }

    /// Delivers several messages from the wire to one local process, in order, with one lock
    /// round trip and one wake-up (sequential processes), or handles them at once on the
    /// calling thread (an idle callback process, as ``deliverFromWire(_:to:)``).
    public static func deliverBatch(_ messages: [any Sendable], to pid: Pid) {
        guard let p = pid.process, !messages.isEmpty else { return }
        if p.kind == .callback {
            for m in messages { deliverFromWire(m, to: pid) }
        } else {
            p.deliver(contentsOf: messages)
        }
    }

    /// LINK from remote `from` to local `to`. Returns false if `to` is dead (the caller
    /// answers with an exit signal carrying `noproc`).
    public static func linkArrived(from: Pid, to: Pid) -> Bool {
        guard let p = to.process else { return false }
        return p.addLink(from)
    }

    /// UNLINK_ID from remote `from` to local `to`.
    public static func unlinkArrived(from: Pid, to: Pid) {
        to.process?.removeLink(from)
    }

    /// An exit signal from remote `from` to local `to` (EXIT for a link, EXIT2 for `exit/2`).
    public static func exitArrived(from: Pid, to: Pid, reason: ExitReason, isLink: Bool) {
        if isLink, let p = to.process {
            // A link exit for a link this side no longer has is ignored (the unlink crossed it).
            let linked = p.withShared { $0.extras?.links.contains(from) ?? false }
            if !linked { return }
        }
        ExitSignals.propagate([.init(target: to, from: from, reason: reason, isLink: isLink)])
    }

    /// MONITOR_P from remote `watcher` for local `target`. Returns false if the target is dead
    /// (the caller answers MONITOR_P_EXIT with `noproc`).
    public static func monitorArrived(watcher: Pid, target: Pid, ref: Reference) -> Bool {
        guard let p = target.process else { return false }
        return p.addMonitor(ref, watcher: watcher)
    }

    /// DEMONITOR_P from a remote watcher.
    public static func demonitorArrived(target: Pid, ref: Reference) {
        target.process?.removeMonitor(ref)
    }

    /// MONITOR_P_EXIT: remote `target`, monitored by local `watcher`, has died.
    public static func monitorExitArrived(watcher: Pid, target: Pid, ref: Reference, reason: ExitReason) {
        watcher.process?.monitorFired(ref, pid: target, reason: reason)
    }
}
