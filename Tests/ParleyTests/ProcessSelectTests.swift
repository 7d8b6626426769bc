import Parley
import Synchronization
import Testing

@Suite("Channels: a process selects over its mailbox and channels", .timeLimit(.minutes(1)))
struct ProcessSelectTests {
    @Test("a message in the mailbox, a value in a channel, a timeout: each completes the select; messages not matched stay")
    func mailboxAndChannel() async throws {
        let ch = Channel<Int>(buffer: .fixed(4))
        let results = try await Parley.Process.run { me in
            var out: [String] = []
            me.send(3.5, to: me.pid)
            me.send("hello", to: me.pid)
            out.append(try await me.select(order: .priority) {
                me.onMessage(String.self) { "message \($0)" }
                ch.onReceive { "channel \($0!)" }
            })
            try await ch.send(7)
            out.append(try await me.select(order: .priority) {
                me.onMessage(String.self) { "message \($0)" }
                ch.onReceive { "channel \($0!)" }
            })
            out.append(try await me.select {
                me.onMessage(String.self) { "message \($0)" }
                ch.onReceive { "channel \($0!)" }
                SelectCase.timeout(.milliseconds(20)) { "timeout" }
            })
            out.append("left \(try await me.receive(Double.self))")
            return out
        }
        #expect(results == ["message hello", "channel 7", "timeout", "left 3.5"])
    }

    @Test("while waiting, whichever comes first wins, and nothing is lost: N messages and N channel values are all received once")
    func noLoss() async throws {
        let n = scaled(5_000)
        let ch = Channel<Int>()
        let got = try await Parley.Process.run { me in
            let target = me.pid
            let sender = me.spawn { p in for i in 0..<n { p.send(i, to: target); if i % 64 == 0 { await Scheduler.yield() } } }
            _ = sender
            go { for i in 0..<n { try await ch.send(n + i) } }
            var seen: [Int] = []
            for _ in 0..<(2 * n) {
                seen.append(try await me.select {
                    me.onMessage(Int.self) { $0 }
                    ch.onReceive { $0! }
                })
            }
            return seen
        }
        #expect(got.count == 2 * n && Set(got) == Set(0..<(2 * n)))
    }
}
