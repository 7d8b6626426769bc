@_spi(Distribution) import Parley
import ParleyOTP

/// One name's placement, as every member of a ``DistributedRegistry`` keeps it.
public struct RegistryEntry: Sendable, Equatable, CustomStringConvertible {
    /// The registered name.
    public let name: String
    /// Its holder.
    public let pid: Pid
    /// The fencing epoch: each placement of the name (a registration, a move, a restart
    /// after its node died) has a higher one than the placement it replaced.
    public let epoch: Int
    /// How the registry starts it again elsewhere (`nil` for a process registered with
    /// ``DistributedRegistry/register(_:_:)``, which never moves).
    public let worker: WorkerSpec?

    public var description: String { "\(name) → \(pid)@\(pid.nodeName) epoch \(epoch)\(worker.map { " (\($0.key))" } ?? "")" }

    /// The node of the holder.
    public var node: String { pid.nodeName }

    /// Which of two holders of one name survives, a pure function of the two entries so
    /// that every node picks the same one: the higher epoch; at equal epochs the holder on
    /// the node whose name sorts first; then the lower pid.
    static func wins(_ a: RegistryEntry, over b: RegistryEntry) -> Bool {
        if a.epoch != b.epoch { return a.epoch > b.epoch }
        if a.node != b.node { return a.node < b.node }
        return a.pid < b.pid
    }

    /// `{Name, Pid, Epoch, plain | {Key, Args}}`.
    var term: Term {
        .tuple([.string(name), .pid(pid), .integer(epoch), worker?.term ?? .atom("plain")])
    }

    init(name: String, pid: Pid, epoch: Int, worker: WorkerSpec?) {
        self.name = name
        self.pid = pid
        self.epoch = epoch
        self.worker = worker
    }

    init?(_ t: Term) {
        guard case .tuple(let f) = t, f.count == 4, let name = f[0].stringValue, case .pid(let pid) = f[1],
              let epoch = f[2].intValue else { return nil }
        let worker: WorkerSpec?
        if f[3] == .atom("plain") {
            worker = nil
        } else if let w = WorkerSpec(f[3]) {
            worker = w
        } else {
            return nil
        }
        self.init(name: name, pid: pid, epoch: epoch, worker: worker)
    }

    func with(pid: Pid, epoch: Int) -> RegistryEntry { RegistryEntry(name: name, pid: pid, epoch: epoch, worker: worker) }
}

/// How a worker is started: the key it was defined under with
/// ``DistributedRegistry/define(_:_:)`` on every node (Swarm's `{M, F, A}`) and its arguments.
public struct WorkerSpec: Sendable, Equatable {
    /// The key the worker kind was defined under.
    public let key: String
    /// The registration's arguments (``WorkerContext/arguments``).
    public let arguments: Term
    /// When the worker's node restarts it after it exits (a ``DistributedSupervisor``
    /// child's restart type); `nil` for a registry's worker, whose name goes when it exits
    /// (Swarm's rule).
    public let restart: ChildSpec.Restart?

    public init(key: String, arguments: Term, restart: ChildSpec.Restart? = nil) {
        self.key = key
        self.arguments = arguments
        self.restart = restart
    }

    /// `{Key, Args}`, or `{Key, Args, permanent | transient | temporary}`.
    var term: Term {
        guard let restart else { return .tuple([.string(key), arguments]) }
        let r: String
        switch restart {
        case .permanent: r = "permanent"
        case .transient: r = "transient"
        case .temporary: r = "temporary"
        }
        return .tuple([.string(key), arguments, .atom(Atom(r))])
    }

    init?(_ t: Term) {
        guard case .tuple(let w) = t, (2...3).contains(w.count), let key = w[0].stringValue else { return nil }
        var restart: ChildSpec.Restart? = nil
        if w.count == 3 {
            switch w[2].atomName {
            case "permanent": restart = .permanent
            case "transient": restart = .transient
            case "temporary": restart = .temporary
            default: return nil
            }
        }
        self.init(key: key, arguments: w[1], restart: restart)
    }
}
