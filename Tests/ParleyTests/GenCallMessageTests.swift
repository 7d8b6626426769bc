@testable import Parley
import Testing
import Synchronization
import ParleyTestSupport

/// A caller reuses its call message once the server has dropped it (issue 15's zero
/// allocations per call). The reuse must be invisible: gen_server's `{'$gen_call', From,
/// Request}` is an immutable term, so a server that keeps the message it received sees it
/// unchanged whatever the caller does next, and the caller keeps no request alive after its
/// call returned.
@Suite("Gen: call messages are immutable values to the server", .timeLimit(.minutes(1)))
struct GenCallMessageTests {
    final class Kept: Sendable {
        let messages = Locked<[Gen.CallMessage]>([])  // not Mutex: TSan cannot see its lock on Linux
        func withLock<R>(_ body: (inout [Gen.CallMessage]) -> R) -> R { messages.withLock { body(&$0) } }
    }

    /// A server that stores every call message it handles and replies with the request.
    static func keeper(_ kept: Kept) throws -> Pid {
        try Parley.Process.spawn(state: 0) { _, message, _ in
            if let call = message as? Gen.CallMessage {
                kept.withLock { $0.append(call) }
                Gen.reply(call.from, call.request)
            }
            return .continue
        }
    }

    @Test("gen_server: a call message a server keeps is not changed by the caller's later calls")
    func keptMessageUnchanged() async throws {
        let kept = Kept()
        let server = try Self.keeper(kept)
        let tags = try await Parley.Process.run { me in
            var tags: [Reference] = []
            for i in 0..<50 {
                let r = try await Gen.call(server, i)
                #expect(r as? Int == i)
            }
            tags = kept.withLock { $0.map(\.from.tag) }
            return tags
        }
        let requests = kept.withLock { $0.map { $0.request as? Int } }
        #expect(requests == Array(0..<50), "each kept message still holds its own request")
        #expect(Set(tags).count == 50, "each kept message still holds its own call's tag")
        Parley.Process.exit(server, .kill)
    }

    /// Counts live instances of a request.
    final class Probe: Sendable {
        static let live = Atomic<Int>(0)
        init() { Self.live.add(1, ordering: .relaxed) }
        deinit { Self.live.subtract(1, ordering: .relaxed) }
    }

    @Test("a request is not kept alive by its caller after the call returned")
    func requestReleased() async throws {
        let server = try Parley.Process.spawn(state: 0) { _, message, _ in
            if let call = message as? Gen.CallMessage { Gen.reply(call.from, true) }
            return .continue
        }
        let before = Probe.live.load(ordering: .relaxed)
        try await Parley.Process.run { me in
            for _ in 0..<10 { _ = try await Gen.call(server, Probe()) }
            // The caller lives on after its calls: none of their requests may.
            #expect(await eventually { Probe.live.load(ordering: .relaxed) == before })
        }
        Parley.Process.exit(server, .kill)
    }

    @Test("a process that made calls is freed when it exits (no cycle through its spare message)")
    func callerFreed() async throws {
        let server = try Parley.Process.spawn(state: 0) { _, message, _ in
            if let call = message as? Gen.CallMessage { Gen.reply(call.from, 1) }
            return .continue
        }
        weak var weakCore: ProcessCore?
        let pid = try await Parley.Process.run { me in
            let caller = me.spawn { p in
                _ = try await Gen.call(server, 1)
                _ = try await Gen.call(server, 2)
            }
            let ref = me.monitor(caller)
            _ = try await me.receive(DownMessage.self, where: { $0.ref == ref })
            return caller
        }
        weakCore = pid.process
        _ = consume pid
        #expect(await eventually { weakCore == nil })
        Parley.Process.exit(server, .kill)
    }

    @Test("a pid is two words, so (pid, value) messages fit an existential's inline buffer")
    func pidLayout() {
        #expect(MemoryLayout<Pid>.size == 16)
        #expect(MemoryLayout<(Pid, Int)>.size <= 24)
    }
}
