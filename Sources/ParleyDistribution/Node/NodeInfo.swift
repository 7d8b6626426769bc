import Parley

/// One connection to another node, as `net_kernel:node_info/1` tells it: its state, the
/// peer's address and type (a normal, visible node or a hidden one), and the traffic both
/// ways. ``LocalNode/nodesInfo`` lists them all (`net_kernel:nodes_info/0`).
///
/// ```swift
/// for n in LocalNode.default.nodesInfo {
///     print(n.name, n.state, n.framesIn, n.framesOut)   // "b@host up 5 6"
/// }
/// ```
public struct NodeInfo: Sendable, Hashable, Codable {
    /// Where the connection is in its life.
    public enum State: Sendable, Hashable, Codable, CustomStringConvertible {
        /// The handshake is under way (`pending` in `net_kernel:node_info/1`).
        case pending
        /// Connected, and the peer has been heard from within the last net tick period.
        case up
        /// Connected, but nothing has arrived for `ticks` net tick periods (TickTime/4
        /// each); at four the connection is dropped (`net_tick_timeout`). Erlang reports
        /// such a node as `up` until then; Parley tells it apart so a dashboard can show a
        /// suspect node.
        case silent(ticks: Int)
        /// Gone (never listed by ``LocalNode/nodesInfo``; a snapshot taken as it closes).
        case closed

        public var description: String {
            switch self {
            case .pending: return "pending"
            case .up: return "up"
            case .silent(let t): return "silent (\(t) tick\(t == 1 ? "" : "s"))"
            case .closed: return "closed"
            }
        }
    }

    /// The peer's node name.
    public let name: String
    public let state: State
    /// The peer's IP address and port (`{address, #net_address{}}`), once connected.
    public let address: String?
    /// Whether the peer is a hidden node (`{type, hidden}`; `normal` otherwise).
    public let isHidden: Bool
    /// The peer's creation (its incarnation), 0 while pending.
    public let creation: UInt32
    /// Frames read from and queued to the peer over this connection (those queued while it
    /// was connecting included), net ticks not counted (`{in, N}` and `{out, N}`).
    public let framesIn: Int
    public let framesOut: Int
    /// Bytes read and queued, frame headers included.
    public let bytesIn: Int
    public let bytesOut: Int
    /// How long the connection has been up, in nanoseconds (0 while pending).
    public let upForNanoseconds: UInt64
}

extension LocalNode {
    /// Every connection of this node, up or pending, with its traffic
    /// (`net_kernel:nodes_info/0`), sorted by name; empty when distribution does not run.
    public var nodesInfo: [NodeInfo] {
        (Distribution.router(of: self)?.nodesInfo ?? []).sorted { $0.name < $1.name }
    }

    /// The connection to `node`, if there is one (`net_kernel:node_info/1`).
    public func nodeInfo(_ node: String) -> NodeInfo? {
        guard let full = try? Distribution.fullName(node),
              let info = Distribution.router(of: self)?.connection(to: Node.named(full), dial: false)?.info,
              info.state != .closed else { return nil }
        return info
    }
}
