import ParleyRuntime
import Synchronization

/// A unique reference, as Erlang's `make_ref()`: used for monitors, timers and call tags.
///
/// ```swift
/// let ref = Reference.make()
/// print(ref)   // #Ref<0.0.17>
/// ```
///
/// A reference made by ``Process/alias()`` (or by a call, see ``Gen``) is also an *alias*:
/// messages sent to it reach the process that made it while the alias is active, and are
/// dropped after (OTP 24's process aliases).
public struct Reference: Hashable, Sendable, CustomStringConvertible {
    /// The node that made the reference; `nil` means this node.
    public let node: Node?
    /// The incarnation of the node that made it.
    public let creation: UInt32
    /// The unique number.
    public let id: UInt64
    /// For a local alias, the process it names: sends need no table lookup. Not part of
    /// equality, as with ``Pid``.
    let owner: ProcessCore?

    private static let counter = Atomic<UInt64>(1)

    /// A reference unique on this node.
    public static func make() -> Reference {
        Reference(node: nil, creation: LocalNode.creation, id: counter.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    static func makeAlias(owner: ProcessCore) -> Reference {
        Reference(id: counter.wrappingAdd(1, ordering: .relaxed).oldValue, owner: owner)
    }

    private init(id: UInt64, owner: ProcessCore) {
        self.node = nil
        self.creation = LocalNode.creation
        self.id = id
        self.owner = owner
    }

    /// A reference from another node, as decoded from the wire.
    public init(node: Node?, creation: UInt32, id: UInt64) {
        self.node = node
        self.creation = creation
        self.id = id
        self.owner = nil
    }

    public static func == (a: Reference, b: Reference) -> Bool {
        a.id == b.id && a.creation == b.creation && a.node == b.node
    }

    public func hash(into h: inout Hasher) {
        h.combine(id)
        h.combine(creation)
        h.combine(node)
    }

    /// Sends `message` to the process this reference is an alias of. Dropped silently if the
    /// reference is not an active alias (deactivated, never one, or its process is dead), as
    /// `Alias ! Message` is in Erlang.
    public func send(_ message: any Sendable) {
        owner?.deliver(message, alias: id)
    }

    public var description: String { "#Ref<\(node?.index ?? 0).\(id >> 32).\(id & 0xFFFF_FFFF)>" }
}
