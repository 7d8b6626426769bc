import Parley

/// What happened to a connection with another node, as ``LocalNode/clusterEvents()`` and
/// ``LocalNode/monitorNodes(_:options:)`` report it.
///
/// ```swift
/// for await event in Distribution.clusterEvents() {
///     switch event {
///     case .nodeUp(let node): print("up", node)
///     case .suspect(let node, let silent): print(node, "silent for", silent)
///     case .reachable(let node): print(node, "answers again")
///     case .nodeDown(let node, let reason): print("down", node, reason)
///     }
/// }
/// ```
public enum ClusterEvent: Sendable, Hashable, CustomStringConvertible {
    /// A connection came up (Erlang's `nodeup`).
    case nodeUp(String)
    /// The failure detector has heard nothing from this Parley node for `silentFor`: it may
    /// be stopped, starved or cut off. The connection stays; it is either ``reachable(_:)``
    /// again or ``nodeDown(_:reason:)`` soon.
    case suspect(String, silentFor: Duration)
    /// A suspected node was heard from again.
    case reachable(String)
    /// The connection is gone (Erlang's `nodedown`), and why.
    case nodeDown(String, reason: NodeDownReason)

    /// The node the event is about.
    public var node: String {
        switch self {
        case .nodeUp(let n), .suspect(let n, _), .reachable(let n), .nodeDown(let n, _): return n
        }
    }

    public var description: String {
        switch self {
        case .nodeUp(let n): return "nodeup \(n)"
        case .suspect(let n, let d): return "suspect \(n) (silent for \(d.milliseconds) ms)"
        case .reachable(let n): return "reachable \(n)"
        case .nodeDown(let n, let r): return "nodedown \(n) (\(r))"
        }
    }
}

/// Why a connection went down: Erlang's `nodedown_reason` (`net_kernel:monitor_nodes/2`),
/// plus the failure detector's verdict.
public enum NodeDownReason: Sendable, Hashable, CustomStringConvertible {
    /// The connection closed or broke: the node exited or was killed (its socket closed at
    /// once), or closed the connection itself. Erlang's `connection_closed`.
    case connectionClosed
    /// Nothing arrived for four net tick periods. Erlang's `net_tick_timeout`.
    case netTickTimeout
    /// Parley's failure detector heard nothing from the node for `silentFor`, directly or
    /// through another node: stopped, hung, or cut off. Only between Parley nodes.
    case unresponsive(silentFor: Duration)
    /// This node disconnected it (``Distribution/disconnect(_:)``). Erlang's `disconnect`.
    case disconnected
    /// The node connected again (it restarted) and the new connection replaced this one.
    case replaced
    /// The node sent something that is not the distribution protocol; the connection was
    /// closed. Erlang closes such connections too (`connection_closed`).
    case protocolError(String)
    /// Distribution stopped on this node. Erlang's `net_kernel_terminated`.
    case distributionStopped

    /// The reason as an Erlang term, for `{nodedown, Node, [{nodedown_reason, Reason}]}`:
    /// Erlang's atoms where it has one, `{failure_detector, SilentMs}` otherwise.
    public var term: Term {
        switch self {
        case .connectionClosed, .protocolError: return .atom("connection_closed")
        case .netTickTimeout: return .atom("net_tick_timeout")
        case .unresponsive(let d): return .tuple([.atom("failure_detector"), .integer(Int(d.milliseconds))])
        case .disconnected: return .atom("disconnect")
        case .replaced: return .atom("replaced")
        case .distributionStopped: return .atom("net_kernel_terminated")
        }
    }

    public var description: String {
        switch self {
        case .connectionClosed: return "connection closed"
        case .netTickTimeout: return "net tick timeout"
        case .unresponsive(let d): return "no answer for \(d.milliseconds) ms (failure detector)"
        case .disconnected: return "disconnected"
        case .replaced: return "replaced by a new connection"
        case .protocolError(let why): return "protocol error: \(why)"
        case .distributionStopped: return "distribution stopped"
        }
    }
}

/// What ``LocalNode/monitorNodes(_:options:)`` adds to the plain `{nodeup, Node}` and
/// `{nodedown, Node}` messages. With any option the messages take Erlang's three-element
/// form, `{nodeup, Node, InfoList}` and `{nodedown, Node, InfoList}`, as
/// `net_kernel:monitor_nodes(true, Options)` sends them.
public struct MonitorNodesOptions: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `{nodedown_reason, Reason}` in nodedown's InfoList (Erlang's `nodedown_reason`;
    /// ``NodeDownReason/term``).
    public static let nodedownReason = Self(rawValue: 1)
    /// The failure detector's verdicts as well: `{nodesuspect, Node, [{silent_ms, Ms}]}`
    /// and `{nodereachable, Node, []}` (Parley's; Erlang has no such messages).
    public static let suspicion = Self(rawValue: 2)

    /// The message a watcher with these options gets for `event`, nil if none.
    func message(for event: ClusterEvent) -> Term? {
        let node = Term.atom(Atom(event.node))
        if isEmpty {
            switch event {
            case .nodeUp: return .tuple([.atom("nodeup"), node])
            case .nodeDown: return .tuple([.atom("nodedown"), node])
            case .suspect, .reachable: return nil
            }
        }
        switch event {
        case .nodeUp: return .tuple([.atom("nodeup"), node, .list([])])
        case .nodeDown(_, let reason):
            let info: [Term] = contains(.nodedownReason) ? [.tuple([.atom("nodedown_reason"), reason.term])] : []
            return .tuple([.atom("nodedown"), node, .list(info)])
        case .suspect(_, let silent):
            guard contains(.suspicion) else { return nil }
            return .tuple([.atom("nodesuspect"), node, .list([.tuple([.atom("silent_ms"), .integer(Int(silent.milliseconds))])])])
        case .reachable:
            guard contains(.suspicion) else { return nil }
            return .tuple([.atom("nodereachable"), node, .list([])])
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
