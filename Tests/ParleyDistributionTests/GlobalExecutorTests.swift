import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

extension DistributionTests {
/// `Scheduler.unsafeTryInstallAsGlobalExecutor()` changes the OS process for good, so it is
/// tested in a test node of its own (`--global-executor yes`): processes, GenServers and a
/// connection's I/O threads must all work with Parley's schedulers as Swift's global executor.
@Suite("Parley's schedulers as Swift's global executor", .serialized)
struct GlobalExecutorTests {
    @Test("a node whose schedulers are the global executor answers pings, GenServer calls and echoes as any node does")
    func nodeOnGlobalExecutor() async throws {
        _ = try await Cluster.node()
        let n2 = try await ExternalNode.parley(["--global-executor", "yes"])
        defer { n2.kill() }
        #expect(n2.output.withLock { $0 }.contains("global executor: Parley's schedulers"))
        let node = Node.named(n2.name)
        // gen_server calls: each is a sequential process (the net kernel's spawn aside) and a
        // callback GenServer resumed through the hook.
        for i in 1...50 {
            #expect(try await Gen.call("counter", on: node, Term.tuple([.atom("add"), .integer(1)])) as? Term == .integer(i))
        }
        let echoed = try await Process.run { (p: Parley.Process) async throws -> [Term] in
            var got: [Term] = []
            for i in 0..<100 {
                p.send(Term.tuple([.pid(p.pid), .integer(i)]), to: "echo", on: node)
                got.append(try await p.receive(Term.self))
            }
            // A spawned sequential process on that node (Distribution.spawn, remote-pp's shape).
            let pong = try await Distribution.spawn(on: n2.name, "pong")
            p.send(Term.tuple([.pid(p.pid), .atom("hi")]), to: pong)
            got.append(try await p.receive(Term.self))
            return got
        }
        #expect(echoed == (0..<100).map { Term.integer($0) } + [.atom("hi")])
    }
}
}
