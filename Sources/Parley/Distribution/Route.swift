/// Where an operation on a pid, or on a name on a node, goes: decided here, once, as gen.erl's
/// `do_for_proc` decides (a process of this node, another node through the distribution
/// router, or another node while this one is not distributed). Every send, link, unlink,
/// monitor, demonitor, exit signal and reply asks this instead of looking at the pid's node
/// and the router itself.
enum Route {
    /// This node. The process, when the pid has one: a local pid decoded after its process
    /// died, or a name on this node, has none.
    case local(ProcessCore?)
    /// Another node, while this node is distributed.
    case remote(any RemoteRouter)
    /// Another node, while this node is not distributed: sends are dropped, links and
    /// monitors see `noconnection`.
    case unreachable

    /// The route to `pid` from a process of `home`. A live pid's process needs no lookup
    /// (a pid is live here only if it came from this OS process's memory, not from the
    /// wire), and the router is read only for a pid of another node.
    @inline(__always)
    init(_ pid: Pid, from home: LocalNode) {
        if let p = pid.process { self = .local(p); return }
        if pid.node === home.pidNode { self = .local(nil); return }
        self = Self.toOtherNode(from: home)
    }

    /// The route to `pid` from process `sender`, or from the current node without one (the
    /// sender's node is read only for a pid of another node).
    @inline(__always)
    init(_ pid: Pid, sender: ProcessCore?) {
        if let p = pid.process { self = .local(p); return }
        self.init(pid, from: sender?.home ?? .current)
    }

    /// The route to `pid` for a signal from `sender` (a pid of this OS process, or a
    /// stand-in such as ``Process/outside``).
    @inline(__always)
    init(_ pid: Pid, senderPid sender: Pid) {
        if let p = pid.process { self = .local(p); return }
        self.init(pid, from: LocalNode.hosting(sender) ?? .default)
    }

    /// The route to the node `node` (for `{Name, Node}`) from a process of `home`.
    init(_ node: Node, from home: LocalNode) {
        self = node.name == home.name ? .local(nil) : Self.toOtherNode(from: home)
    }

    static func toOtherNode(from home: LocalNode) -> Route {
        if let router = home.router { return .remote(router) }
        return .unreachable
    }
}
