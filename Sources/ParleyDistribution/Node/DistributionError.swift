/// Errors from the distribution API.
public enum DistributionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The node could not be reached or refused the connection.
    case connectFailed(node: String, reason: String)
    /// Distribution is not running (call ``Distribution/start(_:)`` first).
    case notStarted
    /// Distribution is already running on this OS process.
    case alreadyStarted(String)
    /// A node name that is not `name@host` (or a bare short name).
    case badNodeName(String)
    /// EPMD refused the registration, or could not be reached or started.
    case epmd(String)
    /// Listening on the distribution port failed.
    case listenFailed(String)
    /// Another node of this OS process (a ``LocalNode``) has this name.
    case nameInUse(String)
    /// The remote node has no spawnable function of that name.
    case unknownSpawnable(String)
    /// The configuration asks for TLS, but Parley was built without its `TLS` trait. Turn it
    /// on with `swift build --traits TLS`, or with `traits: ["TLS"]` on the package dependency.
    case tlsUnavailable

    public var description: String {
        switch self {
        case .connectFailed(let n, let r): return "cannot connect to \(n): \(r)"
        case .notStarted: return "distribution is not started on this node"
        case .alreadyStarted(let n): return "distribution is already started as \(n)"
        case .badNodeName(let n): return "bad node name '\(n)' (expected name@host)"
        case .epmd(let r): return "epmd: \(r)"
        case .listenFailed(let r): return "cannot listen for distribution connections: \(r)"
        case .unknownSpawnable(let n): return "no spawnable function '\(n)' on the remote node"
        case .nameInUse(let n): return "another node of this OS process is called \(n)"
        case .tlsUnavailable: return "distribution over TLS needs Parley's TLS trait: build with `--traits TLS`, or add `traits: [\"TLS\"]` to the Parley dependency"
        }
    }
}
