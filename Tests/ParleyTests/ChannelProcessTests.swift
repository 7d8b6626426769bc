import Parley
import Synchronization
import Testing

@Suite("Channels: processes that wait on channels", .timeLimit(.minutes(1)))
struct ChannelProcessTests {
    @Test("Erlang kill: a process parked in a channel receive or a select dies at once; its waits leave the channels")
    func killWhileWaiting() async throws {
        let ch = Channel<Int>()
        try await Parley.Process.run { (me: Parley.Process) async throws in
            let waiting = me.spawn { _ in _ = try await ch.receive() }
            let selecting = me.spawn { p in
                _ = try await p.select {
                    p.onMessage(String.self) { _ in 0 }
                    ch.onReceive { $0 ?? 0 }
                }
            }
            #expect(await eventually { ch.pending.receives == 2 })
            let r1 = me.monitor(waiting), r2 = me.monitor(selecting)
            Parley.Process.exit(waiting, .kill)
            Parley.Process.exit(selecting, .kill)
            #expect(try await me.down(r1).reason.matches(.killed))
            #expect(try await me.down(r2).reason.matches(.killed))
            // The killed tasks are cancelled right after the DOWN is sent; their waits end then.
            #expect(await eventually { ch.pending.receives == 0 })
            #expect(!ch.offer(1), "no dead process can take a value")
        }
    }

    @Test("BEAM fairness: a job's reductions run out after the configured budget (4000), and only on scheduler threads")
    func reductionBudget() async throws {
        // A go block runs on a scheduler thread; with no suspension in the loop it stays one job.
        let budget = Scheduler.shared.configuration.reductions
        let spentAt = try await inGo { () -> [Int] in
            var at: [Int] = []
            for i in 1...(2 * budget) where Scheduler.reductionSpent() { at.append(i) }
            return at
        }
        #expect(spentAt == [budget, 2 * budget], "spent exactly once per budget")
        // Off the scheduler (this test's own task), channel operations never yield.
        #expect(!(0..<(3 * budget)).contains { _ in Scheduler.reductionSpent() })
        // And a go block whose sends and receives never wait still finishes: it yields and resumes.
        let n = try await inGo { () -> Int in
            let ch = Channel<Int>(buffer: .fixed(1))
            var sum = 0
            for i in 0..<(3 * budget) { try await ch.send(i); sum += try await ch.receive()! }
            return sum
        }
        #expect(n == (3 * budget) * (3 * budget - 1) / 2)
    }

    @Test("alts!! with a timeout on a plain thread returns nil when nothing comes")
    func blockingAltsTimeout() async throws {
        let a = Channel<Int>()
        let r = thread { try altsBlocking([a], timeout: .milliseconds(20)) == nil }
        #expect(try await r.receive() == true)
        #expect(a.pending.receives == 0)
    }

    @Test("a select with no cases is a typed error, not a hang")
    func noCases() async throws {
        await #expect(throws: ChannelError.noCases) {
            let _: Int = try await select { }
        }
        let none: [Channel<Int>] = []
        await #expect(throws: ChannelError.noCases) { _ = try await alts(none) }
    }
}

/// Runs `body` in a go block and waits for its result.
private func inGo<T: Sendable>(_ body: sending @escaping () async throws -> T) async throws -> T {
    let r = go(body)
    return try #require(try await r.receive(), "the go block threw")
}
