import ParleyChannels
import Synchronization
import Testing

@Suite("Channels: buffers, put/take, close (core.async and Go rules)", .timeLimit(.minutes(1)))
struct ChannelBasicsTests {
    @Test("core.async fixed-buffer: FIFO; a send into a full buffer waits until a receive makes room")
    func fixedBuffer() async throws {
        let ch = Channel<Int>(buffer: .fixed(2))
        #expect(try await ch.send(1))
        #expect(try await ch.send(2))
        #expect(!ch.offer(3), "full: offer! must not add")
        let third = go { try await ch.send(3) }
        #expect(try await ch.receive() == 1)
        #expect(try await third.receive() == true)
        #expect(try await ch.receive() == 2)
        #expect(try await ch.receive() == 3)
        #expect(ch.count == 0)
    }

    @Test("core.async dropping-buffer: keeps the oldest n, drops new values, sends never wait")
    func droppingBuffer() async throws {
        let dropped = Collected<Int>()
        let ch = Channel<Int>(buffer: .dropping(2), onUndelivered: { dropped.add($0) })
        for i in 1...5 { #expect(try await ch.send(i), "a dropping buffer accepts every send") }
        #expect(ch.poll() == 1)
        #expect(ch.poll() == 2)
        #expect(ch.poll() == nil)
        #expect(dropped.all == [3, 4, 5])
    }

    @Test("core.async sliding-buffer: keeps the newest n, drops the oldest, sends never wait")
    func slidingBuffer() async throws {
        let dropped = Collected<Int>()
        let ch = Channel<Int>(buffer: .sliding(2), onUndelivered: { dropped.add($0) })
        for i in 1...5 { #expect(try await ch.send(i)) }
        #expect(ch.poll() == 4)
        #expect(ch.poll() == 5)
        #expect(dropped.all == [1, 2, 3])
    }

    @Test("core.async fixed-buffer: FIFO holds across the buffer's growth and wrap-around (a buffer larger than 1024 fills in steps)")
    func fixedBufferGrowsAndWraps() async throws {
        // The ring starts at 1024 slots and doubles up to the capacity; take some first so
        // that the values are split across the ring's end when it grows.
        let ch = Channel<Int>(buffer: .fixed(5000))
        var next = 0, expected = 0
        for _ in 0..<700 { #expect(ch.offer(next)); next += 1 }
        for _ in 0..<500 { #expect(ch.poll() == expected); expected += 1 }
        for _ in 0..<4800 { #expect(ch.offer(next)); next += 1 }
        #expect(ch.count == 5000)
        #expect(!ch.offer(next), "a fixed buffer of 5000 is full at 5000")
        while let v = ch.poll() { #expect(v == expected); expected += 1 }
        #expect(expected == next)
        // And again, now that the ring has its full size.
        for i in 0..<5000 { #expect(ch.offer(i)) }
        for i in 0..<5000 { #expect(ch.poll() == i) }
    }

    @Test("core.async sliding-buffer: the newest n survive many wrap-arounds; every dropped value is reported once, oldest first")
    func slidingBufferWraps() async throws {
        let dropped = Collected<Int>()
        let ch = Channel<Int>(buffer: .sliding(3), onUndelivered: { dropped.add($0) })
        for i in 0..<1000 { #expect(try await ch.send(i)) }
        #expect(ch.count == 3)
        #expect(ch.poll() == 997)
        #expect(ch.poll() == 998)
        #expect(ch.poll() == 999)
        #expect(dropped.all == Array(0..<997))
    }

    @Test("A channel that goes away releases the values still in its buffer (Swift: no leak, no double release)")
    func bufferedValuesAreReleasedWithTheChannel() async throws {
        final class Tracked: Sendable {
            let gone: Collected<Int>, id: Int
            init(_ id: Int, _ gone: Collected<Int>) { self.id = id; self.gone = gone }
            deinit { gone.add(id) }
        }
        let gone = Collected<Int>()
        do {
            let ch = Channel<Tracked>(buffer: .fixed(2000))
            for i in 0..<1500 { #expect(ch.offer(Tracked(i, gone))) }
            for _ in 0..<10 { _ = ch.poll() }     // taken values are released by their receiver
            #expect(gone.all.count == 10)
        }
        #expect(gone.all.sorted() == Array(0..<1500), "each buffered value released exactly once")
    }

    @Test("core.async promise-chan: the first value goes to every taker, forever, even after close; later puts are ignored")
    func promiseChannel() async throws {
        let ch = Channel<String>(buffer: .promise)
        let early = (0..<3).map { _ in go { try await ch.receive() } }
        #expect(try await ch.send("first"))
        #expect(try await ch.send("second"), "a put onto a delivered promise is accepted and ignored")
        for e in early { #expect(try await e.receive()! == "first") }
        ch.close()
        #expect(try await ch.receive() == "first")
        #expect(ch.poll() == "first")
        let empty = Channel<Int>(buffer: .promise)
        empty.close()
        #expect(try await empty.receive() == nil, "a promise closed before delivery gives nil")
    }

    @Test("Go/core.async unbuffered: a send completes only when a receiver takes the value (rendezvous)")
    func rendezvous() async throws {
        let ch = Channel<Int>()
        let sent = Collected<Bool>()
        let writer = go { try await ch.send(42); sent.add(true) }
        #expect(await eventually { ch.pending.sends == 1 }, "the writer parks in send")
        try await Task.sleep(for: .milliseconds(20))
        #expect(sent.all.isEmpty, "the writer must wait for a reader")
        #expect(try await ch.receive() == 42)
        _ = try await writer.receive()
        #expect(sent.all == [true])
    }

    @Test("core.async offer!/poll!: complete only if possible now and never queue")
    func offerPoll() async throws {
        let ch = Channel<Int>()
        #expect(!ch.offer(1))
        #expect(ch.poll() == nil)
        #expect(ch.pending.sends == 0 && ch.pending.receives == 0)
        let reader = go { try await ch.receive() }
        #expect(await eventually { ch.pending.receives == 1 })
        #expect(ch.offer(7), "offer! to a waiting taker succeeds")
        #expect(try await reader.receive()! == 7)
        try ch.put(8)
        #expect(ch.poll() == 8, "poll! takes from a waiting putter")
    }

    @Test("core.async put!/take!: callbacks run on the caller when the operation completes at once")
    func callbacks() async throws {
        let ch = Channel<Int>(buffer: .fixed(1))
        let onCaller = Locked<[String]>([])  // not Mutex: TSan cannot see its lock on Linux
        try ch.put(1) { ok in onCaller.withLock { $0.append("put \(ok)") } }
        try ch.take { v in onCaller.withLock { $0.append("take \(v!)") } }
        #expect(onCaller.withLock { $0 } == ["put true", "take 1"])
        let later = Channel<Int>(buffer: .promise)
        try ch.take { v in _ = later.offer(v ?? -1) }
        try ch.put(5)
        #expect(try await later.receive() == 5, "a queued take! runs when a value comes")
        ch.close()
        let refused = Channel<Bool>(buffer: .promise)
        try ch.put(9) { ok in _ = refused.offer(ok) }
        #expect(try await refused.receive() == false, "put! onto a closed channel reports false")
    }

    @Test("core.async close!: later puts are refused; buffered values, then nil, for takers; closing twice is harmless")
    func closeRules() async throws {
        let refused = Collected<Int>()
        let ch = Channel<Int>(buffer: .fixed(3), onUndelivered: { refused.add($0) })
        try await ch.send(1)
        try await ch.send(2)
        ch.close()
        ch.close()
        #expect(ch.isClosed)
        #expect(try await ch.send(3) == false)
        #expect(!ch.offer(4))
        #expect(refused.all == [3], "a refused send goes to the hook (offer! keeps its value)")
        #expect(try await ch.receive() == 1)
        #expect(try await ch.receive() == 2)
        #expect(try await ch.receive() == nil)
        #expect(try await ch.receive() == nil, "takes from a closed, drained channel keep returning nil")
    }

    @Test("core.async close!: puts already pending on an unbuffered channel can still be taken after close")
    func pendingPutsSurviveClose() async throws {
        let ch = Channel<Int>()
        let putters = (1...3).map { i in go { try await ch.send(i) } }
        #expect(await eventually { ch.pending.sends == 3 })
        ch.close()
        var got: [Int] = []
        while let v = try await ch.receive() { got.append(v) }
        #expect(got.sorted() == [1, 2, 3])
        for p in putters { #expect(try await p.receive() == true) }
    }

    @Test("core.async close!: takers already waiting get nil")
    func closeWakesTakers() async throws {
        let ch = Channel<Int>()
        let takers = (0..<4).map { _ in go { try await ch.receive() } }
        #expect(await eventually { ch.pending.receives == 4 })
        ch.close()
        for t in takers {
            let r = try await t.receive()
            #expect(r != nil && r! == nil)
        }
    }

    @Test("core.async: no more than 1024 pending puts; the 1025th is an error; the channel keeps working")
    func pendingPutLimit() async throws {
        let ch = Channel<Int>()
        for i in 0..<Channel<Int>.pendingLimit { try ch.put(i) }
        #expect(throws: ChannelError.tooManyPending(limit: 1024)) { try ch.put(-1) }
        await #expect(throws: ChannelError.tooManyPending(limit: 1024)) { try await ch.send(-2) }
        for i in 0..<Channel<Int>.pendingLimit { #expect(ch.poll() == i) }
        try ch.put(5)
        #expect(ch.poll() == 5, "after the queue drains the channel works again")
    }

    @Test("core.async: no more than 1024 pending takes")
    func pendingTakeLimit() async throws {
        let ch = Channel<Int>()
        for _ in 0..<1024 { try ch.take { _ in } }
        #expect(throws: ChannelError.tooManyPending(limit: 1024)) { try ch.take { _ in } }
        ch.close()
    }

    @Test("AsyncSequence: for-await receives until the channel is closed and drained")
    func asyncSequence() async throws {
        let ch = Channel<Int>(buffer: .fixed(10))
        for i in 0..<5 { try await ch.send(i) }
        ch.close()
        var got: [Int] = []
        for try await v in ch { got.append(v) }
        #expect(got == [0, 1, 2, 3, 4])
    }

    @Test("core.async >!!/<!!: blocking operations from plain threads meet parking ones")
    func blockingOperations() async throws {
        let ch = Channel<Int>()
        let producer = thread { for i in 0..<100 { try ch.sendBlocking(i) }; ch.close(); return true }
        var sum = 0
        while let v = try await ch.receive() { sum += v }
        #expect(sum == 4950)
        #expect(try await producer.receive() == true)
        let back = Channel<Int>()
        go { try await back.send(9) }
        let got = thread { try back.receiveBlocking() }
        #expect(try await got.receive()! == 9)
    }

    @Test("core.async go: the returned channel carries the body's result, then closes; a throwing body closes it empty and reports the error")
    func goBlocks() async throws {
        let r = go { 6 * 7 }
        #expect(try await r.receive() == 42)
        #expect(try await r.receive() == nil)
        struct Boom: Error {}
        let reported = Collected<String>()
        try await withChannelErrorHandler({ reported.add("\($0)") }) { () async throws in
            let failed = go { () async throws -> Int in throw Boom() }
            #expect(try await failed.receive() == nil)
        }
        #expect(reported.all == ["Boom()"])
    }
}
