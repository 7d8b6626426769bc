import Synchronization
/// A process identifier, shaped like Erlang's NEW_PID so that it can travel between nodes:
/// node, id, serial and creation. Local pids print as `<0.id.serial>`, remote ones as
/// `<N.id.serial>` where N is the node's local index, as Erlang prints them.
///
/// Equality and hashing use node, id, serial and creation only, so a pid decoded from
/// another node compares equal to the same pid held here.
///
/// ```swift
/// let pid = Process.spawn { me in
///     let text = try await me.receive(String.self)
///     print("got", text)
/// }
/// pid.send("hello")        // never blocks; dropped silently if the process is dead
/// print(pid)               // <0.42.0>
/// ```
public struct Pid: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// What the pid holds besides its numbers, in one word: its local process (whose node and
    /// creation are this OS process's), or the node incarnation of a pid that holds none. Two
    /// words in all, so that a message such as `(pid, value)` fits an existential's inline
    /// buffer and is sent without a heap allocation.
    @usableFromInline
    enum Target: Sendable {
        case process(ProcessCore)
        case away(Incarnation)
    }

    @usableFromInline let target: Target
    /// The process number on its node.
    public let id: UInt32
    /// Bumped each time `id` wraps around, so pids are not reused soon.
    public let serial: UInt32

    /// The node the process lives on; `nil` means this node.
    public var node: Node? {
        switch target {
        case .process(let p): return p.hosted?.pidNode
        case .away(let i): return i.node
        }
    }

    /// The incarnation of the node that created the pid (Erlang's creation).
    public var creation: UInt32 {
        switch target {
        case .process: return LocalNode.memoryCreation
        case .away(let i): return i.creation
        }
    }

    /// The local process, for local pids: sends need no table lookup.
    @usableFromInline var process: ProcessCore? {
        if case .process(let p) = target { return p }
        return nil
    }

    /// The local process of a `.process` pid, with no reference taken: the pid holds one for
    /// as long as it is borrowed. Binding the case's payload (`process`, or `case
    /// .process(let p)`) retains and releases the receiver around the send, and with many
    /// senders that reference count's cache line crossed cores on each message.
    @inline(__always)
    var unretainedProcess: Unmanaged<ProcessCore> {
        // A `.process` target is the object's address itself (the tag of the first case of a
        // two-class enum is all-zero spare bits; ProcessLayoutTests checks it).
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: unsafeBitCast(target, to: UInt.self)).unsafelyUnwrapped)
    }

    init(local process: ProcessCore) {
        self.target = .process(process)
        self.id = process.id
        self.serial = process.serial
    }

    /// A pid of a node of this OS process whose process is gone (decoded from the wire after
    /// the process died), or one of another node of this OS process as it arrives from the
    /// wire (reached through distribution, so it holds no process).
    init(node: Node?, deadId id: UInt32, serial: UInt32) {
        self.target = .away(Incarnation.of(node, creation: LocalNode.memoryCreation))
        self.id = id
        self.serial = serial
    }

    /// A pid on another node, as decoded from the wire.
    public init(node: Node, id: UInt32, serial: UInt32, creation: UInt32) {
        self.target = .away(Incarnation.of(node, creation: creation))
        self.id = id
        self.serial = serial
    }

    /// Whether the pid names a process of a node this OS process runs (``LocalNode``): the
    /// default node or another one.
    public var isLocal: Bool { process != nil || node == nil || node?.host != nil }

    /// Whether the pid holds its process: a live or dead process of this OS process reached
    /// directly, not through distribution.
    @_spi(Distribution) public var holdsProcess: Bool { process != nil }

    /// The name of the pid's node.
    public var nodeName: String { node?.name ?? LocalNode.default.name }

    /// Whether the process is alive. Always `false` for a pid of another node: ask that node
    /// (monitor it) instead, as on the BEAM, where `is_process_alive/1` takes local pids only.
    public var isAlive: Bool { process?.isAlive ?? false }

    /// Sends `message` to the process. Never blocks. A message to a dead process, or to a
    /// process on a node we are not connected to, is dropped silently, as on the BEAM.
    /// Messages from one sender to one receiver arrive in the order sent.
    @inlinable
    public func send(_ message: any Sendable) {
        deliver(message)
    }

    @usableFromInline
    func deliver(_ message: any Sendable) {
        // A live local pid first, through the stored reference: the hot path builds no route
        // (and so takes no extra reference to the receiving process).
        // Matched in place, as in ``deliver(_:from:)``: no retain and release of the receiver.
        if case .process = target { return unretainedProcess._withUnsafeGuaranteedRef { $0.deliver(message) } }
        if case .remote(let router) = Route(self, from: .current) { router.send(message, to: self, from: nil) }
    }

    /// ``deliver(_:)`` from process `sender`: a pid of another node goes through the
    /// router of the sender's node.
    @usableFromInline
    func deliver(_ message: any Sendable, from sender: ProcessCore) {
        if let t = sender.traceSession(.send) { t.record(.send, other: self, detail: String(describing: message)) }
        // Matched in place, not through `process` (which returns its own reference): no
        // retain and release of the receiver, whose reference count many senders would
        // otherwise write on each message (its cache line then crossed cores per message).
        if case .process = target {
            return unretainedProcess._withUnsafeGuaranteedRef { $0.deliver(message, origin: sender.id) }
        }
        if case .remote(let router) = Route(self, from: sender.home) { router.send(message, to: self, from: nil) }
    }

    public static func == (a: Pid, b: Pid) -> Bool {
        a.id == b.id && a.serial == b.serial && a.creation == b.creation && a.node == b.node
    }

    public func hash(into h: inout Hasher) {
        h.combine(id)
        h.combine(serial)
        h.combine(creation)
        h.combine(node)
    }

    /// Orders pids by node index, then serial, then id, as Erlang's term order does for local pids.
    public static func < (a: Pid, b: Pid) -> Bool {
        (a.node?.index ?? 0, a.serial, a.id) < (b.node?.index ?? 0, b.serial, b.id)
    }

    public var description: String { "<\(node?.index ?? 0).\(id).\(serial)>" }
}

/// A node at one creation: what a pid that holds no process carries. Interned per node and
/// creation, so decoding a pid from the wire allocates nothing after the first.
@usableFromInline
final class Incarnation: Sendable {
    let node: Node?
    let creation: UInt32

    private init(node: Node?, creation: UInt32) {
        self.node = node
        self.creation = creation
    }

    private static let thisNode = Incarnation(node: nil, creation: LocalNode.memoryCreation)
    private static let table = Locked<[Key: Incarnation]>([:])
    private struct Key: Hashable {
        let node: ObjectIdentifier
        let creation: UInt32
    }

    /// The interned incarnation (Node objects are interned and never freed, so their
    /// identity is a stable key).
    static func of(_ node: Node?, creation: UInt32) -> Incarnation {
        guard let node else {
            if creation == LocalNode.memoryCreation { return thisNode }
            return Incarnation(node: nil, creation: creation)
        }
        if let last = node.lastIncarnation.load(ordering: .acquiring)?.takeUnretainedValue(), last.creation == creation {
            return last
        }
        let key = Key(node: ObjectIdentifier(node), creation: creation)
        let i = table.withLock { t in
            if let i = t[key] { return i }
            let i = Incarnation(node: node, creation: creation)
            t[key] = i
            return i
        }
        node.lastIncarnation.store(Unmanaged.passUnretained(i), ordering: .releasing)
        return i
    }
}
