import ParleyChannels
import Synchronization
import Testing

@Suite("Channels: cancellation, races and stress", .timeLimit(.minutes(2)))
struct ChannelStressTests {
    @Test("Kotlin's rule: a cancelled receive either returns the value or leaves it in the channel, never loses it")
    func cancelReceiveRace() async throws {
        for i in 0..<scaled(2_000) {
            let ch = Channel<Int>()
            let receiver = Task { try await ch.receive() }
            if i % 2 == 0 { await Task.yield() }
            try ch.put(i)
            receiver.cancel()
            switch await receiver.result {
            case .success(let v):
                #expect(v == i)
                #expect(ch.poll() == nil, "delivered once, not twice")
            case .failure(let e):
                #expect(e as? ChannelError == .cancelled)
                #expect(ch.poll() == i, "the value stayed in the channel")
            }
        }
    }

    @Test("a cancelled send is not delivered: it throws .cancelled and its value goes to onUndelivered")
    func cancelSend() async throws {
        let undelivered = Collected<Int>()
        let ch = Channel<Int>(onUndelivered: { undelivered.add($0) })
        let sender = Task { try await ch.send(7) }
        #expect(await eventually { ch.pending.sends == 1 })
        sender.cancel()
        await #expect(throws: ChannelError.cancelled) { try await sender.value }
        #expect(ch.poll() == nil)
        #expect(undelivered.all == [7])
    }

    @Test("many producers, many consumers: every value received exactly once (buffered and unbuffered)")
    func mpmc() async throws {
        for policy in [BufferPolicy.fixed(16), .unbuffered] {
            let ch = Channel<Int>(buffer: policy)
            let producers = 4, consumers = 4, each = scaled(20_000)
            let done = (0..<producers).map { p in go { for i in 0..<each { try await ch.send(p * each + i) }; return true } }
            let results = (0..<consumers).map { _ in go { var got: [Int] = []; while let v = try await ch.receive() { got.append(v) }; return got } }
            for d in done { _ = try await d.receive() }
            ch.close()
            var all: [Int] = []
            for r in results { all += try await r.receive()! }
            #expect(all.count == producers * each)
            #expect(Set(all).count == producers * each, "\(policy): no value twice")
        }
    }

    @Test("Go: a channel is FIFO; values from one sender arrive in the order sent, whatever the buffer")
    func fifoPerSender() async throws {
        for policy in [BufferPolicy.unbuffered, .fixed(1), .fixed(64)] {
            let ch = Channel<Int>(buffer: policy)
            let n = scaled(10_000)
            go { for i in 0..<n { try await ch.send(i) }; ch.close() }
            var expected = 0
            while let v = try await ch.receive() {
                #expect(v == expected, "\(policy)")
                if v != expected { break }
                expected += 1
            }
            #expect(expected == n)
        }
    }

    @Test("close racing pending sends: a send that returned true is received exactly once, a refused one never")
    func closeRace() async throws {
        for _ in 0..<scaled(50) {
            let refused = Collected<Int>()
            let ch = Channel<Int>(buffer: .fixed(4), onUndelivered: { refused.add($0) })
            let senders = (0..<4).map { s in go { var ok: [Int] = []; for i in 0..<50 { if try await ch.send(s * 100 + i) { ok.append(s * 100 + i) } }; return ok } }
            let reader = go { var got: [Int] = []; while let v = try await ch.receive() { got.append(v); if got.count == 20 { ch.close() } }; return got }
            var accepted: [Int] = []
            for s in senders { accepted += try await s.receive()! }
            let got = try await reader.receive()!
            #expect(Set(got) == Set(accepted) && got.count == accepted.count)
            #expect(Set(refused.all).isDisjoint(with: got))
            #expect(refused.all.count + accepted.count == 200)
        }
    }

    @Test("select under contention: selects with sends and receives over shared channels deliver every value once")
    func selectStress() async throws {
        let a = Channel<Int>(), b = Channel<Int>(buffer: .fixed(2))
        let each = scaled(5_000)
        let producers = (0..<2).map { p in go {
            for i in 0..<each {
                let v = p * each + i
                try await select { a.onSend(v) { _ in () }; b.onSend(v) { _ in () } }
            }
            return true
        } }
        let consumers = (0..<2).map { _ in go {
            var got: [Int] = []
            for _ in 0..<each { got.append(try await select { a.onReceive { $0! }; b.onReceive { $0! } }) }
            return got
        } }
        var all: [Int] = []
        for c in consumers { all += try await c.receive()! }
        for p in producers { _ = try await p.receive() }
        #expect(all.count == 2 * each && Set(all).count == 2 * each)
    }
}
