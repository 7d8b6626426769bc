@_spi(Distribution) import Parley
import ParleyOTP

/// Via naming (Erlang's `{via, swarm, Name}`): a ``DistributedRegistry`` names servers that
/// every member finds by that name.
///
/// A lookup is a local read, so a ``ServerRef`` by `.via(registry, name)` calls the holder
/// from any node. A registration goes through the name's owner: an ``AsyncGenServer``
/// started with such a name awaits it before `initialize` runs (as `gen:start` registers
/// before `init`), and a taken name fails its start with `.alreadyStarted(holder)`. The
/// synchronous start of a ``GenServer`` cannot wait for other nodes and fails with
/// ``RegistryError/awaitRequired(registry:)``. Keys are `String`s.
///
/// ```swift
/// let workers = try await DistributedRegistry.start("workers")   // on every node
/// let ref = try await Account().start(name: .via(workers, "account-42"))
/// // on any member:
/// let balance = try await ServerRef<Account>(name: .via(workers, "account-42")).call(.balance)
/// ```
extension DistributedRegistry: NameRegistry {
    /// Fails with ``RegistryError/awaitRequired(registry:)``: registering asks the name's
    /// owner. ``registerNameAsync(_:_:)`` does it.
    public func registerName(_ key: any Hashable & Sendable, _ pid: Pid) throws(RegistryError) {
        guard key is String else { throw .wrongKeyType(key: "\(key)", expected: "String") }
        throw .awaitRequired(registry: name)
    }

    /// ``register(_:_:timeout:)``: returns once every member has the name.
    public func registerNameAsync(_ key: any Hashable & Sendable, _ pid: Pid) async throws(RegistryError) {
        guard let k = key as? String else { throw .wrongKeyType(key: "\(key)", expected: "String") }
        do {
            try await register(k, pid)
        } catch {
            if case .alreadyRegistered(let n, let holder) = error { throw .alreadyRegistered(n, holder) }
            throw .unavailable(error.description)
        }
    }

    /// Removes the name on every member, without waiting (`unregister_name/1`); its
    /// process keeps running. ``unregister(_:timeout:)`` waits.
    public func unregisterName(_ key: any Hashable & Sendable) {
        guard let k = key as? String, let server = node.whereis(self.name) else { return }
        Task { _ = try? await Gen.call(server, RegistryLocal.unregister(name: k)) }
    }

    /// The holder in this node's copy (``lookup(_:)``).
    public func whereisName(_ key: any Hashable & Sendable) -> Pid? {
        guard let k = key as? String else { return nil }
        return lookup(k)
    }
}
