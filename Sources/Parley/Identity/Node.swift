import ParleyRuntime
import Synchronization

/// A node of a Parley or Erlang cluster, as named in pids and references.
///
/// Nodes are interned: two `Node` values with the same name are the same object, so pid
/// equality across nodes is cheap. The node this OS process runs is ``LocalNode/default``,
/// `nonode@nohost` until distribution starts, as on the BEAM.
///
/// ```swift
/// let other = Node.named("worker@10.0.0.2")
/// print(other.name)            // worker@10.0.0.2
/// print(Node.localNodeName)    // nonode@nohost
/// ```
public final class Node: Hashable, Sendable, CustomStringConvertible {
    /// The full node name, such as `app@host`.
    public let name: String
    /// The small number this node is printed with inside pids (`<N.id.serial>`); 0 is the local node.
    public let index: Int

    private init(name: String, index: Int) {
        self.name = name
        self.index = index
    }

    private static let table = Locked<[String: Node]>([:])

    /// The incarnation (this node at one creation) pids from it were last decoded with: the
    /// lookup every decoded pid makes, without the table's lock. Unmanaged is safe: the
    /// incarnation table keeps every incarnation for the life of the process; acquire and
    /// release publish its fields.
    let lastIncarnation = Atomic<Unmanaged<Incarnation>?>(nil)

    /// ``LocalNode/default`` lives as long as the OS process, so it is kept as a flag: a weak
    /// reference to it would give it a side table, and every retain and release of the
    /// default node (each message to another node takes one) would take the runtime's slow
    /// path. Other nodes of the OS process may go away, so they are held weakly.
    private struct Host {
        var isDefault = false
        weak var node: LocalNode?
    }
    private let hostBox = Locked(Host())

    /// The node of this OS process with this name, if any (kept for ``LocalNode/default``
    /// after it stops distribution, so that links to its old pids still see `nodedown`).
    var host: LocalNode? { hostBox.withLock { $0.isDefault ? LocalNode.default : $0.node } }
    func setHost(_ node: LocalNode?) {
        let isDefault = node === LocalNode.default
        hostBox.withLock { h in
            h.isDefault = isDefault
            h.node = isDefault ? nil : node
        }
    }

    /// The interned node called `name`.
    public static func named(_ name: String) -> Node {
        table.withLock { t in
            if let n = t[name] { return n }
            let n = Node(name: name, index: t.count + 1)
            t[name] = n
            return n
        }
    }

    /// The name of ``LocalNode/default`` (`nonode@nohost` when not distributed).
    public static var localNodeName: String { LocalNode.default.name }

    /// How many node names are interned (each pid or reference from a new node adds one).
    public static var knownCount: Int { table.withLock { $0.count } }

    public static func == (a: Node, b: Node) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }
    public var description: String { name }
}
