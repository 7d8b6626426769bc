import Logging
@_spi(Distribution) import Parley

/// Process groups, Erlang's `pg` (OTP 23+): named groups of processes across a cluster, in
/// scopes, speaking `pg`'s own protocol, so Parley processes and Erlang or Elixir processes
/// join the same groups and see each other.
///
/// A scope is a process registered under the scope's name on each node that runs it (Erlang:
/// `pg:start_link(Scope)`; Elixir apps start one per library, Phoenix.PubSub's is
/// `Elixir.Phoenix.PubSub`). Scopes with the same name on connected nodes find each other and
/// exchange their members; a member that exits leaves its groups, and the members of a node
/// that goes away leave with it. Groups are any ``Term`` (a `String` here is an atom);
/// membership is eventually consistent, as `pg`'s is.
///
/// ```swift
/// let pg = try ProcessGroups.start(scope: "chat")       // pg:start_link(chat)
/// try await pg.join("room:1", me.pid)                   // pg:join(chat, 'room:1', self())
/// for member in pg.members("room:1") { member.send(Term.binary(Array("hello".utf8))) }
/// ```
public struct ProcessGroups: Sendable {
    /// The scope's name (an atom on the wire).
    public let scope: String
    let node: LocalNode

    /// `pg`'s default scope, `pg` (Erlang starts it when the kernel's `start_pg` is set).
    public static let defaultScope = "pg"

    /// A handle to the scope `scope` on `node` (started with ``start(scope:on:)``).
    public init(scope: String = ProcessGroups.defaultScope, on node: LocalNode = .default) {
        self.scope = scope
        self.node = node
    }

    /// Errors of the group operations.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// No scope of this name runs on this node (Erlang exits with `noproc`).
        case noScope(String)
        /// Only processes of this node can join or leave here (Erlang's `{nolocal, Pid}`).
        case notLocal(Pid)

        public var description: String {
            switch self {
            case .noScope(let s): return "no pg scope \(s) runs on this node"
            case .notLocal(let p): return "\(p) is not a process of this node: only local processes join or leave a pg group"
            }
        }
    }

    // MARK: Running a scope

    struct Key: Hashable {
        let node: ObjectIdentifier
        let scope: String
    }

    static let tables = Locked<[Key: ProcessGroupsTable]>([:])

    var key: Key { Key(node: ObjectIdentifier(node), scope: scope) }

    /// Starts the scope `scope` on `node` (`pg:start(Scope)`): a process registered under
    /// that name, which finds the same scope on every node this one connects to, now and
    /// later (visible or hidden), including Erlang and Elixir nodes.
    ///
    /// ```swift
    /// let pubsub = try ProcessGroups.start(scope: "Elixir.Phoenix.PubSub")
    /// ```
    /// - Throws: ``ProcessError/nameTaken(_:by:)`` if the name is registered already.
    @discardableResult
    public static func start(scope: String = ProcessGroups.defaultScope, on node: LocalNode = .default,
                             logger: Logger = Logger(label: "parley.pg")) throws(ProcessError) -> ProcessGroups {
        let table = ProcessGroupsTable()
        let groups = ProcessGroups(scope: scope, on: node)
        _ = try node.spawn(SpawnOptions(name: scope, label: "pg scope \(scope)")) { me in
            var server = ProcessGroupsServer(me: me, scope: scope, table: table, log: logger)
            defer {
                tables.withLock { t in if t[groups.key] === table { t[groups.key] = nil } }
                Distribution.router(of: me.node)?.monitorNodes(me.pid, false)
            }
            try await server.run()
        }
        tables.withLock { $0[groups.key] = table }
        return groups
    }

    /// Stops the scope: its members leave every group on every node (peers see its DOWN).
    public func stop() {
        if let pid = node.whereis(scope) { Process.exit(pid, .shutdown) }
    }

    /// Whether the scope runs on this node.
    public var isRunning: Bool { node.whereis(scope) != nil }

    // MARK: Membership

    /// `pg:join(Scope, Group, Pid)`: `pid` joins `group` (again, if it is a member already:
    /// it then counts twice, and must leave twice).
    ///
    /// ```swift
    /// try await ProcessGroups(scope: "chat").join(.atom("lobby"), me.pid)
    /// ```
    /// - Throws: ``Failure/notLocal(_:)``, ``Failure/noScope(_:)``.
    public func join(_ group: Term, _ pid: Pid) async throws {
        try await join(group, .one(pid))
    }

    /// `pg:join(Scope, Group, [Pid])`: several processes at once.
    public func join(_ group: Term, _ pids: [Pid]) async throws {
        try await join(group, .many(pids))
    }

    /// ``join(_:_:)-(Term,Pid)`` with the group as an atom.
    public func join(_ group: String, _ pid: Pid) async throws {
        try await join(.atom(Atom(group)), .one(pid))
    }

    func join(_ group: Term, _ members: ProcessGroupsState.Members) async throws {
        try checkLocal(members.pids)
        _ = try await call(.join(group, members))
    }

    /// `pg:leave(Scope, Group, Pid)`: `pid` leaves `group` once. Returns false if it was not
    /// a member (Erlang's `not_joined`).
    @discardableResult
    public func leave(_ group: Term, _ pid: Pid) async throws -> Bool {
        try await leave(group, .one(pid))
    }

    /// `pg:leave(Scope, Group, [Pid])`: false if none of them was a member.
    @discardableResult
    public func leave(_ group: Term, _ pids: [Pid]) async throws -> Bool {
        try await leave(group, .many(pids))
    }

    /// ``leave(_:_:)-(Term,Pid)`` with the group as an atom.
    @discardableResult
    public func leave(_ group: String, _ pid: Pid) async throws -> Bool {
        try await leave(.atom(Atom(group)), .one(pid))
    }

    func leave(_ group: Term, _ members: ProcessGroupsState.Members) async throws -> Bool {
        try checkLocal(members.pids)
        return (try await call(.leave(group, members)) as? Bool) ?? false
    }

    // MARK: Reading (no call: the scope's table)

    /// `pg:get_members(Scope, Group)`: every member on every node, most recent join first
    /// (a process that joined twice is listed twice). Empty if the scope is not running.
    public func members(_ group: Term) -> [Pid] {
        Self.tables.withLock { $0[key] }?.rows.withLock { $0[group]?.all } ?? []
    }

    /// ``members(_:)-(Term)`` with the group as an atom.
    public func members(_ group: String) -> [Pid] { members(.atom(Atom(group))) }

    /// `pg:get_local_members(Scope, Group)`: the members on this node.
    public func localMembers(_ group: Term) -> [Pid] {
        Self.tables.withLock { $0[key] }?.rows.withLock { $0[group]?.local } ?? []
    }

    /// ``localMembers(_:)-(Term)`` with the group as an atom.
    public func localMembers(_ group: String) -> [Pid] { localMembers(.atom(Atom(group))) }

    /// `pg:which_groups(Scope)`: every group with a member anywhere.
    public func groups() -> [Term] {
        Self.tables.withLock { $0[key] }?.rows.withLock { Array($0.keys) } ?? []
    }

    /// `pg:which_local_groups(Scope)`: the groups with a member on this node.
    public func localGroups() -> [Term] {
        Self.tables.withLock { $0[key] }?.rows.withLock { rows in rows.compactMap { $0.value.local.isEmpty ? nil : $0.key } } ?? []
    }

    // MARK: Subscriptions (OTP 25.1's pg:monitor_scope/1, pg:monitor/2)

    /// `pg:monitor_scope(Scope)` for `subscriber`: it receives `{Ref, join, Group, [Pid]}` and
    /// `{Ref, leave, Group, [Pid]}` (``Term``s) for every change from now on. Returns the
    /// reference and every group's members now. Ends with ``demonitor(_:)`` or the
    /// subscriber's exit.
    ///
    /// ```swift
    /// let (ref, now) = try await pg.monitorScope(for: me.pid)
    /// let change = try await me.receive(Term.self)          // {Ref, join, lobby, [<0.91.0>]}
    /// ```
    public func monitorScope(for subscriber: Pid) async throws -> (Reference, [Term: [Pid]]) {
        let s = try await call(.monitorScope(subscriber)) as! ProcessGroupsSubscription
        return (s.ref, s.groups)
    }

    /// `pg:monitor(Scope, Group)` for `subscriber`: the same messages for one group. Returns
    /// the reference and the group's members now.
    public func monitor(_ group: Term, for subscriber: Pid) async throws -> (Reference, [Pid]) {
        let s = try await call(.monitorGroup(group, subscriber)) as! ProcessGroupsSubscription
        return (s.ref, s.groups[group] ?? [])
    }

    /// `pg:demonitor(Scope, Ref)`: ends a subscription; false if there was none.
    @discardableResult
    public func demonitor(_ ref: Reference) async throws -> Bool {
        (try await call(.demonitor(ref)) as? Bool) ?? false
    }

    // MARK: Helpers

    func checkLocal(_ pids: [Pid]) throws(Failure) {
        for p in pids where p.nodeName != node.name { throw Failure.notLocal(p) }
    }

    func call(_ request: ProcessGroupsRequest) async throws -> any Sendable {
        guard let server = node.whereis(scope), Self.tables.withLock({ $0[key] }) != nil else { throw Failure.noScope(scope) }
        do {
            // pg.erl calls with an infinite timeout: a dead scope ends the call.
            return try await Gen.call(server, request, timeout: nil)
        } catch Gen.CallError.noproc {
            throw Failure.noScope(scope)
        }
    }
}
