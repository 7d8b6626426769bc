import Logging
@_spi(Distribution) import Parley
import ParleyOTP

/// Names that live across a cluster and survive node loss: Swarm's registry (and Horde's),
/// the Parley way.
///
/// Each node that runs a registry of the same name is a member. Every member keeps every
/// entry, so a lookup is a local read. A name belongs to one member, its *owner* on a
/// ``Placement`` (a consistent-hash ring by default); that owner serialises the name's
/// registrations, so two nodes that register one name at once get one winner and a clear
/// ``Failure/alreadyRegistered(_:_:)`` for the other. A registration returns once every
/// member has it: a lookup from any node finds it then.
///
/// - ``registerName(_:start:arguments:timeout:)`` starts a ``HandoffServer`` worker on the
///   name's owner (from a start function each node ``define(_:_:)``d, as Swarm's
///   `{M, F, A}`).
/// - When a member joins or leaves gracefully, the names whose owner changes move with
///   their state (``Handoff``); messages sent to a moving name are held and delivered in
///   order. When a member dies, its workers restart on their new owners, from their last
///   ``WorkerContext/checkpoint(_:_:)`` if they made one.
/// - A netsplit leaves each side with every name (``Placement/ring(virtualNodes:)``) or
///   only the quorum side (``Placement/staticQuorum(_:virtualNodes:)``); on heal one
///   holder per name stays, chosen by the placements' fencing epochs, and the other hands
///   it its state (``HandoffServer/resolveConflict(_:_:)``) and its messages.
///
/// ```swift
/// let workers = try await DistributedRegistry.start("workers")
/// workers.define("counter") { context in Counter() }   // on every node
/// let pid = try await workers.registerName("counter-1", start: "counter")
/// let n = try await workers.call("counter-1", Term.atom("bump"))
/// ```
public struct DistributedRegistry: Sendable {
    /// The registry's name: its process is registered under it on each member.
    public let name: String
    let node: LocalNode
    /// How long a move may take (the worker's answer, the new holder's start, every
    /// member's ack) before it is given up and the name stays where it is. Generous: a
    /// node handing thousands of names off under load needs seconds, and a move given up
    /// is retried a second later.
    public var handoffTimeout: Duration = .seconds(15)
    /// How long to wait for a connected node's first sync before taking it for a node
    /// that runs no registry.
    public var syncTimeout: Duration = .seconds(5)
    /// Supervised children (``DistributedSupervisor``): at most this many restarts on one
    /// node in ``period`` (OTP's `max_restarts`, 3 by default).
    public var intensity: Int = 3
    /// OTP's `max_seconds`, 5 s by default.
    public var period: Duration = .seconds(5)

    /// A handle to the registry `name` on `node` (started with ``start(_:on:placement:handoffTimeout:syncTimeout:intensity:period:logger:)``).
    public init(_ name: String = DistributedRegistry.defaultName, on node: LocalNode = .default) {
        self.name = name
        self.node = node
    }

    /// The default registry name.
    public static let defaultName = "parley_registry"

    /// Errors of the registry's operations.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The name has a holder already (Swarm's `{:error, {:already_registered, pid}}`).
        case alreadyRegistered(String, Pid)
        /// No process has the name.
        case notRegistered(String)
        /// No member may hold names now: a quorum placement without its quorum (Swarm's
        /// `{:error, :no_node_available}`).
        case noNodeAvailable(String)
        /// The owner has no start function under this key (``define(_:_:)`` it on every node).
        case undefinedWorker(String)
        /// The worker's `initialize` failed or ignored.
        case startFailed(String, String)
        /// Only a process of this node can be registered here.
        case notLocal(Pid)
        /// No registry of this name runs on this node.
        case noRegistry(String)
        /// The registry did not answer in time.
        case timeout(String)

        public var description: String {
            switch self {
            case .alreadyRegistered(let n, let p): return "\(n) is registered already, to \(p)"
            case .notRegistered(let n): return "no process is registered as \(n)"
            case .noNodeAvailable(let n): return "no node may hold \(n) now (the registry has no quorum)"
            case .undefinedWorker(let k): return "no worker is defined as \(k) on the name's owner"
            case .startFailed(let n, let why): return "the worker for \(n) did not start: \(why)"
            case .notLocal(let p): return "\(p) is not a process of this node"
            case .noRegistry(let r): return "no registry \(r) runs on this node"
            case .timeout(let n): return "the registry did not answer about \(n) in time"
            }
        }

        var term: Term {
            switch self {
            case .alreadyRegistered(_, let p): return .tuple([.atom("error"), .tuple([.atom("already_registered"), .pid(p)])])
            case .noNodeAvailable: return .tuple([.atom("error"), .atom("no_node_available")])
            case .undefinedWorker(let k): return .tuple([.atom("error"), .tuple([.atom("undefined_worker"), .string(k)])])
            case .startFailed(_, let why): return .tuple([.atom("error"), .tuple([.atom("start_failed"), .string(why)])])
            default: return .tuple([.atom("error"), .string(description)])
            }
        }

        init(_ t: Term, name: String) {
            guard case .tuple(let e) = t, e.count == 2 else { self = .startFailed(name, "\(t)"); return }
            switch e[1] {
            case .tuple(let r) where r.count == 2 && r[0] == .atom("already_registered"):
                self = r[1].pidValue.map { .alreadyRegistered(name, $0) } ?? .startFailed(name, "\(t)")
            case .atom("no_node_available"):
                self = .noNodeAvailable(name)
            case .tuple(let r) where r.count == 2 && r[0] == .atom("undefined_worker"):
                self = .undefinedWorker(r[1].stringValue ?? "\(r[1])")
            case .tuple(let r) where r.count == 2 && r[0] == .atom("start_failed"):
                self = .startFailed(name, r[1].stringValue ?? "\(r[1])")
            default:
                self = .startFailed(name, e[1].stringValue ?? "\(e[1])")
            }
        }
    }

    // MARK: Running

    struct Key: Hashable {
        let node: ObjectIdentifier
        let name: String
    }

    static let shared = Locked<[Key: RegistryShared]>([:])
    /// Worker definitions, by node and registry; made before or after the start.
    static let definitions = Locked<[Key: [String: WorkerStarter]]>([:])

    func starter(_ key: String) -> WorkerStarter? { Self.definitions.withLock { $0[self.key]?[key] } }

    var key: Key { Key(node: ObjectIdentifier(node), name: name) }

    var state: RegistryShared? { Self.shared.withLock { $0[key] } }

    /// Starts the registry `name` on `node` and returns once it has synced with every
    /// member it is connected to: its first lookup already sees the whole registry
    /// (Swarm's joiners waited for an anti-entropy round, #44). It finds the members it
    /// connects to later by itself.
    ///
    /// ```swift
    /// let registry = try await DistributedRegistry.start("workers", placement: .staticQuorum(2))
    /// ```
    /// - Throws: ``ProcessError/nameTaken(_:by:)`` if the name is registered already.
    @discardableResult
    public static func start(_ name: String = DistributedRegistry.defaultName, on node: LocalNode = .default,
                             placement: any Placement = .ring(), handoffTimeout: Duration = .seconds(15),
                             syncTimeout: Duration = .seconds(5), intensity: Int = 3, period: Duration = .seconds(5),
                             logger: Logger = Logger(label: "parley.registry")) async throws -> DistributedRegistry {
        var registry = DistributedRegistry(name, on: node)
        registry.handoffTimeout = handoffTimeout
        registry.syncTimeout = syncTimeout
        registry.intensity = intensity
        registry.period = period
        let shared = RegistryShared()
        let key = registry.key
        let fixed = registry
        let pid = try node.spawn(SpawnOptions(name: name, label: "registry \(name)")) { me in
            var server = RegistryServer(me: me, registry: fixed, shared: shared, placement: placement, log: logger)
            defer {
                Self.shared.withLock { s in if s[key] === shared { s[key] = nil } }
                Distribution.router(of: me.node)?.monitorNodes(me.pid, false)
            }
            try await server.run()
        }
        Self.shared.withLock { $0[key] = shared }
        _ = try? await Gen.call(pid, RegistryLocal.awaitSync, timeout: syncTimeout + .seconds(1))
        return registry
    }

    /// Leaves the cluster gracefully: every worker here hands off to its new owner (its
    /// state travels, its messages follow), plain names are removed, then the registry
    /// stops. Returns once its process has exited (``isRunning`` is false then). A SIGTERM
    /// handler calls this for a rolling deploy that loses nothing.
    public func stop(timeout: Duration = .seconds(30)) async {
        guard let pid = node.whereis(name) else { return }
        // From a process of this node, monitoring first: the exit is seen whenever it comes.
        _ = try? await node.run { me in
            let ref = me.monitor(pid)
            _ = try? await Gen.call(pid, RegistryLocal.leave, timeout: timeout)
            Process.exit(pid, .shutdown)
            _ = try await me.receive(DownMessage.self, after: .seconds(5), where: { $0.ref == ref })
        }
    }

    /// Whether the registry runs on this node.
    public var isRunning: Bool { node.whereis(name) != nil }

    /// The members (node names, this one included), sorted.
    public var members: [String] { state?.view.withLock { $0.members } ?? [] }

    // MARK: Workers

    /// Defines a worker kind under `key`: how to make the server that a registration with
    /// `start: key` runs. Every node must define the same keys (Swarm's `{M, F, A}` must
    /// exist on every node): a name starts on its owner, which may be any member. Define
    /// them before ``start(_:on:placement:handoffTimeout:syncTimeout:intensity:period:logger:)``: names may
    /// move to a node as soon as its registry starts.
    ///
    /// ```swift
    /// registry.define("counter") { context in Counter(name: context.name) }
    /// ```
    public func define<Server: HandoffServer>(_ key: String, _ make: @escaping @Sendable (WorkerContext) -> Server) {
        let node = self.node
        let starter: WorkerStarter = { context, registryPid, handed, held throws(StartError) in
            try HandoffProcess.start(make(context), name: context.name, registry: registryPid, node: node, handed: handed, held: held)
        }
        Self.definitions.withLock { $0[self.key, default: [:]][key] = starter }
    }

    // MARK: Names

    /// Starts the worker defined as `key` under `name` on the name's owner and returns its
    /// pid once every member knows it (Swarm's `register_name(name, m, f, a)`).
    ///
    /// ```swift
    /// let pid = try await registry.registerName("cart:42", start: "cart", arguments: .integer(42))
    /// ```
    /// - Throws: ``Failure/alreadyRegistered(_:_:)`` (with the holder),
    ///   ``Failure/noNodeAvailable(_:)``, ``Failure/undefinedWorker(_:)``,
    ///   ``Failure/startFailed(_:_:)``, ``Failure/noRegistry(_:)``, ``Failure/timeout(_:)``.
    @discardableResult
    public func registerName(_ name: String, start key: String, arguments: Term = .list([]),
                             timeout: Duration = .seconds(15)) async throws(Failure) -> Pid {
        try await request(.register(name: name, what: .worker(WorkerSpec(key: key, arguments: arguments))), name: name, timeout: timeout)
    }

    func registerName(_ name: String, spec: WorkerSpec, timeout: Duration) async throws(Failure) -> Pid {
        try await request(.register(name: name, what: .worker(spec)), name: name, timeout: timeout)
    }

    /// Removes `name` everywhere and stops its process.
    func terminate(_ name: String, timeout: Duration) async throws(Failure) {
        _ = try await request(.terminate(name: name), name: name, timeout: timeout)
    }

    /// Registers a running process of this node under `name` (Swarm's `register_name(name,
    /// pid)`): it never moves, and its name goes when it exits or its node does.
    ///
    /// - Throws: ``Failure/alreadyRegistered(_:_:)``, ``Failure/notLocal(_:)``, …
    public func register(_ name: String, _ pid: Pid, timeout: Duration = .seconds(15)) async throws(Failure) {
        guard pid.holdsProcess, pid.nodeName == node.name else { throw .notLocal(pid) }
        _ = try await request(.register(name: name, what: .pid(pid)), name: name, timeout: timeout)
    }

    /// Removes `name` on every member; its process keeps running (Swarm's
    /// `unregister_name`). Returns once every member has removed it.
    /// - Throws: ``Failure/notRegistered(_:)``.
    public func unregister(_ name: String, timeout: Duration = .seconds(15)) async throws(Failure) {
        _ = try await request(.unregister(name: name), name: name, timeout: timeout)
    }

    func request(_ r: RegistryLocal, name: String, timeout: Duration) async throws(Failure) -> Pid {
        guard let server = node.whereis(self.name) else { throw .noRegistry(self.name) }
        let reply: any Sendable
        do {
            reply = try await Gen.call(server, r, timeout: timeout)
        } catch {
            if case .timeout = error { throw .timeout(name) }
            throw .noRegistry(self.name)
        }
        guard let result = reply as? Result<Pid, Failure> else { throw .noRegistry(self.name) }
        return try result.get()
    }

    /// The holder of `name`, from this node's copy of the registry: a local read. Waits
    /// only while this node's first sync is under way.
    public func whereis(_ name: String) async -> Pid? {
        if let hit = lookup(name) { return hit }
        if let s = state, s.view.withLock({ $0.syncing }), let server = node.whereis(self.name) {
            _ = try? await Gen.call(server, RegistryLocal.awaitSync, timeout: syncTimeout + .seconds(1))
            return lookup(name)
        }
        return nil
    }

    /// The checkpoint `name` would restart from if its holder's node died now: the last
    /// one its next owner holds (the member that restarts it then; checkpoints go there),
    /// asked of that member; `nil` if none reached it. Decode it with `TermDecoder`. A
    /// deploy script can wait on it before stopping a node the hard way; the demo waits on
    /// it before its `kill -9`.
    ///
    /// ```swift
    /// if let t = await registry.lastCheckpoint(of: "account-42") {
    ///     let balance = try TermDecoder().decode(Int.self, from: t)
    /// }
    /// ```
    public func lastCheckpoint(of name: String) async -> Term? {
        guard let server = node.whereis(self.name) else { return nil }
        switch (try? await Gen.call(server, RegistryLocal.lastCheckpoint(name: name))) as? CheckpointPlace {
        case .here(let t)?:
            return t
        case .at(let member)?:
            // From a process of this node, over its connections.
            let registry = self.name
            let answer = try? await node.run { _ in
                try? await Gen.call(registry, on: Node.named(member), Term.tuple([.atom("last_checkpoint"), .string(name)]))
            }
            guard let t = answer.flatMap({ $0 }) as? Term, t != .atom("undefined") else { return nil }
            return t
        case nil:
            return nil
        }
    }

    /// The holder of `name` in this node's copy, without waiting.
    public func lookup(_ name: String) -> Pid? { state?.entries.withLock { $0[name]?.pid } }

    /// The entry of `name` (holder, epoch, worker), without waiting.
    public func entry(_ name: String) -> RegistryEntry? { state?.entries.withLock { $0[name] } }

    /// Every name and its holder (Swarm's `registered/0`).
    public func registered() -> [String: Pid] {
        state?.entries.withLock { $0.mapValues(\.pid) } ?? [:]
    }

    /// Sends `message` to the holder of `name` (a ``Term``, or a Gen call or cast, to reach
    /// another node). A worker that is moving holds it for its successor.
    /// - Throws: ``Failure/notRegistered(_:)``.
    public func send(_ message: any Sendable, to name: String) async throws(Failure) {
        // Found in this node's copy: sent at once, with no suspension between the lookup
        // and the send (see ``cast(_:_:)``).
        if let pid = lookup(name) { return deliver(message, to: pid) }
        guard let pid = await whereis(name) else { throw .notRegistered(name) }
        deliver(message, to: pid)
    }

    /// Sends from this registry's node: a task of another node (the default one, in a
    /// process that hosts several) goes through this node's connections.
    func deliver(_ message: any Sendable, to pid: Pid) {
        if pid.holdsProcess || LocalNode.current === node {
            Process.send(message, to: pid)
        } else {
            Distribution.router(of: node)?.send(message, to: pid, from: nil)
        }
    }

    /// Calls the GenServer registered as `name`, on whichever node holds it (a `:via` call).
    /// A call that reaches a worker while it moves is answered by its successor.
    ///
    /// ```swift
    /// let count = try await registry.call("counter-1", Term.atom("get"))
    /// ```
    /// - Throws: ``Gen/CallError``; ``Gen/CallError/noproc(_:)`` when no process has the name.
    public func call(_ name: String, _ request: any Sendable, timeout: Duration = Gen.defaultTimeout) async throws(Gen.CallError) -> any Sendable {
        guard let pid = await whereis(name) else { throw .noproc(name) }
        if LocalNode.current === node { return try await Gen.call(pid, request, timeout: timeout) }
        // A caller of another node of this OS process calls from a process of this one, so
        // that a reply from wherever the name moves reaches it over this node's connections.
        let result: Result<any Sendable, Gen.CallError>
        do {
            result = try await node.run { _ in
                do throws(Gen.CallError) { return .success(try await Gen.call(pid, request, timeout: timeout)) } catch { return .failure(error) }
            }
        } catch {
            throw .cancelled
        }
        return try result.get()
    }

    // MARK: Groups

    /// `pid`, a process of this node, joins `group` on every member (Swarm's `join/2`);
    /// returns once every member has it. It leaves when it exits or its node goes.
    ///
    /// ```swift
    /// try await registry.join("workers", me.pid)
    /// registry.publish(Term.atom("reload"), to: "workers")
    /// ```
    /// - Throws: ``Failure/notLocal(_:)``, ``Failure/noRegistry(_:)``, ``Failure/timeout(_:)``.
    public func join(_ group: String, _ pid: Pid, timeout: Duration = .seconds(15)) async throws(Failure) {
        guard pid.holdsProcess, pid.nodeName == node.name else { throw .notLocal(pid) }
        _ = try await groupRequest(.joinGroup(group: group, member: .pid(pid)), group: group, timeout: timeout)
    }

    /// The name `name` joins `group`: the group reaches whichever process holds the name,
    /// through moves and restarts, until the name leaves.
    public func join(_ group: String, name: String, timeout: Duration = .seconds(15)) async throws(Failure) {
        _ = try await groupRequest(.joinGroup(group: group, member: .name(name)), group: group, timeout: timeout)
    }

    /// `pid` leaves `group` everywhere; false if it was not a member.
    @discardableResult
    public func leave(_ group: String, _ pid: Pid, timeout: Duration = .seconds(15)) async throws(Failure) -> Bool {
        try await groupRequest(.leaveGroup(group: group, member: .pid(pid)), group: group, timeout: timeout)
    }

    /// The name `name` leaves `group`; false if it was not a member.
    @discardableResult
    public func leave(_ group: String, name: String, timeout: Duration = .seconds(15)) async throws(Failure) -> Bool {
        try await groupRequest(.leaveGroup(group: group, member: .name(name)), group: group, timeout: timeout)
    }

    func groupRequest(_ r: RegistryLocal, group: String, timeout: Duration) async throws(Failure) -> Bool {
        guard let server = node.whereis(self.name) else { throw .noRegistry(self.name) }
        do {
            return (try await Gen.call(server, r, timeout: timeout) as? Bool) ?? false
        } catch {
            if case .timeout = error { throw .timeout(group) }
            throw .noRegistry(self.name)
        }
    }

    /// The processes of `group` (Swarm's `members/1`), from this node's copy: its process
    /// members and the current holders of its name members.
    public func members(_ group: String) -> [Pid] {
        guard let s = state else { return [] }
        let members = s.groups.withLock { $0[group] ?? [] }
        var pids: [Pid] = []
        for m in members {
            switch m {
            case .pid(let p): pids.append(p)
            case .name(let n): if let p = lookup(n) { pids.append(p) }
            }
        }
        return Array(Set(pids)).sorted()
    }

    /// Every group with at least one member.
    public func groups() -> [String] { state?.groups.withLock { $0.keys.sorted() } ?? [] }

    /// Sends `message` to every member of `group` (Swarm's `publish/2`).
    public func publish(_ message: any Sendable, to group: String) {
        for pid in members(group) { deliver(message, to: pid) }
    }

    /// Calls every member of `group` in parallel and returns the replies that came within
    /// `timeout`, by member (Swarm's `multi_call/3`: failures and timeouts are left out).
    public func multicall(_ group: String, _ request: any Sendable, timeout: Duration = Gen.defaultTimeout) async -> [Pid: any Sendable] {
        let targets = members(group)
        return await withTaskGroup(of: (Pid, (any Sendable)?).self) { tasks in
            for pid in targets {
                tasks.addTask {
                    let reply: (any Sendable)?
                    if LocalNode.current === node {
                        reply = try? await Gen.call(pid, request, timeout: timeout)
                    } else {
                        reply = try? await node.run { _ -> Result<any Sendable, Gen.CallError> in
                            do throws(Gen.CallError) { return .success(try await Gen.call(pid, request, timeout: timeout)) } catch { return .failure(error) }
                        }.get()
                    }
                    return (pid, reply)
                }
            }
            var replies: [Pid: any Sendable] = [:]
            for await (pid, reply) in tasks { if let reply { replies[pid] = reply } }
            return replies
        }
    }

    /// Casts to the GenServer registered as `name` (dropped when nobody has it).
    public func cast(_ name: String, _ request: any Sendable) async {
        // Found in this node's copy: sent at once. A task that read the holder and was then
        // suspended before sending could send to a holder that has moved on since its node
        // acknowledged the move; the move's grace (``RegistryServer``) covers a short gap,
        // and this keeps the gap to a few instructions.
        if let pid = lookup(name) { return deliver(Gen.CastMessage(request: request), to: pid) }
        guard let pid = await whereis(name) else { return }
        deliver(Gen.CastMessage(request: request), to: pid)
    }
}
