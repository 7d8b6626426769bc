import Logging
@_spi(Distribution) import Parley
import ParleyRuntime

/// Erlang's `:global` for Parley nodes: names that hold across a cluster of Erlang, Elixir
/// and Parley nodes, kept consistent by global's own protocol (version 8, OTP 25 and later).
///
/// A visible node (`Distribution.Configuration.hidden = false`) runs `global_name_server`
/// and takes part in global's locking and name exchange exactly as a BEAM node does:
/// it shows in Erlang's `nodes()`, `global:sync()` returns on every node, and connecting
/// to one member of a cluster connects it to all of them (global's `connect_all`). Names
/// registered on either side are found on the other.
///
/// ```swift
/// var config = Distribution.Configuration(name: "swift@127.0.0.1", cookie: "secret")
/// config.hidden = false
/// try await Distribution.start(config)
/// try await Distribution.connect("erl@127.0.0.1")       // and every node erl knows
/// try await Global.sync()
/// let counter = Process.spawn { me in /* ... */ }
/// _ = try await Global.register("counter", counter)     // erl: global:whereis_name(counter)
/// if let pid = Global.whereis("logger") { pid.send(Term.atom("flush")) }
/// ```
///
/// Clashes (the same name held on both sides of a partition that heals) are resolved as
/// OTP resolves them: the node whose name sorts lower runs the resolve method of its own
/// entry. The methods are OTP's three (``Resolve``) or a Swift closure.
public enum Global {
    /// How a name clash is resolved when two partitions that both hold the name meet.
    public enum Resolve: Sendable {
        /// `global:random_exit_name/3`, OTP's default: the pid on the node whose name sorts
        /// first keeps the name; the other is killed.
        case randomExit
        /// `global:random_notify_name/3`: as `randomExit`, but the loser receives
        /// `{global_name_conflict, Name}` instead of being killed.
        case randomNotify
        /// `global:notify_all_name/3`: the name is removed and both receive
        /// `{global_name_conflict, Name, OtherPid}`.
        case notifyAll
        /// Your own rule: given the name and both pids, the pid that keeps the name, or nil
        /// to remove it. It runs on this node when this node decides the clash; on the wire
        /// the method is `fun parley_global:resolve/3`, which no BEAM node can run (a BEAM
        /// node that decides keeps the other partition's pid, as it does for C nodes).
        case custom(@Sendable (_ name: Term, _ pid1: Pid, _ pid2: Pid) -> Pid?)
    }

    /// Settings of global on a visible node (kernel's `connect_all` and
    /// `prevent_overlapping_partitions`, both true by default as in OTP 25).
    public struct Options: Sendable {
        /// Connect to every node the other partition knows (a full mesh).
        public var connectAll = true
        /// When a node reports that it lost its connection to another, disconnect from that
        /// other node too, so partitions never overlap.
        public var preventOverlappingPartitions = true
        public init() {}
    }

    /// What the name server knows: the nodes it is synchronised with.
    public struct Info: Sendable, Equatable {
        /// Nodes whose names this node has (global's `known`).
        public var known: [String]
        /// Nodes this node has synchronised with since they connected.
        public var synced: [String]
        /// Nodes whose connect session is under way.
        public var pending: [String]
    }

    /// Why a global operation failed.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// Distribution is not started on this node, or it is hidden (hidden nodes take no
        /// part in global, as C nodes do not; they go through an Erlang node instead:
        /// ``Global/register(_:_:through:on:)``).
        case notVisible
        /// No process has the name.
        case notRegistered(Term)
        /// The name server did not answer (the node is shutting down).
        case unavailable(String)

        public var description: String {
            switch self {
            case .notVisible: return "global needs a visible node (Distribution.Configuration.hidden = false)"
            case .notRegistered(let n): return "no process is registered globally as \(n)"
            case .unavailable(let why): return "global_name_server is not available: \(why)"
            }
        }
    }

    static let registrarName = "global_registrar"
    static let resource = Term.atom("global")

    // MARK: Public API

    /// `global:register_name/3`: registers `pid` as `name` on every node of the cluster.
    /// Returns false if the name is taken, or `pid` already has a global name.
    ///
    /// ```swift
    /// let ok = try await Global.register("counter", counter)
    /// ```
    @discardableResult
    public static func register(_ name: Term, _ pid: Pid, resolve: Resolve = .randomExit, on node: LocalNode = .default) async throws -> Bool {
        try await registrar(on: node, .register(name: name, pid: pid, method: method(resolve, name: name, node: node), replace: false))
    }

    /// Registers `pid` under the atom `name` (`global:register_name(name, Pid)`).
    @discardableResult
    public static func register(_ name: String, _ pid: Pid, resolve: Resolve = .randomExit, on node: LocalNode = .default) async throws -> Bool {
        try await register(.atom(Atom(name)), pid, resolve: resolve, on: node)
    }

    /// `global:re_register_name/3`: registers `pid` as `name`, replacing any holder.
    public static func reRegister(_ name: Term, _ pid: Pid, resolve: Resolve = .randomExit, on node: LocalNode = .default) async throws {
        _ = try await registrar(on: node, .register(name: name, pid: pid, method: method(resolve, name: name, node: node), replace: true))
    }

    /// `global:unregister_name/1`.
    public static func unregister(_ name: Term, on node: LocalNode = .default) async throws {
        guard whereis(name, on: node) != nil else { return }
        _ = try await registrar(on: node, .unregister(name))
    }

    /// Unregisters the atom `name`.
    public static func unregister(_ name: String, on node: LocalNode = .default) async throws {
        try await unregister(.atom(Atom(name)), on: node)
    }

    /// `global:whereis_name/1`: the pid registered as `name`, or nil. Reads this node's copy
    /// of the table: no message.
    public static func whereis(_ name: Term, on node: LocalNode = .default) -> Pid? {
        instance(of: node)?.tables.whereis(name, home: node.name)
    }

    /// `global:whereis_name(name)` for an atom name.
    public static func whereis(_ name: String, on node: LocalNode = .default) -> Pid? {
        whereis(.atom(Atom(name)), on: node)
    }

    /// `global:send/2`: sends `message` to the process registered as `name`.
    /// - Throws: ``Failure/notRegistered(_:)`` (Erlang exits with `{badarg, {Name, Msg}}`).
    @discardableResult
    public static func send(_ message: any Sendable, to name: Term, on node: LocalNode = .default) throws(Failure) -> Pid {
        guard let pid = whereis(name, on: node) else { throw .notRegistered(name) }
        // From `node`: a pid of another node goes through this node's connections.
        if pid.isAlive || (pid.node?.name ?? node.name) == node.name {
            pid.send(message)
        } else if let router = Distribution.router(of: node) {
            router.send(message, to: pid, from: nil)
        }
        return pid
    }

    /// `global:send/2` for an atom name.
    @discardableResult
    public static func send(_ message: any Sendable, to name: String, on node: LocalNode = .default) throws(Failure) -> Pid {
        try send(message, to: .atom(Atom(name)), on: node)
    }

    /// `global:registered_names/0`.
    public static func registeredNames(on node: LocalNode = .default) -> [Term] {
        instance(of: node)?.tables.state.withLock { Array($0.names.keys) } ?? []
    }

    /// `global:sync/0`: returns once this node has synchronised its names with every
    /// visible node it is connected to (or those nodes went down).
    public static func sync(on node: LocalNode = .default) async throws {
        guard let g = instance(of: node) else { throw Failure.notVisible }
        let nodes = (Distribution.router(of: node)?.connectedNodes ?? []).filter { !$0.isHidden }.map(\.name)
        do {
            _ = try await Gen.call(g.server, GlobalRequest.sync(nodes), timeout: nil)
        } catch {
            throw Failure.unavailable("\(error)")
        }
    }

    /// `global:disconnect/0` (OTP 25): disconnects from every node global knows without
    /// reporting lost connections, so the other nodes' `prevent_overlapping_partitions`
    /// takes nothing else down: the way for a node to leave a cluster. Returns the nodes.
    ///
    /// ```swift
    /// let left = try await Global.disconnect()      // before a planned shutdown
    /// ```
    @discardableResult
    public static func disconnect(on node: LocalNode = .default) async throws -> [String] {
        guard let g = instance(of: node) else { throw Failure.notVisible }
        do {
            return (try await Gen.call(g.server, GlobalRequest.disconnect, timeout: .seconds(30)) as? [String]) ?? []
        } catch {
            throw Failure.unavailable("\(error)")
        }
    }

    /// What the name server knows (global's `known`, `synced`, pending sessions).
    public static func info(on node: LocalNode = .default) async throws -> Info {
        guard let g = instance(of: node) else { throw Failure.notVisible }
        do {
            guard let info = try await Gen.call(g.server, GlobalRequest.info, timeout: .seconds(30)) as? Info else {
                throw Failure.unavailable("bad reply")
            }
            return info
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure.unavailable("\(error)")
        }
    }

    // MARK: A hidden node, through an Erlang node (the C-node path)

    /// Registers `pid` as `name` through `gateway`, an Erlang node this node can reach:
    /// `global:register_name_external/2` run there by `rex`, the path Erlang's C nodes use
    /// (`ei_global_register`). It works on a hidden node, which takes no part in global
    /// itself. The name goes when `pid` exits or `gateway` goes down; `gateway`'s global
    /// server links to `pid`, so `pid` gets an exit signal if `gateway` dies (trap exits to
    /// survive it). Returns false if the name is taken.
    ///
    /// ```swift
    /// let ok = try await Global.register("jobs", jobs, through: "erl@10.0.0.2")
    /// ```
    /// - Throws: ``Failure/unavailable(_:)`` if the gateway cannot be reached or refuses.
    @discardableResult
    public static func register(_ name: Term, _ pid: Pid, through gateway: String, on node: LocalNode = .default) async throws -> Bool {
        try await rex(gateway, "register_name_external", [name, .pid(pid)], on: node) == .atom("yes")
    }

    /// `global:whereis_name/1` asked of `gateway` (see ``register(_:_:through:on:)``).
    public static func whereis(_ name: Term, through gateway: String, on node: LocalNode = .default) async throws -> Pid? {
        try await rex(gateway, "whereis_name", [name], on: node).pidValue
    }

    /// `global:unregister_name_external/1` run on `gateway`.
    public static func unregister(_ name: Term, through gateway: String, on node: LocalNode = .default) async throws {
        _ = try await rex(gateway, "unregister_name_external", [name], on: node)
    }

    /// ``register(_:_:through:on:)`` for the atom `name`.
    @discardableResult
    public static func register(_ name: String, _ pid: Pid, through gateway: String, on node: LocalNode = .default) async throws -> Bool {
        try await register(.atom(Atom(name)), pid, through: gateway, on: node)
    }

    /// ``whereis(_:through:on:)`` for the atom `name`.
    public static func whereis(_ name: String, through gateway: String, on node: LocalNode = .default) async throws -> Pid? {
        try await whereis(.atom(Atom(name)), through: gateway, on: node)
    }

    /// ``unregister(_:through:on:)`` for the atom `name`.
    public static func unregister(_ name: String, through gateway: String, on node: LocalNode = .default) async throws {
        try await unregister(.atom(Atom(name)), through: gateway, on: node)
    }

    static func rex(_ gateway: String, _ function: String, _ args: [Term], on node: LocalNode) async throws -> Term {
        do {
            return try await node.run { me in
                let call = Term.tuple([.atom("call"), .atom("global"), .atom(Atom(function)), .list(args), .pid(me.pid)])
                guard let reply = try await Gen.call("rex", on: Node.named(gateway), call, timeout: .seconds(30)) as? Term else {
                    throw Failure.unavailable("\(gateway) answered with something other than a term")
                }
                if case .tuple(let t) = reply, t.first == .atom("badrpc") { throw Failure.unavailable("\(gateway): \(reply)") }
                return reply
            }
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure.unavailable("\(gateway): \(error)")
        }
    }

    // MARK: Running

    struct Instance: Sendable {
        let server: Pid
        let tables: GlobalTables
        let custom: Locked<[Term: @Sendable (Term, Pid, Pid) -> Pid?]>
    }

    static let instances = Locked<[ObjectIdentifier: Instance]>([:])

    static func instance(of node: LocalNode) -> Instance? { instances.withLock { $0[ObjectIdentifier(node)] } }

    /// Starts `global_name_server` on a visible node (from `Distribution.start`).
    static func start(on home: LocalNode, options: Options, log: Logger) throws {
        let tables = GlobalTables()
        let name = home.name
        let server = try home.spawn(SpawnOptions(name: MultiCall.server, label: "global_name_server")) { me in
            try await GlobalServer(me: me, home: name, tables: tables, options: options, log: log).run()
        }
        instances.withLock { $0[ObjectIdentifier(home)] = Instance(server: server, tables: tables, custom: Locked([:])) }
    }

    static func stop(on home: LocalNode) {
        guard let g = instances.withLock({ $0.removeValue(forKey: ObjectIdentifier(home)) }) else { return }
        Process.exit(g.server, .kill)
        if let r = home.whereis(registrarName) { Process.exit(r, .kill) }
    }

    static func registrar(on node: LocalNode, _ op: GlobalRegistrar.Op) async throws -> Bool {
        guard instance(of: node) != nil, let registrar = node.whereis(registrarName) else { throw Failure.notVisible }
        do {
            return (try await Gen.call(registrar, op, timeout: nil) as? Bool) ?? false
        } catch {
            throw Failure.unavailable("\(error)")
        }
    }

    static func method(_ r: Resolve, name: Term, node: LocalNode) -> Term {
        switch r {
        case .randomExit: return .export(module: "global", function: "random_exit_name", arity: 3)
        case .randomNotify: return .export(module: "global", function: "random_notify_name", arity: 3)
        case .notifyAll: return .export(module: "global", function: "notify_all_name", arity: 3)
        case .custom(let f):
            instance(of: node)?.custom.withLock { $0[name] = f }
            return .export(module: "parley_global", function: "resolve", arity: 3)
        }
    }

    /// Runs a resolve method here (`resolve_it/4` for a pid of this node): OTP's three
    /// methods, as funs or `{global, F}` (and global's own local funs, which can only be
    /// its default), or a Swift closure.
    static func runMethod(_ method: Term, name: Term, _ pid1: Pid, _ pid2: Pid, home: String, me: Process) -> Term {
        let function: String?
        switch method {
        case .export(module: "global", let f, 3): function = f.name
        case .tuple(let t) where t.count == 2 && t[0] == .atom("global"): function = t[1].atomName
        case .export(module: "parley_global", function: "resolve", 3):
            let f = instance(of: me.node)?.custom.withLock { $0[name] }
            guard let f else { return .tuple([.atom("EXIT"), .atom("undef")]) }
            return f(name, pid1, pid2).map { .pid($0) } ?? .atom("none")
        case .fun(let fun) where Global.funModule(fun) == "global": function = "random_exit_name"
        default: function = nil
        }
        let n1 = pid1.node?.name ?? home, n2 = pid2.node?.name ?? home
        let (minP, maxP) = ErlangOrder.less(n1, n2) ? (pid1, pid2) : (pid2, pid1)
        switch function {
        case "random_exit_name":
            me.exit(maxP, .kill)
            return .pid(minP)
        case "random_notify_name":
            me.send(Term.tuple([.atom("global_name_conflict"), name]), to: maxP)
            return .pid(minP)
        case "notify_all_name":
            me.send(Term.tuple([.atom("global_name_conflict"), name, .pid(pid2)]), to: pid1)
            me.send(Term.tuple([.atom("global_name_conflict"), name, .pid(pid1)]), to: pid2)
            return .atom("none")
        default:
            return .tuple([.atom("EXIT"), .atom("undef")])
        }
    }

    /// The module of a NEW_FUN_EXT fun (its bytes from the tag on).
    static func funModule(_ fun: Fun) -> String? {
        // 112, Size:32, Arity:8, Uniq:16 bytes, Index:32, NumFree:32, Module (an atom).
        let b = fun.bytes
        guard b.count > 30, b[0] == 112 else { return nil }
        var i = 1 + 4 + 1 + 16 + 4 + 4
        let tag = b[i]
        i += 1
        let len: Int
        switch tag {
        case 100, 118: guard i + 2 <= b.count else { return nil }; len = Int(b[i]) << 8 | Int(b[i + 1]); i += 2
        case 115, 119: len = Int(b[i]); i += 1
        default: return nil
        }
        guard i + len <= b.count else { return nil }
        return String(decoding: b[i..<i + len], as: UTF8.self)
    }

    // MARK: Locking (shared by the locker and the registrar)

    static func split(_ id: Term) -> (resource: Term, requester: Term) {
        splitOptional(id) ?? (id, .nil)
    }

    static func splitOptional(_ id: Term) -> (resource: Term, requester: Term)? {
        guard case .tuple(let t) = id, t.count == 2 else { return nil }
        return (t[0], t[1])
    }

    /// `set_lock_on_nodes/2`: asks each node's server for the lock; a refusal undoes the
    /// nodes that said yes. Nodes that are gone count as yes (they hold nothing).
    static func setLockOnNodes(_ me: Process, _ id: Term, _ nodes: [String], home: String, tables: GlobalTables) async throws -> Bool {
        if nodes.isEmpty { return true }
        if nodes.count > 1, nodes.contains(home), tables.canSetLock(split(id)) == nil { return false }
        let (replies, _) = try await MultiCall.call(me, nodes, .tuple([.atom("set_lock"), id]))
        guard replies.contains(where: { $0.1 != .true }) else { return true }
        if replies.count > 1 {
            try await delLock(me, id, replies.filter { $0.1 == .true }.map(\.0))
        }
        return false
    }

    static func delLock(_ me: Process, _ id: Term, _ nodes: [String]) async throws {
        _ = try await MultiCall.call(me, nodes, .tuple([.atom("del_lock"), id]))
    }

    /// `delete_global_lock/2`: every node but the boss, then the boss.
    static func deleteLock(_ me: Process, _ id: Term, _ nodes: [String]) async throws {
        guard let boss = ErlangOrder.boss(nodes) else { return }
        var rest = nodes
        if let i = rest.firstIndex(of: boss) { rest.remove(at: i) }
        try await delLock(me, id, rest)
        try await delLock(me, id, [boss])
    }

    /// global's `random_sleep/1`: up to 1/4 s the first time, doubling, at most 8 s.
    static func randomSleep(_ me: Process, _ times: Int) async throws {
        let tmax = times > 5 ? 8000 : ((1 << times) * 1000) / 8
        try await me.sleep(for: .milliseconds(Int.random(in: 1...max(1, tmax))))
    }

    private static let counter = Locked<Int>(Int(Int32.min))

    /// `erlang:unique_integer([monotonic])`: the tags that tell connect sessions apart.
    static func uniqueInteger() -> Term {
        .integer(counter.withLock { v in v += 1; return v })
    }
}
