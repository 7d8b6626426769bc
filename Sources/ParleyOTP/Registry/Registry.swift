import Parley

/// Errors from ``Registry`` operations.
public enum RegistryError: Error, Sendable, CustomStringConvertible {
    /// A unique registry already has the key, for this pid (`{:error, {:already_registered, pid}}`).
    case alreadyRegistered(String, Pid)
    /// Registration is for a live local process only.
    case notAlive(Pid)
    /// A via name's key is not of the registry's key type (the key's description, and the
    /// type the registry wants). Nothing was registered.
    case wrongKeyType(key: String, expected: String)
    /// Via naming needs a registry with unique keys (`Registry.start_link(keys: :unique)`);
    /// this one has duplicate keys.
    case duplicateKeys
    /// Via naming through a registry whose values are neither `Void` nor optional needs the
    /// value to store: name the server with ``Registry/via(_:value:)``.
    case valueNeeded(valueType: String)
    /// The registry registers through other nodes (a cluster-wide one), so it cannot answer
    /// a synchronous start: name an ``AsyncGenServer`` with it, whose start awaits the
    /// registration (``NameRegistry/registerNameAsync(_:_:)``).
    case awaitRequired(registry: String)
    /// The registry could not register the name now (the registry's own error, described).
    case unavailable(String)

    public var description: String {
        switch self {
        case .alreadyRegistered(let k, let p): return "key \(k) is already registered to \(p)"
        case .notAlive(let p): return "\(p) is not a live local process"
        case .wrongKeyType(let k, let t): return "via key \(k) is not a \(t), the registry's key type"
        case .duplicateKeys: return "via naming needs a registry with unique keys; this one has duplicate keys"
        case .valueNeeded(let t): return "via naming in a registry of \(t) values needs a value: use registry.via(key, value:)"
        case .awaitRequired(let r): return "\(r) registers through the cluster: name an AsyncGenServer with it (its start awaits the registration)"
        case .unavailable(let why): return "the name could not be registered: \(why)"
        }
    }
}

/// What `via` naming needs from a registry (Erlang's `{via, Module, Name}` callbacks
/// `register_name/2`, `whereis_name/1`, `unregister_name/1`). ``Registry`` with unique keys
/// conforms; so can your own.
public protocol NameRegistry: Sendable {
    /// Registers `pid` under `key`; throws ``RegistryError/alreadyRegistered(_:_:)`` if taken.
    func registerName(_ key: any Hashable & Sendable, _ pid: Pid) throws(RegistryError)
    /// Removes `key`.
    func unregisterName(_ key: any Hashable & Sendable)
    /// The pid under `key`, if any.
    func whereisName(_ key: any Hashable & Sendable) -> Pid?
    /// Registers from an async context: what an ``AsyncGenServer``'s start calls, so that
    /// a registry that asks other nodes (``RegistryError/awaitRequired(registry:)`` from
    /// the synchronous form) can wait for them. By default, the synchronous form.
    func registerNameAsync(_ key: any Hashable & Sendable, _ pid: Pid) async throws(RegistryError)
}

extension NameRegistry {
    public func registerNameAsync(_ key: any Hashable & Sendable, _ pid: Pid) async throws(RegistryError) {
        try registerName(key, pid)
    }
}

/// Elixir's `Registry`: a local key-value store of processes, with unique or duplicate keys,
/// partitioned for concurrency. Entries are removed when their process exits.
///
/// ```swift
/// let rooms = Registry<String, String>(keys: .duplicate)
/// try rooms.register(me, key: "lobby", value: "alice")
/// rooms.dispatch("lobby") { entries in
///     for (pid, _) in entries { pid.send("hello, lobby") }
/// }
/// ```
///
/// Registering is for the calling process only, as in Elixir (`register(me, ...)` takes
/// the caller's own ``Process``). Each partition has a watcher process that monitors the
/// registered processes and removes their entries when they exit; lookups also skip dead
/// processes, so a dead process is never returned.
public final class Registry<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is in the partitions' `Locked` values.

    /// Unique keys (one process per key, like names) or duplicate keys (many, like topics).
    public enum Keys: Sendable { case unique, duplicate }

    public let keys: Keys
    let partitions: [Partition]

    final class Partition: @unchecked Sendable {
        // @unchecked Sendable: `table` is only touched under its lock; `watcher` is set once in init.
        struct Table {
            var entries: [Key: [(pid: Pid, value: Value)]] = [:]
            var keysOf: [Pid: [Key]] = [:]
            var watched = Set<Pid>()
        }
        let table = Locked(Table())
        var watcher: Pid!

        /// Removes every entry of `pid` (its DOWN arrived).
        func purge(_ pid: Pid) {
            table.withLock { t in
                t.watched.remove(pid)
                guard let keys = t.keysOf.removeValue(forKey: pid) else { return }
                for k in keys {
                    t.entries[k]?.removeAll { $0.pid == pid }
                    if t.entries[k]?.isEmpty == true { t.entries[k] = nil }
                }
            }
        }
    }

    /// A registry with `partitions` partitions (default: one per scheduler thread).
    public init(keys: Keys, partitions: Int = Scheduler.shared.count) {
        self.keys = keys
        self.partitions = (0..<max(1, partitions)).map { _ in Partition() }
        for p in self.partitions {
            p.watcher = try! Process.spawn(state: p) { partition, message, me in
                switch message {
                case let watch as Watch: me.monitor(watch.pid)
                case let down as DownMessage: partition.purge(down.pid)
                case is StopWatcher: return .stop(.normal)
                default: break
                }
                return .continue
            }
        }
    }

    deinit {
        for p in partitions { p.watcher.send(StopWatcher()) }
    }

    struct StopWatcher: Sendable {}
    /// Asks a partition's watcher to monitor `pid` (if `pid` is already dead, the DOWN
    /// comes at once with `noproc` and purges it just the same).
    struct Watch: Sendable { let pid: Pid }

    private func partition(_ key: Key) -> Partition {
        partitions[Int(UInt(bitPattern: key.hashValue) % UInt(partitions.count))]
    }

    /// Registers the calling process under `key` with `value` (`Registry.register/3`). In a
    /// duplicate registry a process may register a key several times.
    /// - Throws: ``RegistryError/alreadyRegistered(_:_:)`` in a unique registry whose key is
    ///   held by a live process.
    public func register(_ me: some ProcessContext, key: Key, value: Value) throws(RegistryError) {
        try register(pid: me.pid, key: key, value: value)
    }

    func register(pid: Pid, key: Key, value: Value) throws(RegistryError) {
        guard pid.isAlive else { throw .notAlive(pid) }
        let p = partition(key)
        let needsMonitor = try p.table.withLock { t throws(RegistryError) -> Bool in
            if keys == .unique, let owner = t.entries[key]?.first(where: { $0.pid.isAlive }) {
                throw .alreadyRegistered("\(key)", owner.pid)
            }
            if keys == .unique { t.entries[key] = [(pid, value)] } else { t.entries[key, default: []].append((pid, value)) }
            t.keysOf[pid, default: []].append(key)
            return t.watched.insert(pid).inserted
        }
        if needsMonitor { p.watcher.send(Watch(pid: pid)) }
    }

    /// Removes the calling process's entries under `key` (`Registry.unregister/2`).
    public func unregister(_ me: some ProcessContext, key: Key) {
        unregister(pid: me.pid, key: key)
    }

    func unregister(pid: Pid, key: Key) {
        partition(key).table.withLock { t in
            t.entries[key]?.removeAll { $0.pid == pid }
            if t.entries[key]?.isEmpty == true { t.entries[key] = nil }
            t.keysOf[pid]?.removeAll { $0 == key }
        }
    }

    /// The live processes under `key`, with their values (`Registry.lookup/2`), in the order
    /// they registered.
    public func lookup(_ key: Key) -> [(pid: Pid, value: Value)] {
        partition(key).table.withLock { $0.entries[key] ?? [] }.filter { $0.pid.isAlive }
    }

    /// The keys `pid` is registered under (`Registry.keys/2`).
    public func keys(of pid: Pid) -> [Key] {
        var out: [Key] = []
        guard pid.isAlive else { return out }
        for p in partitions { p.table.withLock { t in out.append(contentsOf: t.keysOf[pid] ?? []) } }
        return out
    }

    /// Calls `body` with the entries under `key` (`Registry.dispatch/3`): pub/sub. `body`
    /// runs outside the registry's locks, so it may send, register or look up freely.
    public func dispatch(_ key: Key, _ body: ([(pid: Pid, value: Value)]) throws -> Void) rethrows {
        let entries = lookup(key)
        if !entries.isEmpty { try body(entries) }
    }

    /// Replaces the calling process's value under a unique `key` (`Registry.update_value/3`).
    /// Returns the new value, or `nil` if the caller does not own the key.
    @discardableResult
    public func updateValue(_ me: some ProcessContext, key: Key, _ transform: (Value) -> Value) -> Value? {
        partition(key).table.withLock { t -> Value? in
            guard var list = t.entries[key], let i = list.firstIndex(where: { $0.pid == me.pid }) else { return nil }
            let v = transform(list[i].value)
            list[i].value = v
            t.entries[key] = list
            return v
        }
    }

    /// The number of live entries (`Registry.count/1`).
    public var count: Int {
        partitions.reduce(0) { n, p in
            n + p.table.withLock { t in t.entries.values.reduce(0) { $0 + $1.filter { $0.pid.isAlive }.count } }
        }
    }
}

/// Via naming: `ServerName.via(registry, key)` registers a server under `key` (Elixir's
/// `{:via, Registry, {registry, key}}`). The entry's value is `()` for a `Registry<K, Void>`
/// and `nil` for a registry of optional values; for any other value type, name the server
/// with ``Registry/via(_:value:)`` (`{:via, Registry, {registry, key, value}}`).
///
/// Mistakes that come from data are thrown, never trapped: a key of another type
/// (``RegistryError/wrongKeyType(key:expected:)``), a duplicate-keys registry
/// (``RegistryError/duplicateKeys``), a missing value (``RegistryError/valueNeeded(valueType:)``).
/// A server's start fails with the error; nothing is registered.
extension Registry: NameRegistry {
    public func registerName(_ key: any Hashable & Sendable, _ pid: Pid) throws(RegistryError) {
        guard let value = Self.implicitValue else { throw .valueNeeded(valueType: "\(Value.self)") }
        try registerName(key, pid, value: value)
    }

    func registerName(_ key: any Hashable & Sendable, _ pid: Pid, value: Value) throws(RegistryError) {
        guard let k = key as? Key else { throw .wrongKeyType(key: "\(key)", expected: "\(Key.self)") }
        guard keys == .unique else { throw .duplicateKeys }
        try register(pid: pid, key: k, value: value)
    }

    public func unregisterName(_ key: any Hashable & Sendable) {
        guard let k = key as? Key else { return }
        for e in lookup(k) { unregister(pid: e.pid, key: k) }
    }

    public func whereisName(_ key: any Hashable & Sendable) -> Pid? {
        guard let k = key as? Key else { return nil }
        return lookup(k).first?.pid
    }

    /// The value a plain via name stores: `()` or `nil`; none for other value types.
    static var implicitValue: Value? {
        if let v = () as? Value { return v }
        if let optional = Value.self as? any ExpressibleByNilLiteral.Type { return optional.init(nilLiteral: ()) as? Value }
        return nil
    }

    /// A via name that also stores `value` under `key` (Elixir's
    /// `{:via, Registry, {registry, key, value}}`), for registries whose values carry data.
    ///
    /// ```swift
    /// let rooms = Registry<String, Int>(keys: .unique)          // value: the room's capacity
    /// let room = try Room().start(name: rooms.via("lobby", value: 50))
    /// rooms.lookup("lobby").first?.value                         // 50
    /// ```
    public func via(_ key: Key, value: Value) -> ServerName {
        .via(ValuedName(registry: self, value: value), key)
    }
}

/// A ``Registry`` seen through a via name that carries its entry's value.
struct ValuedName<Key: Hashable & Sendable, Value: Sendable>: NameRegistry {
    let registry: Registry<Key, Value>
    let value: Value

    func registerName(_ key: any Hashable & Sendable, _ pid: Pid) throws(RegistryError) {
        try registry.registerName(key, pid, value: value)
    }
    func unregisterName(_ key: any Hashable & Sendable) { registry.unregisterName(key) }
    func whereisName(_ key: any Hashable & Sendable) -> Pid? { registry.whereisName(key) }
}
