@_spi(Distribution) import Parley

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
        .tuple([.string(name), .pid(pid), .integer(epoch), worker.map { .tuple([.string($0.key), $0.arguments]) } ?? .atom("plain")])
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
        } else if case .tuple(let w) = f[3], w.count == 2, let key = w[0].stringValue {
            worker = WorkerSpec(key: key, arguments: w[1])
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
    public let key: String
    public let arguments: Term
}
