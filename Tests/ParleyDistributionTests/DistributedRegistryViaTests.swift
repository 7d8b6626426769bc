import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP

/// An account whose start awaits its via name (an ``AsyncGenServer``). Its calls are
/// `Codable`, so they cross nodes as terms.
struct ViaAccount: AsyncGenServer, Sendable {
    /// Where it checks, in `initialize`, that its name is registered already.
    var registry: DistributedRegistry? = nil
    var balance = 0
    var namedAtInit = 0
    enum Call: Sendable, Codable { case balance, deposit(Int), namedAtInit }
    typealias Reply = Int
    mutating func initialize(_ me: Process) async throws -> InitResult {
        if let registry, registry.lookup("acct") == me.pid { namedAtInit = 1 }
        return .ok
    }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: Process) async throws -> CallResult {
        switch request {
        case .namedAtInit: return .reply(namedAtInit)
        case .balance: return .reply(balance)
        case .deposit(let n): balance += n; return .reply(balance)
        }
    }
}

/// The same account as a synchronous ``GenServer``.
struct ViaSyncAccount: GenServer, Sendable {
    typealias Call = Int
    typealias Reply = Int
    mutating func handleCall(_ request: Int, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(request) }
}

extension DistributionTests.DistributedRegistryTests {
    @Test("Via naming ({via, swarm, Name} in Erlang; Swarm's register_name through GenServer.start_link(name: {:via, :swarm, name})): an AsyncGenServer started with .via(registry, name) is registered before initialize (gen:start's order) and found by that name from every node when its start returns; a second start of the name fails with already_started and the holder's pid; a synchronous GenServer start cannot wait for the cluster and fails with awaitRequired; a key that is not a String is wrongKeyType; the name goes when the server stops")
    func viaNaming() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            let ref = try await ViaAccount(registry: regs[0]).start(name: .via(regs[0], "acct"), options: GenServerOptions(node: nodes[0]))
            let pid = try #require(ref.pid)
            for r in regs { #expect(r.lookup("acct") == pid, "read your writes on \(r.node.name)") }
            #expect(try await ref.call(.namedAtInit) == 1, "registered before initialize ran")
            #expect(try await ServerRef<ViaAccount>(name: .via(regs[1], "acct")).call(.deposit(5)) == 5)
            #expect(try await ServerRef<ViaAccount>(name: .via(regs[2], "acct")).call(.deposit(7)) == 12)

            do throws(StartError) {
                _ = try await ViaAccount().start(name: .via(regs[1], "acct"), options: GenServerOptions(node: nodes[1]))
                Issue.record("a second server took a taken name")
            } catch {
                guard case .alreadyStarted(let holder) = error else { Issue.record("expected already_started, got \(error)"); return }
                #expect(holder == pid)
            }
            #expect(try await ServerRef<ViaAccount>(name: .via(regs[0], "acct")).call(.balance) == 12, "the holder kept the name")

            do throws(StartError) {
                _ = try ViaSyncAccount().start(name: .via(regs[0], "sync"), options: GenServerOptions(node: nodes[0]))
                Issue.record("a synchronous start with a cluster-wide via name started")
            } catch {
                guard case .failed(.error(let e)) = error, case .awaitRequired(let r)? = e as? RegistryError else {
                    Issue.record("expected awaitRequired, got \(error)"); return
                }
                #expect(r == regs[0].name)
            }
            #expect(regs[0].lookup("sync") == nil)
            #expect(throws: RegistryError.self) { try regs[0].registerName(42, pid) }
            #expect(regs[0].whereisName(42) == nil)

            try await ref.stop()
            #expect(await eventually { regs.allSatisfy { $0.lookup("acct") == nil } })
            await #expect(throws: Gen.CallError.self) { try await ServerRef<ViaAccount>(name: .via(regs[1], "acct")).call(.balance) }
        }
    }
}

