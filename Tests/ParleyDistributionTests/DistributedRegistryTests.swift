import Foundation
import Synchronization
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP

/// A worker that counts what it is sent, for the registry's tests. Its registration's
/// arguments say how it answers a handoff: `resume` (the default), `restart`, `ignore`,
/// or `checkpoint` (resume, and checkpoint after every cast).
struct Tally: HandoffServer {
    typealias Call = Term
    typealias Reply = Term
    typealias Cast = Term
    typealias HandoffState = Int

    let context: WorkerContext
    var count = 0
    var merged: [Int] = []
    var cancelled = 0

    var mode: String { context.arguments.atomName ?? "resume" }
    struct Crash: Error {}

    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        switch request.atomName {
        case "get": return .reply(.integer(count))
        case "node": return .reply(.atom(Atom(me.node.name)))
        case "merged": return .reply(.list(merged.map { .integer($0) }))
        case "cancelled": return .reply(.integer(cancelled))
        case "crash": throw Crash()
        case "stop": return .stop(.normal, reply: .atom("ok"))
        default:
            count += 1
            if mode == "checkpoint" { try context.checkpoint(count, me) }
            return .reply(.integer(count))
        }
    }

    mutating func handleCast(_ request: Term, _ me: CallbackProcess) throws -> HandleResult {
        if case .tuple(let t) = request, t.count == 2, t[0] == .atom("add"), let n = t[1].intValue { count += n }
        if mode == "checkpoint" { try context.checkpoint(count, me) }
        return .noreply
    }

    mutating func handleInfo(_ message: any Sendable, _ me: CallbackProcess) throws -> HandleResult {
        if let t = message as? Term, t == .atom("bump") { count += 1 }
        return .noreply
    }

    func beginHandoff(_ me: CallbackProcess) -> Handoff<Int> {
        switch mode {
        case "restart": return .restart
        case "ignore": return .ignore
        default: return .resume(count)
        }
    }

    mutating func endHandoff(_ state: Int, _ me: CallbackProcess) { count = state }

    mutating func handoffCancelled(_ me: CallbackProcess) { cancelled += 1 }

    mutating func resolveConflict(_ other: Int, _ me: CallbackProcess) {
        merged.append(other)
        count += other
    }
}

/// A worker that records the numbers cast to it, in the order it handles them.
struct Sequence: HandoffServer {
    typealias Call = Term
    typealias Reply = Term
    typealias Cast = Term
    typealias HandoffState = [Int]
    var seen: [Int] = []

    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        .reply(.list(seen.map { .integer($0) }))
    }
    mutating func handleCast(_ request: Term, _ me: CallbackProcess) throws -> HandleResult {
        if let n = request.intValue { seen.append(n) }
        return .noreply
    }
    func beginHandoff(_ me: CallbackProcess) -> Handoff<[Int]> { .resume(seen) }
    mutating func endHandoff(_ state: [Int], _ me: CallbackProcess) { seen = state }
}

extension DistributionTests {
/// `DistributedRegistry`: Swarm's registry semantics (`register_name/4` on the ring owner,
/// `{:swarm, :begin_handoff}` with `:restart`/`{:resume, state}`/`:ignore`, restart on the
/// new owner when a node dies, `StaticQuorumRing`'s `:no_node_available`), with what
/// Swarm and Horde users miss: registrations visible everywhere when they return, a
/// joiner that has the registry before it answers, no message lost during a move, state
/// kept across a node's death by checkpoints, and fenced stale holders.
@Suite("Distributed registry", .serialized)
struct DistributedRegistryTests {
    /// `count` nodes of this OS process, in a full mesh, stopped on every path.
    static func withCluster(_ count: Int, configure: (inout Distribution.Configuration) -> Void = { _ in },
                            _ body: ([LocalNode]) async throws -> Void) async throws {
        _ = try await Cluster.node()
        var nodes: [LocalNode] = []
        func stopAll() async {
            // Registries first, so none restarts names of the nodes stopping after it.
            let registries = Self.running.withLock { $0 }
            for n in nodes { Self.killProcesses(n, registries) }
            for n in nodes { await n.stopDistribution() }
        }
        do {
            for i in 0..<count {
                let n = try LocalNode(name: ExternalNode.uniqueName("reg\(i)_"))
                nodes.append(n)
                var config = Distribution.Configuration(name: n.name, cookie: Cluster.cookie)
                config.tickTime = .seconds(4)
                configure(&config)
                try await n.startDistribution(config)
            }
            for a in nodes { for b in nodes where a !== b { #expect(await a.ping(b.name)) } }
            try await body(nodes)
        } catch {
            await stopAll()
            throw error
        }
        await stopAll()
    }

    /// What SIGKILL does to a node, in this OS process: its registry and every holder on
    /// it die at once, then its connections drop. (Stopping distribution alone would
    /// leave its registry running, and reaching the others' pids in memory.)
    static func kill(_ node: LocalNode, _ registries: [DistributedRegistry]) async {
        killProcesses(node, registries)
        await node.stopDistribution()
    }

    static func killProcesses(_ node: LocalNode, _ registries: [DistributedRegistry]) {
        for r in registries where r.node === node {
            if let pid = node.whereis(r.name) { Process.exit(pid, .kill) }
            for (_, pid) in r.registered() where pid.nodeName == node.name { Process.exit(pid, .kill) }
        }
    }

    /// The registries the tests started, for the teardown.
    static let running = Mutex<[DistributedRegistry]>([])

    static func uniqueRegistry() -> String { "reg_\(UInt32.random(in: 0...UInt32.max))" }

    /// Starts the registry on each node (in order) and defines the tally worker.
    static func start(_ name: String, on nodes: [LocalNode], placement: any Placement = .ring()) async throws -> [DistributedRegistry] {
        var result: [DistributedRegistry] = []
        for n in nodes {
            DistributedRegistry(name, on: n).define("tally") { Tally(context: $0) }
            let r = try await DistributedRegistry.start(name, on: n, placement: placement)
            running.withLock { $0.append(r) }
            result.append(r)
        }
        return result
    }

    static func attempt(_ body: () async throws(DistributedRegistry.Failure) -> Pid) async -> Result<Pid, DistributedRegistry.Failure> {
        do throws(DistributedRegistry.Failure) { return .success(try await body()) } catch { return .failure(error) }
    }

    static func get(_ r: DistributedRegistry, _ name: String) async -> Int? {
        (try? await r.call(name, Term.atom("get"), timeout: .seconds(10)) as? Term)?.intValue
    }

    // MARK: Placement

    @Test("The ring (libring's HashRing, Swarm's default): every node computes the same owner; names spread over the members; a joining member takes about 1/N of the names and nothing else moves; a leaving member's names go and only they")
    func ring() {
        let ring = HashRing(), again = HashRing()
        let three = ["a@h", "b@h", "c@h"], four = ["a@h", "b@h", "c@h", "d@h"]
        let names = (0..<3000).map { "name-\($0)" }
        var spread: [String: Int] = [:]
        var moved = 0
        for n in names {
            let o3 = ring.owner(of: n, among: three)!
            spread[o3, default: 0] += 1
            #expect(again.owner(of: n, among: three) == o3)
            let o4 = ring.owner(of: n, among: four)!
            if o4 != o3 {
                moved += 1
                #expect(o4 == "d@h", "a join moves names only to the joiner")
            }
        }
        for m in three { #expect((700...1300).contains(spread[m] ?? 0), "\(m) owns \(spread[m] ?? 0) of 3000") }
        #expect((450...1100).contains(moved), "a fourth member took \(moved) of 3000 names (about 750 expected)")
        #expect(ring.owner(of: "x", among: ["only@h"]) == "only@h")
        #expect(ring.owner(of: "x", among: []) == nil)
    }

    @Test("StaticQuorumRing: no owner below the quorum (Swarm's :no_node_available), the ring's owner from it on")
    func staticQuorum() {
        let q = StaticQuorumRing.staticQuorum(2)
        #expect(q.owner(of: "n", among: ["a@h"]) == nil)
        #expect(q.owner(of: "n", among: ["a@h", "b@h"]) == HashRing().owner(of: "n", among: ["a@h", "b@h"]))
    }

    @Test("Fencing: of two holders of a name the higher epoch wins, at equal epochs the node that sorts first, a pure function of the two entries so every node picks the same")
    func conflictRule() {
        let p1 = Pid(node: Node.named("a@h"), id: 1, serial: 0, creation: 1)
        let p2 = Pid(node: Node.named("b@h"), id: 1, serial: 0, creation: 1)
        let a1 = RegistryEntry(name: "n", pid: p1, epoch: 1, worker: nil)
        let b2 = RegistryEntry(name: "n", pid: p2, epoch: 2, worker: nil)
        let b1 = RegistryEntry(name: "n", pid: p2, epoch: 1, worker: nil)
        #expect(RegistryEntry.wins(b2, over: a1) && !RegistryEntry.wins(a1, over: b2))
        #expect(RegistryEntry.wins(a1, over: b1) && !RegistryEntry.wins(b1, over: a1))
        #expect(RegistryEntry(a1.term) == a1)
        let w = RegistryEntry(name: "w", pid: p2, epoch: 7, worker: WorkerSpec(key: "tally", arguments: .atom("resume")))
        #expect(RegistryEntry(w.term) == w)
    }

    // MARK: Registering

    @Test("registerName starts the worker on the name's ring owner and returns once every member has it: a lookup or a call from any node finds it at once (Horde #22, #214, #247 miss until a sync); a second registration gets {already_registered, Pid}")
    func readYourWrites() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            #expect(regs[0].members.count == 3)
            for i in 0..<30 {
                let name = "w\(i)"
                let pid = try await regs[i % 3].registerName(name, start: "tally")
                for r in regs { #expect(r.lookup(name) == pid, "\(name) seen on \(r.node.name)") }
                let owner = HashRing().owner(of: name, among: nodes.map(\.name).sorted())
                #expect(pid.nodeName == owner)
                let n = try await regs[(i + 1) % 3].call(name, Term.atom("bump"))
                #expect(n as? Term == .integer(1))
            }
            #expect(Set(regs[0].registered().values.map(\.nodeName)).count == 3, "names spread over the members")
            let holder = regs[0].lookup("w0")!
            await #expect(throws: DistributedRegistry.Failure.alreadyRegistered("w0", holder)) {
                try await regs[2].registerName("w0", start: "tally")
            }
        }
    }

    @Test("Two nodes registering one name at once: one winner, the other gets already_registered with the winner's pid, never two holders")
    func concurrentRegistrations() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            for i in 0..<20 {
                let name = "race\(i)"
                async let a = Self.attempt { () async throws(DistributedRegistry.Failure) -> Pid in try await regs[0].registerName(name, start: "tally") }
                async let b = Self.attempt { () async throws(DistributedRegistry.Failure) -> Pid in try await regs[1].registerName(name, start: "tally") }
                let (ra, rb) = await (a, b)
                let winners = [ra, rb].compactMap { try? $0.get() }
                #expect(winners.count == 1, "\(name): \(ra) \(rb)")
                guard let winner = winners.first else { continue }
                for r in [ra, rb] {
                    if case .failure(let f) = r { #expect(f == .alreadyRegistered(name, winner)) }
                }
                for r in regs { #expect(r.lookup(name) == winner) }
            }
        }
    }

    @Test("register(name, pid) for a running local process (Swarm's register_name/2): found everywhere; the name goes everywhere when the process exits; unregister removes it and leaves the process running; typed errors for a remote pid, an unknown name, a missing worker definition and a missing registry")
    func plainNamesAndErrors() async throws {
        try await Self.withCluster(2) { nodes in
            let name = Self.uniqueRegistry()
            let regs = try await Self.start(name, on: nodes)
            let p = try nodes[0].spawn(SpawnOptions(), state: ()) { _, m, _ in (m as? Term) == .atom("stop") ? .stop(.normal) : .continue }
            try await regs[0].register("plain", p)
            #expect(regs[1].lookup("plain") == p)
            await #expect(throws: DistributedRegistry.Failure.notLocal(p)) { try await regs[1].register("other", p) }
            try await regs[1].unregister("plain")
            #expect(regs[0].lookup("plain") == nil && regs[1].lookup("plain") == nil && p.isAlive)
            await #expect(throws: DistributedRegistry.Failure.notRegistered("plain")) { try await regs[1].unregister("plain") }
            try await regs[0].register("plain", p)
            p.send(Term.atom("stop"))
            #expect(await eventually { regs[1].lookup("plain") == nil && regs[0].lookup("plain") == nil })
            await #expect(throws: DistributedRegistry.Failure.undefinedWorker("nothing")) {
                try await regs[0].registerName("x", start: "nothing")
            }
            await #expect(throws: DistributedRegistry.Failure.notRegistered("nobody")) { try await regs[0].send(Term.atom("hi"), to: "nobody") }
            await #expect(throws: DistributedRegistry.Failure.noRegistry("absent")) {
                try await DistributedRegistry("absent", on: nodes[0]).registerName("x", start: "tally")
            }
        }
    }

    @Test("Groups (Swarm's join, leave, members, publish, multi_call): a process and a name join a group and every node lists both when join returns; publish reaches each; multicall gathers the replies that come in time and leaves out the rest; a name member follows its name to its new holder; a member that exits or leaves is gone everywhere")
    func groups() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            let got = Mutex(0)
            let plain = try nodes[1].spawn(SpawnOptions(), state: ()) { _, m, _ in
                if (m as? Term) == .atom("bump") { got.withLock { $0 += 1 } }
                return .continue
            }
            let w = try await regs[0].registerName("grouped", start: "tally")
            await #expect(throws: DistributedRegistry.Failure.notLocal(plain)) { try await regs[0].join("g", plain) }
            try await regs[1].join("g", plain)
            try await regs[2].join("g", name: "grouped")
            for r in regs { #expect(Set(r.members("g")) == [plain, w], "\(r.node.name)") }
            #expect(regs[0].groups() == ["g"])
            regs[2].publish(Term.atom("bump"), to: "g")
            #expect(await eventually { got.withLock { $0 } == 1 })
            #expect(await eventually { await Self.get(regs[0], "grouped") == 1 })
            let replies = await regs[0].multicall("g", Term.atom("get"), timeout: .seconds(1))
            #expect(replies.count == 1 && (replies[w] as? Term) == .integer(1), "the plain process does not answer calls: left out")
            #expect(try await regs[1].leave("g", plain))
            #expect(try await !regs[1].leave("g", plain), "not a member any more")
            for r in regs { #expect(r.members("g") == [w]) }
            try await regs[1].join("g", plain)
            Process.exit(plain, .kill)
            #expect(await eventually { regs.allSatisfy { $0.members("g") == [w] } }, "an exit leaves")
            // The name member follows its name when its holder's node leaves.
            let holderNode = try #require(nodes.firstIndex { $0.name == w.nodeName })
            let stays = (holderNode + 1) % 3
            await regs[holderNode].stop()
            #expect(await eventually { regs[stays].lookup("grouped").map { $0 != w } ?? false })
            let moved = try #require(regs[stays].lookup("grouped"))
            #expect(regs[stays].members("g") == [moved])
        }
    }

    // MARK: Moving

    @Test("A node joins: the names it now owns move to it (about 1/N), each with its handed-off state ({:resume, state}), delivered before any other message; the others stay; casts sent all along are all counted")
    func joinRebalances() async throws {
        try await Self.withCluster(3) { nodes in
            let name = Self.uniqueRegistry()
            let first = try await Self.start(name, on: Array(nodes[0..<2]))
            let names = (0..<60).map { "j\($0)" }
            for n in names {
                try await first[0].registerName(n, start: "tally")
                for _ in 0..<3 { await first[1].cast(n, Term.tuple([.atom("add"), .integer(1)])) }
            }
            for n in names { #expect(await Self.get(first[0], n) == 3) }
            let before = first[0].registered()
            // A sender keeps casting to every name while the third node joins.
            let sender = Task {
                var sent = 0
                for round in 0..<5 {
                    for n in names {
                        await first[0].cast(n, Term.tuple([.atom("add"), .integer(1)]))
                        sent += 1
                    }
                    if round == 0 { try? await Task.sleep(for: .milliseconds(5)) }
                }
                return sent
            }
            let third = try await Self.start(name, on: [nodes[2]])[0]
            #expect(third.registered().count == names.count, "the joiner has the whole registry when start returns")
            _ = await sender.value
            let all = nodes.map(\.name).sorted()
            #expect(await eventually(within: .seconds(20)) {
                names.allSatisfy { n in first[0].lookup(n)?.nodeName == HashRing().owner(of: n, among: all) }
            })
            let moved = names.filter { before[$0] != first[0].lookup($0) }
            #expect(moved.allSatisfy { first[0].lookup($0)?.nodeName == nodes[2].name })
            #expect((8...35).contains(moved.count), "\(moved.count) of 60 moved")
            for n in names {
                #expect(await Self.get(third, n) == 8, "\(n): 3 before the join and 5 during it")
                #expect(first[1].lookup(n) == third.lookup(n))
            }
        }
    }

    @Test("Order during moves: one sender's casts to names that move (a join, then a graceful stop) reach the holders in the order sent, none twice and none lost (Erlang's per-pair order, kept across the move)")
    func orderAcrossMoves() async throws {
        try await Self.withCluster(3) { nodes in
            let name = Self.uniqueRegistry()
            for n in nodes { DistributedRegistry(name, on: n).define("sequence") { _ in Sequence() } }
            let first = try await Self.start(name, on: Array(nodes[0..<2]))
            let names = (0..<24).map { "s\($0)" }
            for n in names { try await first[0].registerName(n, start: "sequence") }
            // The sender casts 1, 2, 3, … to every name, round-robin, until both moves are over.
            let done = Mutex(false)
            let sender = Task {
                var i = 0
                while !done.withLock({ $0 }) || i < 50 {
                    i += 1
                    for n in names { await first[0].cast(n, Term.integer(i)) }
                    if i % 10 == 0 { try? await Task.sleep(for: .milliseconds(1)) }
                }
                return i
            }
            try await Task.sleep(for: .milliseconds(10))
            let third = try await DistributedRegistry.start(name, on: nodes[2])
            Self.running.withLock { $0.append(third) }
            #expect(await eventually { names.contains { first[0].lookup($0)?.nodeName == nodes[2].name } })
            await first[1].stop()
            done.withLock { $0 = true }
            let last = await sender.value
            let moved = names.filter { first[0].lookup($0)?.nodeName != nodes[0].name }
            #expect(!moved.isEmpty)
            for n in names {
                let seen = (try await first[0].call(n, Term.atom("get"), timeout: .seconds(10)) as? Term)?.listElements?.compactMap(\.intValue)
                #expect(seen == Array(1...last), "\(n) on \(first[0].lookup(n)?.nodeName ?? "?"): \(seen.map { "\($0.count) numbers, first out of order at \(zip($0, 1...).first { $0.0 != $0.1 }.map { "\($0.1)" } ?? "-")" } ?? "no answer")")
            }
        }
    }

    @Test("A graceful stop (SIGTERM in a rolling deploy) hands every name off before the registry exits: state kept, no message lost, calls by name answered throughout")
    func gracefulStop() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            let names = (0..<45).map { "g\($0)" }
            for n in names {
                try await regs[0].registerName(n, start: "tally")
                await regs[0].cast(n, Term.tuple([.atom("add"), .integer(10)]))
            }
            let onC = names.filter { regs[0].lookup($0)?.nodeName == nodes[2].name }
            #expect(!onC.isEmpty)
            let caller = Task {
                var failures: [String] = []
                for _ in 0..<3 {
                    for n in names {
                        do {
                            _ = try await regs[1].call(n, Term.atom("bump"), timeout: .seconds(10))
                        } catch {
                            failures.append("\(n): \(error) (\(String(describing: regs[1].entry(n))))")
                        }
                    }
                }
                return failures
            }
            await regs[2].stop()
            #expect(!regs[2].isRunning)
            let failures = await caller.value
            #expect(failures.isEmpty, "every call by name was answered: \(failures)")
            #expect(await eventually { names.allSatisfy { regs[0].lookup($0).map { $0.nodeName != nodes[2].name } ?? false } })
            for n in names { #expect(await Self.get(regs[0], n) == 13, "\(n): 10 and three bumps") }
            #expect(regs[0].members.count == 2)
        }
    }

    @Test("Handoff answers: :ignore keeps the worker where it is; :restart starts it afresh on the new owner")
    func ignoreAndRestart() async throws {
        try await Self.withCluster(3) { nodes in
            let name = Self.uniqueRegistry()
            let regs = try await Self.start(name, on: Array(nodes[0..<2]))
            for i in 0..<30 {
                try await regs[0].registerName("i\(i)", start: "tally", arguments: .atom("ignore"))
                try await regs[0].registerName("r\(i)", start: "tally", arguments: .atom("restart"))
                await regs[0].cast("i\(i)", Term.tuple([.atom("add"), .integer(2)]))
                await regs[0].cast("r\(i)", Term.tuple([.atom("add"), .integer(2)]))
            }
            let before = regs[0].registered()
            let third = try await Self.start(name, on: [nodes[2]])[0]
            let all = nodes.map(\.name).sorted()
            let restarting = (0..<30).map { "r\($0)" }.filter { HashRing().owner(of: $0, among: all) == nodes[2].name }
            #expect(!restarting.isEmpty)
            #expect(await eventually { restarting.allSatisfy { third.lookup($0)?.nodeName == nodes[2].name } })
            for n in restarting { #expect(await Self.get(third, n) == 0) }
            for i in 0..<30 {
                #expect(regs[0].lookup("i\(i)") == before["i\(i)"])
                #expect(await Self.get(third, "i\(i)") == 2)
            }
        }
    }

    @Test("A move that cannot happen (the new owner has no definition of the worker) is given up: the worker gets handoffCancelled, keeps its name, its state and the messages that waited, and serves again")
    func cancelledMove() async throws {
        try await Self.withCluster(2) { nodes in
            let name = Self.uniqueRegistry()
            DistributedRegistry(name, on: nodes[0]).define("only_here") { Tally(context: $0) }
            let a = try await DistributedRegistry.start(name, on: nodes[0])
            Self.running.withLock { $0.append(a) }
            for i in 0..<20 {
                try await a.registerName("c\(i)", start: "only_here")
                await a.cast("c\(i)", Term.tuple([.atom("add"), .integer(3)]))
            }
            let before = a.registered()
            // The second member defines nothing: every move to it fails there.
            let b = try await DistributedRegistry.start(name, on: nodes[1])
            Self.running.withLock { $0.append(b) }
            let all = nodes.map(\.name).sorted()
            let owned = (0..<20).map { "c\($0)" }.filter { HashRing().owner(of: $0, among: all) == nodes[1].name }
            #expect(!owned.isEmpty)
            var cancelled: [String: Int] = [:]
            #expect(await eventually(within: .seconds(20)) {
                for n in owned { cancelled[n] = (try? await a.call(n, Term.atom("cancelled"), timeout: .seconds(5)) as? Term)?.intValue ?? 0 }
                return cancelled.values.allSatisfy { $0 >= 1 }
            }, "every move to the node without the definition was cancelled: \(cancelled)")
            for n in owned {
                #expect(a.lookup(n) == before[n] && b.lookup(n) == before[n], "\(n) stays with its process")
                #expect(await Self.get(a, n) == 3)
            }
        }
    }

    @Test("A call to a process of this node that forwards it to another node is answered from there: gen:call's reply goes to the caller's alias wherever it comes from (OTP 24's aliases), which is what a moving worker relies on")
    func forwardedCallIsAnswered() async throws {
        try await Self.withCluster(3) { nodes in
          // Answered on a third node, and on the caller's own node (the call came back).
          for (a, callers) in [(nodes[0], [nodes[2], nodes[1]]), (nodes[1], [nodes[1]])] {
            let c = nodes[2]
            let answer = try a.spawn(SpawnOptions(), state: ()) { _, m, _ in
                if let call = m as? Gen.CallMessage { Gen.reply(call.from, Term.atom("answered")) }
                return .continue
            }
            // As a moving worker forwards to its successor on another node: a term on the wire.
            let unwrapper = try a.spawn(SpawnOptions(), state: ()) { _, m, me in
                if let t = m as? Term, case .forward(let inner)? = HandoffWire.parse(t) { answer.send(MessageCodec.message(from: inner, to: me.pid)) }
                return .continue
            }
            let viaWire = Pid(node: Node.named(a.name), id: unwrapper.id, serial: unwrapper.serial, creation: unwrapper.creation)
            let forwarder = try c.spawn(SpawnOptions(), state: ()) { _, m, me in
                if let call = m as? Gen.CallMessage {
                    Distribution.router(of: me.node)?.send(HandoffWire.forward(try MessageCodec.term(for: call)), to: viaWire, from: me.pid)
                }
                return .continue
            }
            for caller in callers {
                for _ in 0..<10 {
                    let r: Term? = try await caller.run { _ -> Term? in (try await Gen.call(forwarder, Term.atom("q"), timeout: .seconds(5))) as? Term }
                    #expect(r == .atom("answered"), "a caller on \(caller.name), answered on \(a.name)")
                }
            }
          }
        }
    }

    @Test("Members that were not connected to each other (hidden nodes that each know only a third) connect through the registry, as global meshes visible nodes: every member sees every other, and when one dies its names restart on the owners every survivor agrees on")
    func meshesItsMembers() async throws {
        _ = try await Cluster.node()
        var nodes: [LocalNode] = []
        var regs: [DistributedRegistry] = []
        do {
            for i in 0..<3 {
                let n = try LocalNode(name: ExternalNode.uniqueName("mesh\(i)_"))
                nodes.append(n)
                var config = Distribution.Configuration(name: n.name, cookie: Cluster.cookie)
                config.tickTime = .seconds(4)
                try await n.startDistribution(config)
            }
            // b and c each know a only.
            #expect(await nodes[1].ping(nodes[0].name))
            #expect(await nodes[2].ping(nodes[0].name))
            #expect(!nodes[1].connectedNodes.contains(nodes[2].name))
            regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            #expect(await eventually { regs.allSatisfy { $0.members.count == 3 } }, "\(regs.map(\.members))")
            #expect(nodes[1].connectedNodes.contains(nodes[2].name))
            let names = (0..<30).map { "m\($0)" }
            for n in names { try await regs[0].registerName(n, start: "tally", arguments: .atom("checkpoint")) }
            await Self.kill(nodes[1], regs)
            let owners = Dictionary(uniqueKeysWithValues: names.map { ($0, HashRing().owner(of: $0, among: [nodes[0].name, nodes[2].name].sorted())!) })
            #expect(await eventually {
                names.allSatisfy { n in regs[0].lookup(n)?.nodeName == owners[n] && regs[2].lookup(n) == regs[0].lookup(n) }
            })
        } catch {
            for n in nodes { Self.killProcesses(n, regs); await n.stopDistribution() }
            throw error
        }
        for n in nodes { Self.killProcesses(n, regs); await n.stopDistribution() }
    }

    // MARK: Netsplits

    @Test("A healed split: two nodes that registered the same names while apart meet; one holder per name stays, the same on both (the fencing rule of `conflictRule`), the other hands it its state (resolveConflict adds it here) and exits, and the name then sits on its ring owner; plain names that clash keep the winner and the loser exits with {shutdown, name_conflict}")
    func healedSplit() async throws {
        _ = try await Cluster.node()
        let a = try LocalNode(name: ExternalNode.uniqueName("split_a_"))
        let b = try LocalNode(name: ExternalNode.uniqueName("split_b_"))
        var started: [DistributedRegistry] = []
        defer {
            Self.running.withLock { $0 += started }
        }
        do {
            for n in [a, b] {
                var config = Distribution.Configuration(name: n.name, cookie: Cluster.cookie)
                config.tickTime = .seconds(4)
                try await n.startDistribution(config)
            }
            // Two sides that never met: each registry is alone.
            let regs = try await Self.start(Self.uniqueRegistry(), on: [a, b])
            started = regs
            #expect(regs[0].members == [a.name] && regs[1].members == [b.name])
            let names = (0..<10).map { "split\($0)" }
            var sides: [[Pid]] = [[], []]
            for (i, r) in regs.enumerated() {
                for n in names {
                    sides[i].append(try await r.registerName(n, start: "tally"))
                    await r.cast(n, Term.tuple([.atom("add"), .integer(i == 0 ? 1 : 10)]))
                }
            }
            // On b, split0 was placed twice: its epoch is higher there.
            try await regs[1].unregister("split0")
            let again = try await regs[1].registerName("split0", start: "tally")
            await regs[1].cast("split0", Term.tuple([.atom("add"), .integer(100)]))
            #expect(regs[1].entry("split0")?.epoch == 2)
            let plainA = try a.spawn(SpawnOptions(), state: ()) { _, _, _ in .continue }
            let plainB = try b.spawn(SpawnOptions(), state: ()) { _, _, _ in .continue }
            try await regs[0].register("plain", plainA)
            try await regs[1].register("plain", plainB)
            // The split heals.
            #expect(await a.ping(b.name))
            #expect(await eventually { regs[0].members.count == 2 && regs[1].members.count == 2 })
            let first = [a.name, b.name].min()!
            // Then each name sits on its ring owner (the winner moves there if it is not).
            let owners = Dictionary(uniqueKeysWithValues: names.map { ($0, HashRing().owner(of: $0, among: [a.name, b.name].sorted())!) })
            #expect(await eventually {
                names.allSatisfy { n in regs[0].lookup(n)?.nodeName == owners[n] && regs[0].lookup(n) == regs[1].lookup(n) }
            })
            for (i, n) in names.enumerated() {
                let holder = regs[0].lookup(n)
                // The loser's state went to the winner (resolveConflict adds it): split0's
                // winner was b's, of the higher epoch (100 + a's 1); the others' a's or b's,
                // 1 + 10 either way.
                let expected = n == "split0" ? 100 + 1 : 11
                let got = await Self.get(regs[0], n)
                #expect(got == expected, "\(n) merged: \(String(describing: got))")
                // Every other holder exited (b's first split0 was unregistered, not a holder:
                // it runs on, as Swarm's does).
                let others: [Pid] = (n == "split0" ? [sides[0][i], again] : [sides[0][i], sides[1][i]]).filter { $0 != holder }
                for l in others { #expect(await eventually(within: .seconds(10)) { !l.isAlive }, "\(n): \(l) exited") }
            }
            let keeper = plainA.nodeName == first ? plainA : plainB
            let loser = keeper == plainA ? plainB : plainA
            #expect(await eventually { regs[0].lookup("plain") == keeper && regs[1].lookup("plain") == keeper && !loser.isAlive })
        } catch {
            await a.stopDistribution()
            await b.stopDistribution()
            throw error
        }
        for r in started { Self.killProcesses(r.node, [r]) }
        await a.stopDistribution()
        await b.stopDistribution()
    }

    // MARK: Node loss

    @Test("A node dies: its workers restart on their new owners within 2 s, from their last checkpoint (neither Swarm nor Horde keeps state across a node's death); the dead node's plain names go")
    func nodeLoss() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            let names = (0..<30).map { "k\($0)" }
            for n in names {
                try await regs[0].registerName(n, start: "tally", arguments: .atom("checkpoint"))
                await regs[0].cast(n, Term.tuple([.atom("add"), .integer(7)]))
            }
            for n in names { #expect(await Self.get(regs[0], n) == 7) }
            let p = try nodes[2].spawn(SpawnOptions(), state: ()) { _, _, _ in .continue }
            try await regs[2].register("plain-on-c", p)
            let onC = names.filter { regs[0].lookup($0)?.nodeName == nodes[2].name }
            #expect(!onC.isEmpty)
            let killed = ContinuousClock.now
            await Self.kill(nodes[2], regs)
            #expect(await eventually(within: .seconds(10)) {
                onC.allSatisfy { n in regs[0].lookup(n).map { $0.nodeName != nodes[2].name && regs[1].lookup(n) == $0 } ?? false }
            })
            let failover = ContinuousClock.now - killed
            #expect(failover < .seconds(2), "failover took \(failover)")
            #expect(regs[0].lookup("plain-on-c") == nil)
            for n in names { let got = await Self.get(regs[1], n); #expect(got == 7, "\(n) kept its checkpoint: \(String(describing: got)) on \(String(describing: regs[1].lookup(n)?.nodeName)) onC \(onC.contains(n))") }
            #expect(regs[0].entry(onC[0])!.epoch == 2)
        }
    }

    // A registry tells a node that was frozen (its peers declared it down and restarted its
    // names) from one that was only slow by whether the OS process stood still. Swarm and
    // Horde do not fence; the rule here is that a node fences only what its peers restart.
    @Test("Waiting is not being frozen: with every scheduler thread held for 1.5 s (no registry process runs), a node dies; the survivors restart its names and keep their own, as after any node loss (only an OS process that stood still, SIGSTOP or a paused VM, fences its names)")
    func starvedIsNotFrozen() async throws {
        // Every process on the scheduler threads (none woken on a connection's I/O thread),
        // so that holding those threads holds the registries.
        try await Self.withCluster(3, configure: { $0.runWokenOnIOThread = 0 }) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            let names = (0..<30).map { "s\($0)" }
            for n in names {
                try await regs[0].registerName(n, start: "tally", arguments: .atom("checkpoint"))
                await regs[0].cast(n, Term.tuple([.atom("add"), .integer(7)]))
            }
            for n in names { #expect(await Self.get(regs[0], n) == 7) }
            let onC = names.filter { regs[0].lookup($0)?.nodeName == nodes[2].name }
            #expect(!onC.isEmpty)
            // One sleeper per scheduler thread, each holding its thread 1.5 s and waiting for
            // nothing (queued from here, each goes to a free thread).
            let started = Locked(0)
            for _ in 0..<Scheduler.shared.count {
                Process.spawn { _ in
                    started.withLock { $0 += 1 }
                    usleep(1_500_000)
                }
            }
            #expect(await eventually(every: .milliseconds(1)) { started.withLock { $0 } == Scheduler.shared.count })
            await Self.kill(nodes[2], regs)
            #expect(await eventually(within: .seconds(15)) {
                onC.allSatisfy { n in regs[0].lookup(n).map { $0.nodeName != nodes[2].name && regs[1].lookup(n) == $0 } ?? false }
            }, "the dead node's names restarted")
            for n in names {
                let got = await Self.get(regs[1], n)
                #expect(got == 7, "\(n) alive with its count: \(String(describing: got)) on \(String(describing: regs[1].lookup(n)?.nodeName)) (on the dead node: \(onC.contains(n)))")
            }
        }
    }

    @Test("The freeze rule: a gap of more than a second between the watch's beats is a freeze for the window after it; a watch that has not beaten for a second (right after a SIGCONT) counts as frozen; steady beats are not")
    func freezeClock() {
        let s: UInt64 = 1_000_000_000, gap = s, window = 10 * s
        var c = FreezeClock(startedAt: 0)
        for t in stride(from: s / 10, through: 5 * s, by: Int(s / 10)) { c.beat(at: t, gap: gap) }
        #expect(!c.wasFrozen(at: 5 * s + s / 20, gap: gap, window: window))
        #expect(c.wasFrozen(at: 7 * s, gap: gap, window: window), "no beat for 2 s: standing still now")
        c.beat(at: 8 * s, gap: gap)  // the first beat after a 3 s gap
        #expect(c.lastFreeze == 8 * s)
        #expect(c.wasFrozen(at: 8 * s + s / 20, gap: gap, window: window))
        for t in stride(from: 8 * s + s / 10, through: 18 * s + s / 10, by: Int(s / 10)) { c.beat(at: t, gap: gap) }
        #expect(!c.wasFrozen(at: 18 * s + s / 10, gap: gap, window: window), "past the window")
    }

    @Test("Checkpoints go to each name's next owner (the member that restarts it if the holder's node dies): after twenty checkpoints in a row lastCheckpoint(of:) reads the twentieth from every member (asked of that owner), and a kill right then restarts the name from it there; a name that never checkpointed reads nil")
    func lastCheckpointEverywhere() async throws {
        try await Self.withCluster(3) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes)
            // A name held on node 2, checkpointed by calls from node 0.
            var name = ""
            for i in 0..<100 {
                try await regs[0].registerName("c\(i)", start: "tally", arguments: .atom("checkpoint"))
                if regs[0].lookup("c\(i)")?.nodeName == nodes[2].name { name = "c\(i)"; break }
            }
            #expect(!name.isEmpty)
            try await regs[0].registerName("plain", start: "tally")
            _ = try await regs[0].call("plain", Term.atom("bump"))
            for _ in 0..<20 { _ = try await regs[0].call(name, Term.atom("bump")) }
            for r in regs {
                #expect(await eventually(within: .seconds(5)) { await r.lastCheckpoint(of: name) == .integer(20) }, "on \(r.node.name)")
                #expect(await r.lastCheckpoint(of: "plain") == nil)
            }
            await Self.kill(nodes[2], regs)
            #expect(await eventually(within: .seconds(10)) { regs[0].lookup(name).map { $0.nodeName != nodes[2].name } ?? false })
            #expect(await Self.get(regs[0], name) == 20, "restarted from the twentieth checkpoint")
        }
    }

    @Test("StaticQuorumRing: a member alone below the quorum stops its names and refuses registrations with no_node_available")
    func quorum() async throws {
        try await Self.withCluster(2) { nodes in
            let regs = try await Self.start(Self.uniqueRegistry(), on: nodes, placement: .staticQuorum(2))
            for i in 0..<10 { try await regs[0].registerName("q\(i)", start: "tally") }
            let mine = (0..<10).map { "q\($0)" }.filter { regs[0].lookup($0)?.nodeName == nodes[0].name }
            let pids = mine.compactMap { regs[0].lookup($0) }
            await Self.kill(nodes[1], regs)
            #expect(await eventually { regs[0].registered().isEmpty })
            #expect(await eventually { pids.allSatisfy { !$0.isAlive } })
            await #expect(throws: DistributedRegistry.Failure.noNodeAvailable("q-late")) {
                try await regs[0].registerName("q-late", start: "tally")
            }
        }
    }
}
}
