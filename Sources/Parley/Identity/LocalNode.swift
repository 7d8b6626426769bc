import ParleyRuntime
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A node that runs in this OS process: its own process table, registered names and
/// distribution state, so that one OS process can host several nodes (a cluster in a test,
/// a simulation) while the schedulers stay shared.
///
/// Most programs never name one: `Process.spawn`, `Process.whereis` and the rest act on
/// ``default``, the node every OS process has (Erlang's one node per VM), or, from inside a
/// process, on that process's node. A second node is made with a name and reaches the others
/// the way BEAM nodes reach each other: through distribution, once each node has started
/// it (`ParleyDistribution`'s `LocalNode.startDistribution`).
///
/// ```swift
/// let b = try LocalNode(name: "b@127.0.0.1")
/// let echo = try b.spawn(SpawnOptions(name: "echo")) { me in
///     while true { if let (from, text) = try await me.receive((Pid, String).self) { me.send(text, to: from) } }
/// }
/// print(b.whereis("echo") == echo, Process.whereis("echo") == nil)   // true true: names are per node
/// ```
///
/// Pids travel between nodes in messages, as on the BEAM: a pid that arrives from another
/// node over distribution addresses its process through that node's connection (links,
/// monitors and `nodedown` behave as across machines). A pid captured in Swift code and used
/// on another node of the same OS process addresses its process directly, as a local pid.
public final class LocalNode: Sendable, CustomStringConvertible {
    /// The node of this OS process that `Process.spawn` and friends use outside any process
    /// (`nonode@nohost` until distribution starts, as on the BEAM).
    public static let `default` = LocalNode()

    /// The creation local pids and references carry in memory: always 0, so that pids made
    /// before and after a node starts distribution compare equal. On the wire a node's pid
    /// carries ``wireCreation`` instead.
    static let memoryCreation: UInt32 = 0

    /// The ``Node`` this node's pids carry in memory: nil for ``default`` (whose name changes
    /// when distribution starts), the interned node of ``name`` for any other.
    @_spi(Distribution) public let pidNode: Node?
    private let currentName: Locked<String>
    private let wireCreationValue = Atomic<UInt32>(0)
    private let installed = Locked<(any RemoteRouter)?>(nil)
    let processes = ProcessTable()
    let registry = LocalRegistry()

    /// How many nodes besides ``default`` exist: while none does, no pid from the wire can
    /// belong to this OS process unless it is the decoding node's own.
    private static let extraNodes = Atomic<Int>(0)
    private static let names = Locked<Set<String>>([])

    /// Whether a node made with ``init(name:)`` (not the default node) has this name now.
    @_spi(Distribution) public static func hostsNode(named name: String) -> Bool {
        names.withLock { $0.contains(name) }
    }

    private init() {
        pidNode = nil
        currentName = Locked("nonode@nohost")
    }

    /// A new node called `name` (`name@host`), hosted by this OS process. It has no
    /// processes and no names; it is not distributed until distribution starts on it.
    /// - Throws: ``ProcessError/badNodeName(_:)``, or ``ProcessError/nodeExists(_:)`` if
    ///   another node of this OS process has the name.
    public init(name: String) throws(ProcessError) {
        let parts = name.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, name != "nonode@nohost" else { throw .badNodeName(name) }
        let claimed = Self.names.withLock { $0.insert(name).inserted }
        guard claimed, LocalNode.default.name != name else {
            if claimed { Self.names.withLock { _ = $0.remove(name) } }
            throw .nodeExists(name)
        }
        let node = Node.named(name)
        pidNode = node
        currentName = Locked(name)
        node.setHost(self)
        Self.extraNodes.add(1, ordering: .relaxed)
    }

    deinit {
        if let pidNode {
            Self.names.withLock { _ = $0.remove(pidNode.name) }
            Self.extraNodes.subtract(1, ordering: .relaxed)
        }
    }

    /// The node's full name: `nonode@nohost` for ``default`` until distribution starts.
    public var name: String { currentName.withLock { $0 } }

    public var description: String { name }

    /// The node whose process the calling code runs in, or ``default`` outside any process:
    /// a callback handler's (wherever it runs), else the sequential process's whose task
    /// this is.
    public static var current: LocalNode {
        guard hostsSeveral else { return .default }
        if let p = pthread_getspecific(handlerKey) { return Unmanaged<LocalNode>.fromOpaque(p).takeUnretainedValue() }
        if let p = Scheduler.runningJob as? ProcessCore { return p.home }
        return SequentialProcess.current?.home ?? .default
    }

    /// The node of the callback handler running on this thread, if any: set around each
    /// handler run while this OS process hosts several nodes (with one, every process is
    /// the default node's and ``current`` needs no lookup).
    private static let handlerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Marks `node` as the running handler's node on this thread; returns what ``leave(_:)``
    /// restores (nil: nothing was marked).
    @inline(__always)
    static func enter(_ hosted: LocalNode?) -> UnsafeMutableRawPointer?? {
        guard hostsSeveral else { return nil }
        let outer = pthread_getspecific(handlerKey)
        // Unretained: the handler's process holds its node for the span of the run (the
        // default node lives as long as the OS process).
        pthread_setspecific(handlerKey, Unmanaged.passUnretained(hosted ?? .default).toOpaque())
        return .some(outer)
    }

    @inline(__always)
    static func leave(_ outer: UnsafeMutableRawPointer??) {
        guard case .some(let previous) = outer else { return }
        pthread_setspecific(handlerKey, previous)
    }

    /// The node a new process belongs to (the one its options name, else its parent's, else
    /// the current one), as ``ProcessCore/hosted`` holds it: nil for the default node.
    @usableFromInline
    static func hosted(_ options: SpawnOptions, parent: ProcessCore?) -> LocalNode? {
        if let node = options.node { return node.pidNode == nil ? nil : node }
        if let parent { return parent.hosted }
        guard hostsSeveral else { return nil }
        let current = LocalNode.current
        return current.pidNode == nil ? nil : current
    }

    /// The node `pid` lives on, when it is a node of this OS process.
    static func hosting(_ pid: Pid) -> LocalNode? {
        if let p = pid.process { return p.home }
        guard let n = pid.node else { return .default }
        return n.host
    }

    // MARK: Processes and names

    /// Spawns a sequential process on this node (``Process/spawn(_:)-(_)`` for this node).
    @discardableResult
    public func spawn(_ body: @escaping @Sendable @concurrent (Process) async throws -> Void) -> Pid {
        var options = SpawnOptions()
        options.node = self
        return try! Process.spawnSequential(options, parent: nil, body: body)
    }

    /// Spawns a sequential process with options on this node (`options.node` is ignored).
    @discardableResult
    public func spawn(_ options: SpawnOptions, _ body: @escaping @Sendable @concurrent (Process) async throws -> Void) throws(ProcessError) -> Pid {
        var options = options
        options.node = self
        return try Process.spawnSequential(options, parent: nil, body: body)
    }

    /// Spawns a callback process on this node.
    @discardableResult
    public func spawn<State>(_ options: SpawnOptions = SpawnOptions(), state: sending State,
                             handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next) throws(ProcessError) -> Pid {
        var options = options
        options.node = self
        return try Process.spawnCallback(options, parent: nil, state: state, handler: handler)
    }

    /// ``Process/run(_:_:)`` on this node: runs `body` as a sequential process here and
    /// returns its result.
    ///
    /// ```swift
    /// let names = try await b.run { me in Process.registered() }   // b's names
    /// ```
    public func run<T: Sendable>(_ body: @escaping @Sendable @concurrent (Process) async throws -> T) async throws -> T {
        try await Process.run(SpawnOptions(node: self), body)
    }

    /// Registers `pid`, a process of this node, under `name` here (`register/2`).
    public func register(_ name: String, _ pid: Pid) throws(ProcessError) {
        guard let p = pid.process, p.home === self else { throw .notLocal(pid) }
        try registry.register(name, pid)
    }

    /// Removes a name registered on this node (`unregister/1`).
    public func unregister(_ name: String) throws(ProcessError) { try registry.unregister(name) }

    /// The pid registered under `name` on this node (`whereis/1`).
    public func whereis(_ name: String) -> Pid? { registry.whereis(name) }

    /// The names registered on this node, sorted (`registered/0`).
    public func registered() -> [String] { registry.registered() }

    /// Every live process of this node, sorted (`Process.list/0`).
    public func list() -> [Pid] { processes.all().map(\.pid).sorted() }

    /// How many processes of this node are alive.
    public var processCount: Int { processes.count }

    // MARK: Distribution (for ParleyDistribution)

    /// The router in use, or nil while this node is not distributed.
    @_spi(Distribution) public var router: (any RemoteRouter)? { installed.withLock { $0 } }

    /// The creation this node puts in its pids and references on the wire (0 while not distributed).
    @_spi(Distribution) public var wireCreation: UInt32 { wireCreationValue.load(ordering: .acquiring) }

    /// Installs (or removes, with nil) the router; sets the name ``default`` has in pids.
    @_spi(Distribution) public func install(_ router: (any RemoteRouter)?, nodeName: String, creation: UInt32) {
        installed.withLock { $0 = router }
        wireCreationValue.store(router == nil ? 0 : creation, ordering: .releasing)
        guard pidNode == nil else { return }
        let old = currentName.withLock { n -> String in
            let old = n
            n = router == nil ? "nonode@nohost" : nodeName
            return old
        }
        // The old name keeps pointing here: a hosted node's links to this node's old pids
        // (node nil in memory) still fire when its connection to that name goes.
        if router != nil, old != nodeName { Node.named(nodeName).setHost(self) }
    }

    /// The local pid with this id and serial: alive, or a dead pid that compares equal to the
    /// one the process had.
    @_spi(Distribution) public func localPid(id: UInt32, serial: UInt32) -> Pid {
        if let p = processes.lookup(id: id, serial: serial) { return p.pid }
        return Pid(node: pidNode, deadId: id, serial: serial)
    }

    /// A pid from the wire of a node of this OS process other than the decoding one, as that
    /// node's pids are in memory (``memoryCreation``), so it compares equal to them; it has no
    /// process, so it is reached through distribution. Nil for a pid of any other node.
    @_spi(Distribution) public static func hostedPid(node: Node, id: UInt32, serial: UInt32, creation: UInt32) -> Pid? {
        guard hostsSeveral, let host = node.host, host.wireCreation == creation else { return nil }
        return Pid(node: host.pidNode, deadId: id, serial: serial)
    }

    /// Whether `ref` from the wire was made by a node of this OS process (references in
    /// memory carry no node: their ids are unique in the OS process).
    @_spi(Distribution) public static func isHostedReference(node: Node, creation: UInt32) -> Bool {
        guard hostsSeveral, let host = node.host else { return false }
        return host.wireCreation == creation
    }

    /// Whether this OS process runs nodes besides ``default``.
    @_spi(Distribution) public static var hostsSeveral: Bool { extraNodes.load(ordering: .relaxed) > 0 }

    /// The name and wire creation a pid carries when this node encodes it: its own pids
    /// carry this node's, a pid of another node of this OS process that node's, any other
    /// pid what it came with.
    @_spi(Distribution) public static func wireParts(of pid: Pid) -> (name: String, creation: UInt32) {
        guard let host = hosting(pid), pid.creation == memoryCreation else { return (pid.nodeName, pid.creation) }
        return (host.name, host.wireCreation)
    }

    /// The connection to `node` is gone: every link to a process there delivers an exit
    /// signal with `noconnection`, every monitor of one a DOWN with `noconnection`, and the
    /// links and monitors processes there held on this node's processes are forgotten
    /// (Erlang's distribution protocol: "when a connection is lost ... noconnection").
    @_spi(Distribution) public func nodeDown(_ node: Node) {
        // A pid of ``default`` is node nil in memory, on every node of this OS process.
        let isGone: (Pid) -> Bool = { $0.process == nil && ($0.node === node || ($0.node == nil && node.host === LocalNode.default)) }
        var signals: [ExitSignals.Pending] = []
        var downs: [(ProcessCore, Reference, Pid)] = []
        for p in processes.all() {
            p.withShared { s in
                guard let e = s.extras, !s.mailbox.isDead else { return }
                for l in e.links where isGone(l) {
                    signals.append(.init(target: p.pid, from: l, reason: .noconnection, isLink: true))
                }
                for (ref, target) in e.monitoring where isGone(target) { downs.append((p, ref, target)) }
                for (ref, watcher) in e.monitoredBy where isGone(watcher) { e.monitoredBy[ref] = nil }
            }
        }
        for (p, ref, target) in downs { p.monitorFired(ref, pid: target, reason: .noconnection) }
        ExitSignals.propagate(signals)
    }
}
