import ParleyRuntime
import Synchronization

/// A unique reference, as Erlang's `make_ref()`: used for monitors, timers and call tags.
///
/// ```swift
/// let ref = Reference.make()
/// print(ref)   // #Ref<0.0.17>
/// ```
public struct Reference: Hashable, Sendable, CustomStringConvertible {
    /// The node that made the reference; `nil` means this node.
    public let node: Node?
    /// The incarnation of the node that made it.
    public let creation: UInt32
    /// The unique number.
    public let id: UInt64

    private static let counter = Atomic<UInt64>(1)

    /// A reference unique on this node.
    public static func make() -> Reference {
        Reference(node: nil, creation: LocalNode.creation, id: counter.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// A reference from another node, as decoded from the wire.
    public init(node: Node?, creation: UInt32, id: UInt64) {
        self.node = node
        self.creation = creation
        self.id = id
    }

    public var description: String { "#Ref<\(node?.index ?? 0).\(id >> 32).\(id & 0xFFFF_FFFF)>" }
}
