@testable import Parley
import ParleyTestSupport
import Testing

/// The chunked message queue under a mailbox (`MessageQueue`) and the owner's queue built on
/// it (`SavedQueue`). The rules are Erlang's for a mailbox: messages from one sender are
/// taken in the order sent, a selective receive takes the first match in arrival order and
/// leaves the rest in order, and a receive marker skips what was queued before it
/// (Erlang Reference Manual, "Receive"; the BEAM's receive-marker optimisation).
@Suite("Message queue (chunks, and the owner's queue over them)")
struct MessageQueueTests {
    func ints(_ q: MessageQueue) -> [Int] { q.map { $0 as! Int } }
    func ints(_ s: SavedQueue) -> [Int] { (0..<s.count).map { s[$0] as! Int } }
    /// The oldest message as an integer, looked at in place; nil if the queue is empty.
    func first(_ q: MessageQueue) -> Int? { q.withFirst { $0 as? Int } ?? nil }

    @Test("first in, first out across chunk boundaries, with appends and removals interleaved")
    func fifoAcrossChunks() {
        var q = MessageQueue()
        var expected: [Int] = []
        var next = 0
        // Grows past several chunk sizes (2, 4, ..., 256, 256, ...) while draining.
        for round in 0..<40 {
            for _ in 0..<(round * 37 % 700) { q.append(next); expected.append(next); next += 1 }
            for _ in 0..<(round * 23 % 500) where !expected.isEmpty {
                let got = q.removeFirst() as! Int
                #expect(got == expected.removeFirst())
            }
            #expect(q.count == expected.count)
            #expect(first(q) == expected.first)
        }
        #expect(ints(q) == expected)
        #expect(q.prefix(3).map { $0 as! Int } == Array(expected.prefix(3)))
        while !q.isEmpty {
            let got = q.removeFirst() as! Int
            #expect(got == expected.removeFirst())
        }
        #expect(first(q) == nil && q.isEmpty && expected.isEmpty)
    }

    @Test("moving a queue into another keeps both orders, leaves the source empty, and works for every mix of empty and partly filled chunks")
    func appendQueue() {
        for (a, b) in [(0, 0), (0, 3), (3, 0), (1, 1), (5, 300), (300, 5), (257, 513)] {
            var x = MessageQueue(), y = MessageQueue()
            for i in 0..<a { x.append(i) }
            for i in 0..<b { y.append(1000 + i) }
            if a > 1 { _ = x.removeFirst() }   // a head chunk with a gap before `start`
            x.append(contentsOf: &y)
            let want = Array((a > 1 ? 1 : 0)..<a) + (0..<b).map { 1000 + $0 }
            #expect(ints(x) == want)
            #expect(x.count == want.count)
            #expect(y.isEmpty && first(y) == nil)
            // Both still take appends in order.
            x.append(-1); y.append(-2)
            #expect(ints(x).last == -1 && ints(y) == [-2])
        }
    }

    @Test("a long chain of chunks is released without recursing once per chunk")
    func longChainReleases() {
        // 200,000 one-message chunks: releasing them chunk by chunk through each deinit
        // would need 200,000 nested frames, past a test thread's stack.
        var q = MessageQueue()
        for i in 0..<200_000 {
            var one = MessageQueue()
            one.append(i)
            q.append(contentsOf: &one)
        }
        #expect(q.count == 200_000)
        q.removeAll()
        #expect(q.isEmpty)
    }

    @Test("a message's storage is released when it is removed, dropped or the queue goes")
    func releasesMessages() {
        final class Token: Sendable {}
        weak var a: Token?, b: Token?, c: Token?
        var q = MessageQueue()
        do {
            let ta = Token(), tb = Token(), tc = Token()
            a = ta; b = tb; c = tc
            q.append(ta); q.append(tb); q.append(tc)
        }
        _ = q.removeFirst()
        #expect(a == nil && b != nil)
        var gone = MessageQueue()
        swap(&gone, &q)   // how a dying mailbox hands its messages out
        gone = MessageQueue()
        #expect(b == nil && c == nil)
    }

    @Test("the owner's queue: selective take across what it looked at and what it has not, receive markers beyond the looked-at part, and drops of the oldest")
    func savedQueueOverChunks() {
        var incoming = MessageQueue()
        for i in 1...6 { incoming.append(i) }
        var saved = SavedQueue()
        saved.append(&incoming)
        #expect(incoming.isEmpty && saved.count == 6)

        // Takes 4: 1, 2, 3 move to the looked-at part, in order.
        var cursor = 0
        let t1 = saved.take(from: &cursor) { ($0 as! Int) == 4 }
        #expect(t1 == .taken)
        #expect(cursor == 3)
        #expect(ints(saved) == [1, 2, 3, 5, 6])

        // More arrive behind the unread ones.
        for i in 7...8 { incoming.append(i) }
        saved.append(&incoming)
        #expect(ints(saved) == [1, 2, 3, 5, 6, 7, 8])

        // A marker at 5 (as a call started when five were queued): 1...6 cannot match.
        var marker = 5
        let t2 = saved.take(from: &marker) { ($0 as! Int) < 7 }
        #expect(t2 == .notFound)
        #expect(marker == saved.count)
        var m2 = 5
        let t3 = saved.take(from: &m2) { ($0 as! Int) == 8 }
        #expect(t3 == .taken)
        #expect(ints(saved) == [1, 2, 3, 5, 6, 7])

        // A refused claim takes nothing, wherever the match is.
        var c0 = 0
        let t4 = saved.take(from: &c0, claim: { false }) { ($0 as! Int) == 7 }
        #expect(t4 == .refused)
        #expect(saved.count == 6)

        // Drops of the oldest span both parts.
        for i in 9...10 { incoming.append(i) }
        saved.append(&incoming)
        let d1 = saved.dropOldest(7)
        #expect(d1 == 7)
        #expect(ints(saved) == [10])
        let d2 = saved.dropOldest(5)
        #expect(d2 == 1 && saved.isEmpty)

        // The callback run loop's order.
        for i in 11...13 { incoming.append(i) }
        saved.append(&incoming)
        var c1 = 0
        _ = saved.take(from: &c1) { ($0 as! Int) == 12 }
        let f1 = saved.removeFirst() as! Int, f2 = saved.removeFirst() as! Int
        #expect(f1 == 11 && f2 == 13)
        #expect(saved.isEmpty)
    }

    @Test("a mailbox millions deep still takes its arrivals in order (fan-in's shape), and the owner takes them all in one step")
    func deepMailbox() async throws {
        // Seconds of CPU under the thread sanitizer: on a thread of its own, not one of the
        // cooperative pool's two that every other test shares.
        let n = scaled(1_000_000)
        let (incoming, refilled, moved, taken, inOrder) = try await offThread { () -> (Int, Bool, Bool, Int, Bool) in
            var m = MailboxState<Int>(status: .running)
            for i in 0..<n { _ = m.deliver(i) }
            let incoming = m.incoming.count
            var saved = SavedQueue()
            let refilled = m.refill(&saved)
            let moved = m.incoming.isEmpty && saved.count == n
            var cursor = 0, next = 0, inOrder = true, got = -1
            while saved.take(from: &cursor, { got = $0 as! Int; return true }) == .taken {
                if got != next { inOrder = false }
                next += 1
            }
            return (incoming, refilled, moved, next, inOrder)
        }
        #expect(incoming == n)
        #expect(refilled && moved)
        #expect(inOrder && taken == n)
    }
}
