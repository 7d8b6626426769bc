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
    /// The unique number (the first two 32-bit words of an Erlang reference).
    public let id: UInt64
    /// Words 2 and 3 of a reference from another node (Erlang references have 3 to 5 words).
    let extra: UInt64
    /// Word 4, and how many words the reference has on the wire (0 for this node's own).
    let extra2: UInt32
    let wordCount: UInt8
    /// For a local alias, the process it names: sends need no table lookup. Not part of
    /// equality, as with ``Pid``.
    let owner: ProcessCore?

    private static let counter = Atomic<UInt64>(1)

    /// A reference unique on this node.
    public static func make() -> Reference {
        Reference(node: nil, creation: LocalNode.memoryCreation, id: counter.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    static func makeAlias(owner: ProcessCore) -> Reference {
        Reference(id: counter.wrappingAdd(1, ordering: .relaxed).oldValue, owner: owner)
    }

    private init(id: UInt64, owner: ProcessCore) {
        self.node = nil
        self.creation = LocalNode.memoryCreation
        self.id = id
        self.extra = 0
        self.extra2 = 0
        self.wordCount = 0
        self.owner = owner
    }

    /// A reference from another node, as decoded from the wire.
    public init(node: Node?, creation: UInt32, id: UInt64) {
        self.node = node
        self.creation = creation
        self.id = id
        self.extra = 0
        self.extra2 = 0
        self.wordCount = 0
        self.owner = nil
    }

    /// A reference from another node with its words as Erlang sends them (NEWER_REFERENCE_EXT:
    /// 1 to 5 32-bit words).
    /// - Precondition: `words` has 1 to 5 words (the term decoder checks a frame's count and
    ///   throws before it gets here).
    public init(node: Node, creation: UInt32, words: [UInt32]) {
        precondition((1...5).contains(words.count), "an Erlang reference has 1 to 5 words")
        func w(_ i: Int) -> UInt64 { i < words.count ? UInt64(words[i]) : 0 }
        self.node = node
        self.creation = creation
        self.id = w(0) | w(1) << 32
        self.extra = w(2) | w(3) << 32
        self.extra2 = UInt32(w(4))
        self.wordCount = UInt8(words.count)
        self.owner = nil
    }

    /// The reference's words as they go on the wire: this node's own references have 3.
    public var words: [UInt32] {
        let all = [UInt32(truncatingIfNeeded: id), UInt32(truncatingIfNeeded: id >> 32),
                   UInt32(truncatingIfNeeded: extra), UInt32(truncatingIfNeeded: extra >> 32), extra2]
        return Array(all.prefix(wordCount == 0 ? 3 : Int(wordCount)))
    }

    public static func == (a: Reference, b: Reference) -> Bool {
        a.id == b.id && a.creation == b.creation && a.node == b.node && a.extra == b.extra && a.extra2 == b.extra2
    }

    /// Hashes the unique number only: it tells references apart almost always, and a
    /// monitor's or alias's table lookup (on every call) hashes one word instead of four.
    public func hash(into h: inout Hasher) {
        h.combine(id)
    }

    /// Sends `message` to the process this reference is an alias of. Dropped silently if the
    /// reference is not an active alias (deactivated, never one, or its process is dead), as
    /// `Alias ! Message` is in Erlang.
    public func send(_ message: any Sendable) {
        owner?.deliver(message, alias: id)
    }

    public var description: String { "#Ref<\(node?.index ?? 0).\(id >> 32).\(id & 0xFFFF_FFFF)>" }
}
