import Logging
import ParleyDistribution

/// A way to find the nodes of a cluster: libcluster's `Cluster.Strategy`, the Swift way.
///
/// A strategy only finds nodes; the ``ClusterTopology`` that runs it connects to them,
/// reconnects those that drop while they are still listed, and disconnects those that leave
/// by its ``ClusterTopology/DisconnectPolicy``. A custom strategy is a few lines:
///
/// ```swift
/// struct NodesFile: ClusterStrategy {
///     var path: String
///     func run(_ cluster: ClusterStrategyContext) async throws {
///         while true {
///             let text = try String(contentsOfFile: path, encoding: .utf8)
///             cluster.listed(text.split(separator: "\n").map(String.init))
///             try await Task.sleep(for: .seconds(5))
///         }
///     }
/// }
/// ```
public protocol ClusterStrategy: Sendable {
    /// Finds nodes and reports them to `cluster` until the task is cancelled. Throwing ends
    /// this run; the topology starts it again after a pause, as a supervisor restarts a
    /// crashed child.
    func run(_ cluster: ClusterStrategyContext) async throws
}

/// What a strategy reports to its topology.
public struct ClusterStrategyContext: Sendable {
    /// This node's name (a strategy leaves it out of what it reports, or the topology does).
    public let nodeName: String
    /// The topology's name, for log lines.
    public let topology: String
    /// Where the strategy's log lines go.
    public let logger: Logger
    let sink: @Sendable (ClusterReport) -> Void

    public init(nodeName: String, topology: String, logger: Logger, sink: @escaping @Sendable (ClusterReport) -> Void) {
        self.nodeName = nodeName
        self.topology = topology
        self.logger = logger
        self.sink = sink
    }

    /// The whole list of nodes that belong in the cluster now (a poll's answer): each is
    /// connected (again, if it dropped); a node missing from the list leaves by the
    /// topology's disconnect policy.
    public func listed(_ nodes: some Sequence<String>) {
        let all = Set(nodes)
        sink(.listed(all.subtracting([nodeName]), includesSelf: all.contains(nodeName)))
    }

    /// Nodes that announced themselves (a heartbeat): connected, and never a reason to
    /// disconnect anyone.
    public func seen(_ nodes: some Sequence<String>) {
        let s = Set(nodes).subtracting([nodeName])
        if !s.isEmpty { sink(.seen(s)) }
    }
}

/// A strategy's report.
public enum ClusterReport: Sendable, Equatable {
    /// The list, without this node; `includesSelf`: this node was on it (DNS strategies list
    /// every pod, this one too).
    case listed(Set<String>, includesSelf: Bool)
    case seen(Set<String>)
}
