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

    /// Erlang's receive: "the first message in the mailbox is matched against the patterns in
    /// order; if none matches, the second message, and so on" (Erlang reference manual,
    /// Expressions: Receive). Checked with OTP 25: with "a" then 1 in the mailbox,
    /// `receive X when is_integer(X) -> int; X when is_list(X) -> str end` gives str; with 1
    /// then 2, `receive Y when Y > 1 -> first; Y -> second end` gives {second, 1}.
    @Test("several message cases: the oldest message that any case accepts, given to the first case (in written order) that accepts it, as receive's clauses")
    func severalMessageCases() async throws {
        let ch = Channel<Int>(buffer: .fixed(1))
        let results = try await Parley.Process.run { me in
            var out: [String] = []
            me.send(2.5, to: me.pid)           // matched by no case: stays
            me.send("a", to: me.pid)
            me.send(1, to: me.pid)
            // Mailbox order first: "a" is older than 1, so the String case wins.
            out.append(try await me.select(order: .priority) {
                me.onMessage(Int.self) { "int \($0)" }
                me.onMessage(String.self) { "str \($0)" }
                ch.onReceive { "channel \($0!)" }
            })
            me.send(2, to: me.pid)
            // Mailbox [2.5, 1, 2]: 1 is the oldest Int; the first case rejects it, the second takes it.
            out.append(try await me.select {
                me.onMessage(Int.self, where: { $0 > 1 }) { "first \($0)" }
                me.onMessage(Int.self) { "second \($0)" }
            })
            // A message that arrives while the select waits goes to the case that accepts it.
            let target = me.pid
            me.spawn { p in p.send("late", to: target) }
            out.append(try await me.select {
                me.onMessage(Bool.self) { "bool \($0)" }
                me.onMessage(String.self) { "str \($0)" }
                SelectCase.timeout(.seconds(30)) { "timeout" }
            })
            out.append(try await me.select {
                me.onMessage(String.self) { "str \($0)" }
                me.onMessage(Int.self) { "int \($0)" }
            })
            out.append("left \(try await me.receive(Double.self))")
            return out
        }
        #expect(results == ["str a", "second 1", "str late", "int 2", "left 2.5"])
    }

    /// Go: "multiple defaults in select" (a compile-time error there); here a select built
    /// from data may have two, so it throws instead of trapping, and nothing is taken.
    @Test("two default cases, or a message case in the channels-only select: a typed error, not a trap, and nothing is taken")
    func mistakesAreThrown() async throws {
        let ch = Channel<Int>(buffer: .fixed(1))
        try await ch.send(1)
        await #expect(throws: ChannelError.severalDefaults) {
            _ = try await select {
                ch.onReceive { $0 }
                for _ in 0..<2 { SelectCase<Int?>.default { nil } }
            }
        }
        let outcome = try await Parley.Process.run { me -> String in
            me.send("kept", to: me.pid)
            do {
                _ = try await select { me.onMessage(String.self) { $0 } }
                return "no error"
            } catch let e as ChannelError {
                return "\(e == .messageCaseOutsideProcess) \(try await me.receive(String.self))"
            }
        }
        #expect(outcome == "true kept")
        #expect(ch.count == 1, "the channel's value was not taken")
    }
}
