import ParleyChannels
import Synchronization
import Testing

// Ports of core.async's combinator tests (test/clojure/core/async_test.clj and
// pipeline_test.clj), plus the rules of async.clj they rely on. Waits are on channels; every
// wait has a deadline (`patience`) so that a broken combinator fails instead of hanging, and
// a negative check ("nothing arrives") waits `brief` and asserts that nothing did.

/// The deadline for something that must happen. Only a failing test waits it out; it is
/// long because the whole suite shares two scheduler threads with the stress and
/// distribution suites, and 5 s once ran out in a full run (pipelineErrorHandler, 2026-12-04)
/// while 40 runs of that test alone and 12 of this target beside two busy loops passed.
private let patience: Duration = .seconds(30)
/// How long a negative check waits for something that must not happen.
private let brief: Duration = .milliseconds(50)

private struct TimedOut: Error, CustomStringConvertible {
    let description: String
}

/// Receives one value (`nil`: the channel is closed and drained); throws if neither comes
/// within `patience`.
private func next<I, O>(_ ch: Chan<I, O>) async throws -> O? {
    guard let (value, _) = try await alts([ch], timeout: patience) else {
        throw TimedOut(description: "nothing received within \(patience)")
    }
    return value
}

/// Every value until the channel is closed and drained.
private func drain<I, O>(_ ch: Chan<I, O>) async throws -> [O] {
    var values: [O] = []
    while let v = try await next(ch) { values.append(v) }
    return values
}

/// Whether nothing, neither a value nor the close, arrives on `ch` within `brief`.
private func staysQuiet<I, O>(_ ch: Chan<I, O>) async throws -> Bool {
    if case .none = try await alts([ch], timeout: brief) { return true }
    return false
}

/// Sends `value`; whether it was taken (or buffered) within `within`.
private func sent<I, O>(_ ch: Chan<I, O>, _ value: I, within: Duration = patience) async throws -> Bool {
    try await select {
        ch.onSend(value) { accepted in accepted }
        SelectCase.timeout(within) { false }
    }
}

/// Waits (polling) until `condition` holds; throws after `patience`.
private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + patience
    while !condition() {
        if ContinuousClock.now > deadline { throw TimedOut(description: "\(what): not within \(patience)") }
        try await Task.sleep(for: .milliseconds(1))
    }
}

private struct Boom: Error, Equatable {
    let value: Int
}

@Suite("Channel combinators (core.async)", .timeLimit(.minutes(1)))
struct ChannelCombinatorTests {
    // MARK: pipe

    @Test("core.async pipe: every value of `from` reaches `to`, which is closed when `from` closes")
    func pipeMovesAndCloses() async throws {
        let out = Channel<Int>()
        let returned = pipe(toChannel([1, 2, 3, 4, 5]), out)
        #expect(returned === out)
        #expect(try await drain(out) == [1, 2, 3, 4, 5])
    }

    @Test("core.async pipe: with close? false, `to` stays open after `from` closes")
    func pipeCloseFalse() async throws {
        let out = Channel<Int>(buffer: .fixed(4))
        pipe(toChannel([1, 2]), out, close: false)
        #expect(try await next(out) == 1)
        #expect(try await next(out) == 2)
        #expect(try await staysQuiet(out))
        #expect(try await out.send(3))
        #expect(try await next(out) == 3)
    }

    @Test("core.async pipe: stops consuming `from` once `to` is closed")
    func pipeStopsWhenToCloses() async throws {
        let from = Channel<Int>(), to = Channel<Int>()
        to.close()
        pipe(from, to)
        #expect(try await sent(from, 1))                        // taken, then refused by `to`
        #expect(try await !sent(from, 2, within: brief))        // and nothing more is taken
        #expect(!from.isClosed)
    }

    // MARK: merge

    @Test("core.async merge: every value of every source, each source's in order; closed after all sources close")
    func mergeAll() async throws {
        let sources = (0..<4).map { s in toChannel((0..<4).map { [s, $0] }) }
        let all = try await drain(merge(sources))
        #expect(all.count == 16)
        for s in 0..<4 {
            #expect(all.filter { $0[0] == s }.map { $0[1] } == [0, 1, 2, 3])
        }
    }

    @Test("core.async merge: the result stays open while any source is open; no sources gives a closed channel")
    func mergeClosesAfterAllSources() async throws {
        let open = Channel<Int>()
        let out = merge([open, toChannel([7])])
        #expect(try await next(out) == 7)
        #expect(try await staysQuiet(out))
        #expect(try await sent(open, 8))
        #expect(try await next(out) == 8)
        open.close()
        #expect(try await next(out) == nil)

        #expect(try await next(merge([Channel<Int>]())) == nil)
    }

    @Test("core.async merge: the buffer argument gives the result channel's buffer")
    func mergeBuffer() async throws {
        let out = merge([toChannel([1, 2, 3])], buffer: .fixed(3))
        #expect(out.buffer == .fixed(3))
        #expect(try await drain(out) == [1, 2, 3])
    }

    // MARK: split

    @Test("core.async split: true values go to the first channel, false ones to the second; both close with the source")
    func splitByPredicate() async throws {
        let (evens, odds) = split({ $0 % 2 == 0 }, toChannel([1, 2, 3, 4, 5, 6]), trueBuffer: .fixed(5), falseBuffer: .fixed(5))
        #expect(try await drain(evens) == [2, 4, 6])
        #expect(try await drain(odds) == [1, 3, 5])
    }

    @Test("core.async split: the outputs are unbuffered by default, so an unread side holds the other back")
    func splitUnbufferedByDefault() async throws {
        let (evens, odds) = split({ $0 % 2 == 0 }, toChannel([1, 2]))
        #expect(try await staysQuiet(evens))    // 1 waits for a reader of `odds`
        #expect(try await next(odds) == 1)
        #expect(try await next(evens) == 2)
        #expect(try await next(odds) == nil)
        #expect(try await next(evens) == nil)
    }

    // MARK: reduce, into

    @Test("core.async reduce: init for an empty channel (f not called), else the fold once the channel closes")
    func reduceFolds() async throws {
        let calls = Atomic(0)
        let empty = try await reduce(toChannel([Int]()), 0) { acc, v in calls.add(1, ordering: .relaxed); return acc + v }
        #expect(empty == 0)
        #expect(calls.load(ordering: .relaxed) == 0)
        #expect(try await reduce(toChannel(0..<10), 0, +) == 45)
    }

    @Test("core.async reduce: a `reduced` result ends the reduction without taking more values or waiting for close")
    func reduceStopsOnReduced() async throws {
        let source = Channel<Int>(buffer: .fixed(10))
        for i in 0..<10 { _ = source.offer(i) }                 // never closed
        let result = go {
            try await reduce(source, "", step: { acc, v in v == 2 ? .reduced("foo") : .next(acc + "\(v)") })
        }
        #expect(try await next(result) == "foo")
        #expect(source.count == 7)                              // 0, 1, 2 were taken
    }

    @Test("core.async into: the channel's values appended to the collection, once the channel closes")
    func intoCollects() async throws {
        #expect(try await into(toChannel(0..<10)) == Array(0..<10))
        #expect(try await into(["a"], toChannel(["b", "c"])) == ["a", "b", "c"])
    }

    // MARK: to-chan!, onto-chan!

    @Test("core.async to-chan!: the values in order, then closed; an empty collection gives a closed channel")
    func toChannelValues() async throws {
        #expect(try await drain(toChannel(0..<10)) == Array(0..<10))
        let empty = toChannel([String]())
        #expect(empty.isClosed)
        #expect(try await next(empty) == nil)
    }

    @Test("core.async to-chan!: the buffer is the bounded count (at most 100); longer and endless sequences are fed as they drain")
    func toChannelBoundedCount() async throws {
        let small = toChannel(0..<10)
        #expect(small.buffer == .fixed(10))
        #expect(small.count == 10)
        let long = toChannel(0..<250)
        #expect(long.buffer == .fixed(100))
        #expect(try await drain(long) == Array(0..<250))
        let endless = toChannel(1...)
        #expect(endless.buffer == .fixed(100))
        var first: [Int] = []
        for _ in 0..<150 { first.append(try #require(try await next(endless))) }
        #expect(first == Array(1...150))
    }

    @Test("core.async onto-chan!: puts the values, then closes the channel; the returned channel closes when done")
    func ontoPutsAndCloses() async throws {
        let ch = Channel<Int>(buffer: .fixed(10))
        let done = onto(ch, 0..<10)
        #expect(try await next(done) == nil)
        #expect(ch.isClosed)
        #expect(try await drain(ch) == Array(0..<10))
    }

    @Test("core.async onto-chan!: with close? false the channel stays open")
    func ontoCloseFalse() async throws {
        let ch = Channel<Int>(buffer: .fixed(4))
        #expect(try await next(onto(ch, [1, 2], close: false)) == nil)
        #expect(!ch.isClosed)
        #expect(try await next(ch) == 1)
        #expect(try await next(ch) == 2)
    }

    @Test("core.async onto-chan!: stops at the first put the closed channel refuses (a put already waiting still completes)")
    func ontoStopsWhenClosed() async throws {
        let ch = Channel<Int>()
        let done = onto(ch, 0..<100)
        #expect(try await next(ch) == 0)
        try await waitUntil("onto waits to put 1") { ch.pending.sends == 1 }
        ch.close()
        #expect(try await next(ch) == 1)                        // close! does not cancel a parked put
        #expect(try await next(ch) == nil)
        #expect(try await next(done) == nil)
    }

    // MARK: map

    @Test("core.async map: f of the first values of all the channels, then of the second values, and so on")
    func mapAppliesAcrossChannels() async throws {
        let sums = map({ $0.reduce(0, +) }, (0..<4).map { _ in toChannel(0..<4) })
        #expect(try await drain(sums) == [0, 4, 8, 12])
    }

    @Test("core.async map: closed as soon as any source closes; no sources gives a closed channel")
    func mapClosesWithFirstSource() async throws {
        let pairs = map({ $0[0] * 10 + $0[1] }, [toChannel(1...3), toChannel(1...5)])
        #expect(try await drain(pairs) == [11, 22, 33])
        #expect(try await next(map({ $0.count }, [Channel<Int>]())) == nil)
    }

    @Test("core.async map: a round takes from all sources at once (take! on each), not one after another")
    func mapTakesInParallel() async throws {
        let a = Channel<Int>(), b = Channel<Int>()
        let out = map({ $0[0] * 10 + $0[1] }, [a, b])
        #expect(try await sent(b, 2))                           // taken although `a` has nothing yet
        #expect(try await staysQuiet(out))
        #expect(try await sent(a, 1))
        #expect(try await next(out) == 12)
    }

    // MARK: mult

    @Test("core.async mult: every tap gets every value; taps are closed when the source closes")
    func multCopiesToAllTaps() async throws {
        let a = Channel<Int>(buffer: .fixed(4)), b = Channel<Int>(buffer: .fixed(4))
        let src = Channel<Int>()
        let m = mult(src)
        m.tap(a)
        m.tap(b)
        pipe(toChannel(0..<4), src)
        #expect(try await drain(a) == [0, 1, 2, 3])
        #expect(try await drain(b) == [0, 1, 2, 3])
    }

    @Test("core.async mult (ASYNC-127): a closed tap is untapped; each value waits until every tap took it")
    func multClosedTapAndLockStep() async throws {
        let src = Channel<Int>()
        let m = mult(src)
        let t1 = Channel<Int>(), t2 = Channel<Int>(), t3 = Channel<Int>()
        m.tap(t1)
        m.tap(t2)
        m.tap(t3)
        t3.close()
        onto(src, [1, 2, 3])
        #expect(try await next(t1) == 1)
        #expect(t1.poll() == nil)                               // t2 has not taken 1 yet
        #expect(try await next(t2) == 1)
        #expect(try await next(t1) == 2)                        // now available
        #expect(t1.poll() == nil)
        #expect(m.tapCount == 2)
    }

    @Test("core.async mult: a slow tap holds the others back until it accepts the value")
    func multSlowTapBlocksOthers() async throws {
        let src = Channel<Int>()
        let m = mult(src)
        let slow = m.tap(Channel<Int>())
        let fast = m.tap(Channel<Int>(buffer: .fixed(10)))
        onto(src, [0, 1, 2])
        #expect(try await next(fast) == 0)
        #expect(try await staysQuiet(fast))
        #expect(try await next(slow) == 0)
        #expect(try await next(fast) == 1)
    }

    @Test("core.async mult: values that arrive while there are no taps are dropped")
    func multDropsWithoutTaps() async throws {
        let src = Channel<Int>()
        let m = mult(src)
        #expect(try await sent(src, 1))
        #expect(try await sent(src, 2))                         // the round for 1 is over: dropped
        let t = m.tap(Channel<Int>(buffer: .fixed(4)))
        #expect(try await sent(src, 3))
        src.close()
        let got = try await drain(t)
        #expect(!got.contains(1))
        #expect(got.last == 3)
    }

    @Test("core.async untap, untap-all: an untapped channel gets no more values and is not closed with the source")
    func multUntap() async throws {
        let src = Channel<Int>()
        let m = mult(src)
        let a = m.tap(Channel<Int>(buffer: .fixed(4)))
        let b = m.tap(Channel<Int>(buffer: .fixed(4)))
        let c = m.tap(Channel<Int>(buffer: .fixed(4)))
        #expect(try await sent(src, 1))
        for t in [a, b, c] { #expect(try await next(t) == 1) }
        m.untap(b)
        #expect(try await sent(src, 2))
        #expect(try await next(a) == 2)
        #expect(try await next(c) == 2)
        #expect(b.poll() == nil)
        m.untapAll()
        #expect(m.tapCount == 0)
        #expect(try await sent(src, 3))
        src.close()
        for t in [a, b, c] { #expect(try await staysQuiet(t)) }
    }

    @Test("core.async tap: with close? false the tap stays open when the source closes")
    func multTapCloseFalse() async throws {
        let src = Channel<Int>()
        let m = mult(src)
        let keep = m.tap(Channel<Int>(buffer: .fixed(2)), close: false)
        let shut = m.tap(Channel<Int>(buffer: .fixed(2)))
        src.close()
        #expect(try await next(shut) == nil)
        #expect(try await staysQuiet(keep))
        #expect(!keep.isClosed)
    }

    // MARK: pub, sub

    private enum Item: Sendable, Equatable {
        case int(Int)
        case string(String)
        var topic: String {
            if case .string = self { return "string" }
            return "int"
        }
    }

    @Test("core.async pub/sub: each subscriber gets its topic's values, in order")
    func pubSubTopics() async throws {
        let aInts = Channel<Item>(buffer: .fixed(5)), aStrs = Channel<Item>(buffer: .fixed(5))
        let bInts = Channel<Item>(buffer: .fixed(5)), bStrs = Channel<Item>(buffer: .fixed(5))
        let src = Channel<Item>()
        let p = pub(src, topic: { $0.topic })
        p.sub("string", aStrs)
        p.sub("string", bStrs)
        p.sub("int", aInts)
        p.sub("int", bInts)
        pipe(toChannel([Item.int(1), .string("a"), .int(2), .string("b"), .int(3), .string("c")]), src)
        #expect(try await drain(aInts) == [.int(1), .int(2), .int(3)])
        #expect(try await drain(bInts) == [.int(1), .int(2), .int(3)])
        #expect(try await drain(aStrs) == [.string("a"), .string("b"), .string("c")])
        #expect(try await drain(bStrs) == [.string("a"), .string("b"), .string("c")])
    }

    @Test("core.async pub: values of a topic without subscribers are dropped; unsub stops delivery to that channel")
    func pubDropsAndUnsub() async throws {
        let src = Channel<Int>()
        let p = pub(src, topic: { $0 % 2 == 0 ? "even" : "odd" })
        let evens = p.sub("even", Channel<Int>(buffer: .fixed(10)))
        #expect(try await sent(src, 1))                         // no "odd" subscriber: dropped
        #expect(try await sent(src, 2))
        #expect(try await next(evens) == 2)
        let odds = p.sub("odd", Channel<Int>(buffer: .fixed(10)))
        #expect(try await sent(src, 3))
        #expect(try await next(odds) == 3)                      // 1 never reached it
        p.unsub("even", evens)
        #expect(try await sent(src, 4))
        #expect(try await sent(src, 5))
        #expect(try await next(odds) == 5)
        #expect(try await staysQuiet(evens))
    }

    @Test("core.async unsub-all: removes the subscribers of one topic, or of all, without closing them")
    func pubUnsubAll() async throws {
        let src = Channel<String>()
        let p = pub(src, topic: { String($0.prefix(1)) })
        let x = p.sub("x", Channel<String>(buffer: .fixed(4)))
        let y = p.sub("y", Channel<String>(buffer: .fixed(4)))
        p.unsubAll("x")
        #expect(try await sent(src, "x1"))
        #expect(try await sent(src, "y1"))
        #expect(try await next(y) == "y1")
        p.unsubAll()
        #expect(try await sent(src, "y2"))
        #expect(try await sent(src, "z1"))                      // the pub is done with y2: dropped
        let again = p.sub("y", Channel<String>(buffer: .fixed(4)))
        #expect(try await sent(src, "y3"))
        #expect(try await next(again) == "y3")
        src.close()
        #expect(try await next(again) == nil)
        #expect(try await staysQuiet(x))
        #expect(try await staysQuiet(y))
    }

    @Test("core.async pub: each topic's channel gets buf-fn's buffer, so a stalled topic need not hold up the others")
    func pubTopicBuffers() async throws {
        for buffered in [true, false] {
            let src = Channel<String>(buffer: .fixed(10))
            let p = pub(src, topic: { String($0.prefix(1)) },
                        buffer: { topic in buffered && topic == "a" ? .fixed(2) : .unbuffered })
            let slow = p.sub("a", Channel<String>())            // not read for now
            let fast = p.sub("b", Channel<String>(buffer: .fixed(4)))
            for v in ["a1", "a2", "b1"] { #expect(src.offer(v)) }
            if buffered {
                #expect(try await next(fast) == "b1")           // a2 waits in topic a's buffer
            } else {
                #expect(try await staysQuiet(fast))             // a2 waits for topic a's mult
            }
            #expect(try await next(slow) == "a1")
            #expect(try await next(slow) == "a2")
            if !buffered { #expect(try await next(fast) == "b1") }
        }
    }

    @Test("core.async sub: subscribers are closed with the source unless close? false")
    func pubClosesSubscribers() async throws {
        let src = Channel<Int>()
        let p = pub(src, topic: { $0 })
        let shut = p.sub(1, Channel<Int>(buffer: .fixed(1)))
        let keep = p.sub(1, Channel<Int>(buffer: .fixed(1)), close: false)
        src.close()
        #expect(try await next(shut) == nil)
        #expect(try await staysQuiet(keep))
    }

    // MARK: mix

    @Test("core.async mix: the values of all admitted inputs reach the output; the output is never closed by the mix")
    func mixAdmits() async throws {
        let out = Channel<Int>()
        let mx = mix(out)
        mx.admit(toChannel([1, 2, 3]))
        mx.admit(toChannel([4, 5, 6]))
        var got = Set<Int>()
        for _ in 0..<6 { got.insert(try #require(try await next(out))) }
        #expect(got == Set(1...6))
        #expect(try await staysQuiet(out))
    }

    @Test("core.async mix (ASYNC-145): 2048 inputs, each with one pending put!, all reach the output")
    func mixManyInputs() async throws {
        let out = Channel<Int>(buffer: .fixed(2500))
        let mx = mix(out)
        for i in 0..<2048 {
            let c = Channel<Int>()
            mx.admit(c)
            try c.put(i)
        }
        var got = Set<Int>()
        for _ in 0..<2048 { got.insert(try #require(try await next(out))) }
        #expect(got == Set(0..<2048))
    }

    @Test("core.async mix :mute: a muted input is consumed but its values are dropped")
    func mixMute() async throws {
        let out = Channel<Int>(buffer: .fixed(4))
        let mx = mix(out)
        let a = Channel<Int>()
        mx.toggle([a: MixState(mute: true)])                    // toggle admits it, muted
        #expect(mx.state(of: a) == MixState(solo: false, mute: true, pause: false))
        #expect(try await sent(a, 1))                           // consumed
        #expect(try await staysQuiet(out))                      // but dropped
        mx.toggle([a: MixState(mute: false)])
        #expect(try await sent(a, 2))
        #expect(try await next(out) == 2)
    }

    @Test("core.async mix :pause: a paused input is not consumed")
    func mixPause() async throws {
        let out = Channel<Int>(buffer: .fixed(4))
        let mx = mix(out)
        let a = Channel<Int>(), b = Channel<Int>()
        mx.toggle([a: MixState(pause: true)])
        #expect(try await !sent(a, 1, within: brief))
        mx.toggle([a: MixState(pause: false)])
        #expect(try await sent(a, 2))
        #expect(try await next(out) == 2)

        // Pausing an input the mix is waiting on takes effect at once.
        mx.admit(b)
        try await waitUntil("the mix waits on b") { b.pending.receives == 1 }
        mx.toggle([b: MixState(pause: true)])
        #expect(try await !sent(b, 3, within: brief))
    }

    @Test("core.async mix :solo (solo-mode :mute): only soloed inputs reach the output, others are consumed and dropped; a soloed input's mute is ignored; toggle merges flags")
    func mixSoloMute() async throws {
        let out = Channel<Int>(buffer: .fixed(4))
        let mx = mix(out)
        let a = Channel<Int>(), b = Channel<Int>()
        mx.toggle([a: MixState(), b: MixState(solo: true, mute: true)])
        #expect(try await sent(a, 1))                           // consumed: non-solo inputs are muted
        #expect(try await sent(b, 2))
        #expect(try await next(out) == 2)                       // the first value out: 1 was dropped
        mx.toggle([b: MixState(solo: false)])                   // b keeps its mute flag
        #expect(try await sent(b, 3))
        #expect(try await sent(a, 4))
        #expect(try await next(out) == 4)
    }

    @Test("core.async mix solo-mode :pause: while an input is soloed, the others are not consumed")
    func mixSoloPause() async throws {
        let out = Channel<Int>(buffer: .fixed(4))
        let mx = mix(out)
        mx.soloMode = .pause
        #expect(mx.soloMode == .pause)
        let a = Channel<Int>(), b = Channel<Int>()
        mx.toggle([a: MixState(), b: MixState(solo: true)])
        #expect(try await !sent(a, 1, within: brief))
        #expect(try await sent(b, 2))
        #expect(try await next(out) == 2)
        mx.toggle([b: MixState(solo: false)])
        #expect(try await sent(a, 3))
        #expect(try await next(out) == 3)
    }

    @Test("core.async unmix, unmix-all: removed inputs are no longer read; a closed input leaves the mix")
    func mixUnmix() async throws {
        let out = Channel<Int>(buffer: .fixed(4))
        let mx = mix(out)
        let a = Channel<Int>(), b = Channel<Int>(), c = Channel<Int>()
        mx.admit(a)
        mx.admit(b)
        #expect(try await sent(a, 1))
        #expect(try await next(out) == 1)
        try await waitUntil("the mix waits on a") { a.pending.receives == 1 }
        mx.unmix(a)
        #expect(mx.state(of: a) == nil)
        #expect(try await !sent(a, 2, within: brief))
        #expect(try await sent(b, 3))
        #expect(try await next(out) == 3)
        try await waitUntil("the mix waits on b") { b.pending.receives == 1 }
        mx.unmixAll()
        #expect(try await !sent(b, 4, within: brief))

        mx.admit(c)
        c.close()
        try await waitUntil("the closed input leaves") { mx.state(of: c) == nil }
    }

    @Test("core.async mix: the mix stops when the output is closed")
    func mixStopsWhenOutputCloses() async throws {
        let out = Channel<Int>()
        out.close()
        let mx = mix(out)
        let a = Channel<Int>()
        mx.admit(a)
        #expect(try await sent(a, 1))                           // taken; the output refuses it
        #expect(try await !sent(a, 2, within: brief))           // and nothing more is read
    }

    // MARK: pipeline

    @Test("core.async pipeline (test-sizes): outputs in input order for parallelism 1 to 20 and 0 to 1000 values, in all three kinds")
    func pipelineSizes() async throws {
        for (n, size) in [(1, 0), (1, 10), (10, 10), (20, 10), (5, 1000)] {
            let expected = Array(0..<size)
            let o1 = Channel<Int>(buffer: .fixed(1))
            pipeline(n, to: o1, from: toChannel(expected), transform: .map { $0 })
            #expect(try await drain(o1) == expected, "pipeline n=\(n) size=\(size)")
            let o2 = Channel<Int>(buffer: .fixed(1))
            pipelineBlocking(n, to: o2, from: toChannel(expected), transform: .map { $0 })
            #expect(try await drain(o2) == expected, "pipeline-blocking n=\(n) size=\(size)")
            let o3 = Channel<Int>(buffer: .fixed(1))
            pipelineAsync(n, to: o3, from: toChannel(expected)) { v, results in
                _ = try? await results.send(v)
                results.close()
            }
            #expect(try await drain(o3) == expected, "pipeline-async n=\(n) size=\(size)")
        }
    }

    @Test("core.async pipeline (test-compute): with parallelism > 1 and uneven work, outputs stay in input order")
    func pipelineComputeOrder() async throws {
        // Uneven work per value: the workers finish in an order different from the input's.
        // fib(10) to fib(24): over a hundredfold apart, and light enough for the sanitizer.
        let inputs = (0..<60).map { ($0 * 7919) % 15 + 10 }
        @Sendable func fib(_ n: Int) -> Int { n < 2 ? n : fib(n - 1) + fib(n - 2) }
        let out = Channel<Int>(buffer: .fixed(1))
        pipeline(8, to: out, from: toChannel(inputs), transform: .map { fib($0) })
        #expect(try await drain(out) == inputs.map { fib($0) })
    }

    @Test("core.async pipeline-blocking (test-blocking): n values in flight at once; finishing in reverse order still outputs in input order")
    func pipelineBlockingOrder() async throws {
        let n = 4
        let started = Channel<Int>(buffer: .fixed(n))
        let finished = Channel<Int>(buffer: .fixed(n))
        let gates = (0..<n).map { _ in Channel<Void>() }
        let out = Channel<Int>(buffer: .fixed(n))
        pipelineBlocking(n, to: out, from: toChannel(0..<n), transform: .map { (i: Int) -> Int in
            _ = try started.sendBlocking(i)
            _ = try gates[i].receiveBlocking()
            _ = try finished.sendBlocking(i)
            return i * 10
        })
        var running = Set<Int>()
        for _ in 0..<n { running.insert(try #require(try await next(started))) }
        #expect(running == Set(0..<n))                          // all n run at once
        for i in (0..<n).reversed() {
            gates[i].close()
            #expect(try await next(finished) == i)              // they finish last to first
        }
        #expect(try await drain(out) == [0, 10, 20, 30])
    }

    @Test("core.async pipeline-async: n calls in flight; outputs in input order whatever order the calls finish in")
    func pipelineAsyncOrder() async throws {
        let n = 4
        let started = Channel<Int>(buffer: .fixed(n))
        let gates = (0..<n).map { _ in Channel<Void>() }
        let out = Channel<Int>(buffer: .fixed(n))
        pipelineAsync(n, to: out, from: toChannel(0..<n)) { i, results in
            _ = try? await started.send(i)
            _ = try? await gates[i].receive()
            _ = try? await results.send(i)
            results.close()
        }
        var running = Set<Int>()
        for _ in 0..<n { running.insert(try #require(try await next(started))) }
        #expect(running == Set(0..<n))
        for i in (1..<n).reversed() { gates[i].close() }
        #expect(try await staysQuiet(out))                      // 1, 2, 3 are done, but 0 comes first
        gates[0].close()
        #expect(try await drain(out) == [0, 1, 2, 3])
    }

    @Test("core.async pipeline-async (test-af-multiplier): af may put several results, or none, before closing")
    func pipelineAsyncMultiplier() async throws {
        let out = Channel<Int>(buffer: .fixed(1))
        pipelineAsync(2, to: out, from: toChannel(0...4)) { v, results in
            go {
                for i in 0..<v { try await results.send(i) }
                results.close()
            }
        }
        #expect(try await drain(out) == [0, 0, 1, 0, 1, 2, 0, 1, 2, 3])
    }

    @Test("core.async pipeline: the transducer is applied to each value on its own and may give several outputs")
    func pipelineExpandingTransducer() async throws {
        let out = Channel<[Int]>(buffer: .fixed(1))
        let twice = Transducer<Int, Int>.flatMap { [$0, $0] }.then(.partition(3))
        pipeline(3, to: out, from: toChannel(1...3), transform: twice)
        // partition's groups do not cross values: each value's [v, v] is flushed on its own.
        #expect(try await drain(out) == [[1, 1], [2, 2], [3, 3]])
    }

    @Test("core.async pipeline (test-close?): with close? false `to` stays open after the last output")
    func pipelineCloseFalse() async throws {
        for blocking in [false, true] {
            let closing = Channel<Int>(buffer: .fixed(1))
            let staying = Channel<Int>(buffer: .fixed(1))
            if blocking {
                pipelineBlocking(5, to: closing, from: toChannel([1]), transform: .map { $0 })
                pipelineBlocking(5, to: staying, from: toChannel([1]), transform: .map { $0 }, close: false)
            } else {
                pipeline(5, to: closing, from: toChannel([1]), transform: .map { $0 })
                pipeline(5, to: staying, from: toChannel([1]), transform: .map { $0 }, close: false)
            }
            #expect(try await next(closing) == 1)
            #expect(try await next(closing) == nil)
            #expect(try await next(staying) == 1)
            #expect(try await staysQuiet(staying))
            #expect(try await staying.send(99))
            #expect(try await next(staying) == 99)
        }
    }

    @Test("core.async pipeline (test-ex-handler): ex-handler gets the error and its result takes the failed value's place")
    func pipelineErrorHandler() async throws {
        for blocking in [false, true] {
            let out = Channel<Int>(buffer: .fixed(1))
            let errors = Channel<Boom>(buffer: .fixed(1))
            let failAt3 = Transducer<Int, Int>.map { v in
                if v == 3 { throw Boom(value: v) }
                return v
            }
            let handler: @Sendable (any Error) -> Int? = { error in
                _ = errors.offer(error as! Boom)
                return -1
            }
            if blocking {
                pipelineBlocking(5, to: out, from: toChannel(1...4), transform: failAt3, onError: handler)
            } else {
                pipeline(5, to: out, from: toChannel(1...4), transform: failAt3, onError: handler)
            }
            #expect(try await drain(out) == [1, 2, -1, 4])
            #expect(try await next(errors) == Boom(value: 3))
        }
    }

    @Test("core.async pipeline: without ex-handler, a failing value gives no output and the error is reported (default ex-handler)")
    func pipelineDefaultErrorHandler() async throws {
        let reported = Channel<Boom>(buffer: .fixed(4))
        try await withChannelErrorHandler({ error in
            if let boom = error as? Boom { _ = reported.offer(boom) }
        }) { () async throws in
            let out = Channel<Int>(buffer: .fixed(1))
            pipeline(2, to: out, from: toChannel([1, 2, 3]), transform: .map { v in
                if v == 2 { throw Boom(value: 2) }
                return v
            })
            #expect(try await drain(out) == [1, 3])
            #expect(try await next(reported) == Boom(value: 2))
        }
    }
}
