import Parley
import Synchronization
import Testing

/// Collects values handed to an `onUndelivered` hook.
final class Collected<T: Sendable>: Sendable {
    let values = Mutex<[T]>([])
    func add(_ v: T) { values.withLock { $0.append(v) } }
    var all: [T] { values.withLock { $0 } }
}

/// Runs `body` in a go block and waits for its result (test bodies use the go path).
func inGo<T: Sendable>(_ body: sending @escaping () async throws -> T) async throws -> T {
    let r = go(body)
    return try #require(try await r.receive(), "the go block threw")
}

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
        let onCaller = Mutex<[String]>([])
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

@Suite("Channels: transforms (core.async transducers)", .timeLimit(.minutes(1)))
struct ChannelTransformTests {
    @Test("core.async (chan buf (map f)): puts are transformed; types may change")
    func mapTransform() async throws {
        let ch = Chan(buffer: .fixed(4), transform: Transducer<Int, String>.map { "#\($0)" })
        try await ch.send(1)
        try await ch.send(2)
        #expect(try await ch.receive() == "#1")
        #expect(try await ch.receive() == "#2")
    }

    @Test("core.async (filter) then (map): composed in order")
    func composed() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.filter { $0 % 2 == 0 }.then(.map { $0 * $0 }))
        for i in 1...6 { try await ch.send(i) }
        ch.close()
        var got: [Int] = []
        for try await v in ch { got.append(v) }
        #expect(got == [4, 16, 36])
    }

    @Test("core.async (take n): the channel closes after n values; later puts are refused")
    func takeCloses() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.take(2))
        #expect(try await ch.send(1))
        #expect(try await ch.send(2))
        #expect(ch.isClosed)
        #expect(try await ch.send(3) == false)
        #expect(try await ch.receive() == 1)
        #expect(try await ch.receive() == 2)
        #expect(try await ch.receive() == nil)
    }

    @Test("core.async (partition-all n): full groups as they fill; the last short group is flushed on close")
    func partitionFlush() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, [Int]>.partition(3))
        for i in 1...7 { try await ch.send(i) }
        #expect(ch.count == 2)
        ch.close()
        var got: [[Int]] = []
        for try await g in ch { got.append(g) }
        #expect(got == [[1, 2, 3], [4, 5, 6], [7]])
    }

    @Test("core.async mapcat: one put may produce several values")
    func flatMap() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.flatMap { Array(repeating: $0, count: $0) })
        try await ch.send(2)
        try await ch.send(1)
        ch.close()
        var got: [Int] = []
        for try await v in ch { got.append(v) }
        #expect(got == [2, 2, 1])
    }

    @Test("core.async ex-handler: a throwing transform's value is replaced by the handler's, and the channel keeps working")
    func errorHandler() async throws {
        struct Odd: Error {}
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.map { x in if x % 2 == 1 { throw Odd() }; return x },
                      onError: { _ in -1 })
        for i in 1...4 { try await ch.send(i) }
        let none = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.map { x in if x == 1 { throw Odd() }; return x })
        try await none.send(1)
        try await none.send(2)
        #expect(ch.poll() == -1)
        #expect(ch.poll() == 2)
        #expect(ch.poll() == -1)
        #expect(ch.poll() == 4)
        #expect(none.poll() == 2, "without a handler the failed value is dropped")
    }

    @Test("a transform needs a fixed buffer to make a waiting put wait, and waiting puts go through it when room is made")
    func waitingPutsAreTransformed() async throws {
        let ch = Chan(buffer: .fixed(1), transform: Transducer<Int, Int>.map { $0 * 10 })
        try await ch.send(1)
        let second = go { try await ch.send(2) }
        #expect(await eventually { ch.pending.sends == 1 })
        #expect(try await ch.receive() == 10)
        #expect(try await second.receive() == true)
        #expect(try await ch.receive() == 20)
    }
}

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

func pow2(_ x: Double) -> Double { x * x }
