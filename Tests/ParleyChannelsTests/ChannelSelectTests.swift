import ParleyChannels
import Synchronization
import Testing

@Suite("Channels: select and alts", .timeLimit(.minutes(1)))
struct ChannelSelectTests {
    @Test("core.async alts! with :default: returns the default when nothing is ready, and queues nothing")
    func defaultCase() async throws {
        let a = Channel<Int>(), b = Channel<Int>()
        for _ in 0..<10_000 {
            let r = try await select {
                a.onReceive { _ in "a" }
                b.onSend(1) { _ in "b" }
                SelectCase.default { "default" }
            }
            #expect(r == "default")
        }
        #expect(a.pending.receives == 0 && b.pending.sends == 0)
        // 10,000 selects left no residue: the pending limit is untouched.
        for i in 0..<1024 { try a.put(i) }
        for i in 0..<1024 { #expect(a.poll() == i) }
    }

    @Test("losing select cases leave only dead entries, which never count toward the 1024 limit")
    func losersDoNotCount() async throws {
        let never = Channel<Int>()
        let hit = Channel<Int>(buffer: .fixed(1))
        for i in 0..<2_000 {
            // Each select parks on both channels, then `hit` completes it.
            let r = go {
                try await select {
                    never.onReceive { _ in -1 }
                    hit.onReceive { v in v! }
                }
            }
            try await hit.send(i)
            #expect(try await r.receive() == i)
        }
        #expect(never.pending.receives == 0)
        for i in 0..<1024 { try never.put(i) }   // would throw if 2,000 dead takers counted
        for i in 0..<1024 { #expect(never.poll() == i) }
    }

    @Test("core.async alts! :priority true: the first ready case in order wins, every time")
    func priority() async throws {
        let a = Channel<Int>(buffer: .fixed(100)), b = Channel<Int>(buffer: .fixed(100))
        for i in 0..<100 { try await a.send(i); try await b.send(i) }
        for _ in 0..<100 {
            let r = try await select(order: .priority) {
                b.onReceive { _ in "b" }
                a.onReceive { _ in "a" }
            }
            #expect(r == "b")
        }
        #expect(try await alts([a, b], order: .priority)!.index == 0)
    }

    @Test("Go/core.async fair select: each ready case is chosen with equal probability (chi-squared over 10,000 selects)")
    func fairness() async throws {
        let n = 4, rounds = 10_000
        let chans = (0..<n).map { _ in Channel<Int>(buffer: .fixed(rounds)) }
        for c in chans { for i in 0..<rounds { _ = c.offer(i) } }
        var counts = [Int](repeating: 0, count: n)
        for _ in 0..<rounds {
            let i = try await select {
                chans[0].onReceive { _ in 0 }
                chans[1].onReceive { _ in 1 }
                chans[2].onReceive { _ in 2 }
                chans[3].onReceive { _ in 3 }
            }
            counts[i] += 1
        }
        let expected = Double(rounds) / Double(n)
        let chi2 = counts.reduce(0.0) { $0 + pow2(Double($1) - expected) / expected }
        // df = 3: P(chi2 > 16.27) = 0.001.
        #expect(chi2 < 16.27, "counts \(counts), chi2 \(chi2)")
    }

    @Test("fair alts over many channels (random probes): uniform among ready channels (chi-squared)")
    func fairnessMany() async throws {
        let n = 40, ready = 4, rounds = 8_000
        let chans = (0..<n).map { _ in Channel<Int>(buffer: .fixed(rounds)) }
        let readyIdx = [3, 17, 18, 39]
        for r in readyIdx { for i in 0..<rounds { _ = chans[r].offer(i) } }
        var counts = [Int: Int]()
        for _ in 0..<rounds { counts[try await alts(chans)!.index, default: 0] += 1 }
        #expect(Set(counts.keys) == Set(readyIdx))
        let expected = Double(rounds) / Double(ready)
        let chi2 = counts.values.reduce(0.0) { $0 + pow2(Double($1) - expected) / expected }
        #expect(chi2 < 16.27, "counts \(counts), chi2 \(chi2)")
    }

    @Test("Go select: exactly one case completes; a send case hands its value only if chosen")
    func exactlyOne() async throws {
        let out = Channel<Int>(buffer: .fixed(1)), input = Channel<Int>(buffer: .fixed(1))
        try await input.send(5)
        let r = try await select {
            out.onSend(1) { _ in "sent" }
            input.onReceive { _ in "received" }
        }
        if r == "sent" { #expect(out.poll() == 1); #expect(input.poll() == 5) } else { #expect(out.poll() == nil) }
    }

    @Test("Go select: a send and a receive on the same unbuffered channel never meet each other")
    func noSelfMatch() async throws {
        let ch = Channel<Int>()
        let r = try await select {
            ch.onSend(1) { _ in "sent" }
            ch.onReceive { _ in "received" }
            SelectCase.timeout(.milliseconds(30)) { "timeout" }
        }
        #expect(r == "timeout")
        #expect(ch.pending == (0, 0))
    }

    @Test("select between two selects: a parked sending select and a receiving select complete together")
    func selectMeetsSelect() async throws {
        let rounds = scaled(2_000)
        let a = Channel<Int>(), b = Channel<Int>()
        let sender = go {
            for i in 0..<rounds {
                try await select {
                    a.onSend(i) { _ in () }
                    b.onSend(i) { _ in () }
                }
            }
            return true
        }
        var got: [Int] = []
        for _ in 0..<rounds {
            got.append(try await select {
                a.onReceive { $0! }
                b.onReceive { $0! }
            })
        }
        #expect(got == Array(0..<rounds))
        #expect(try await sender.receive() == true)
    }

    @Test("alts!! on a closed channel completes with nil")
    func altsClosed() async throws {
        let a = Channel<Int>(), b = Channel<Int>()
        b.close()
        let r = try altsBlocking([a, b])
        #expect(r?.index == 1 && r?.value == nil)
    }

    @Test("a select's timeout case wins when nothing is ready in time")
    func timeoutCase() async throws {
        let ch = Channel<Int>()
        let start = ContinuousClock.now
        let r = try await select {
            ch.onReceive { _ in "value" }
            SelectCase.timeout(.milliseconds(40)) { "timeout" }
        }
        #expect(r == "timeout")
        #expect(ContinuousClock.now - start >= .milliseconds(38))
        #expect(ch.pending.receives == 0)
        #expect(try await alts([ch], timeout: .milliseconds(10)) == nil)
    }

    @Test("core.async timeout: the channel closes after its delay, not before; shorter timeouts close first")
    func timeoutChannels() async throws {
        let start = ContinuousClock.now
        let long = timeout(.milliseconds(60)), short = timeout(.milliseconds(20))
        let first = try await alts([long, short], order: .priority)!
        #expect(first.index == 1)
        #expect(ContinuousClock.now - start >= .milliseconds(19))
        #expect(try await long.receive() == nil)
        #expect(ContinuousClock.now - start >= .milliseconds(59))
        // Two calls in a row fall in one 4 ms slot unless they straddle its end; try a few pairs.
        var shared = false
        for _ in 0..<10 where !shared { shared = timeout(.milliseconds(500)) === timeout(.milliseconds(500)) }
        #expect(shared, "deadlines within 4 ms share a channel")
    }

    @Test("cancelling a task in select completes no case and leaves nothing that accepts values")
    func cancelledSelect() async throws {
        let a = Channel<Int>(), b = Channel<Int>()
        let t = Task {
            try await select {
                a.onReceive { _ in 1 }
                b.onReceive { _ in 2 }
            }
        }
        #expect(await eventually { a.pending.receives == 1 && b.pending.receives == 1 })
        t.cancel()
        await #expect(throws: ChannelError.cancelled) { try await t.value }
        #expect(!a.offer(1) && !b.offer(2), "the cancelled select's cells are dead")
    }
}
