import Foundation
@testable import Parley
import Synchronization
import Testing

/// Parallel sends (``Process/enableParallelSend()``, ``ArrivalShards``): messages from other
/// processes wait in a queue picked by the sender, as the BEAM's parallel signal sending
/// optimization (Erlang/OTP 25, processes with `{message_queue_data, off_heap}`) splits the
/// outer signal queue. What must hold is Erlang's ordering guarantee (Erlang reference
/// manual, "Processes", signal delivery): "if an entity sends multiple signals to the same
/// destination entity, the order is preserved", and a sender's exit (its DOWN) comes after
/// the messages it sent. Processes that do not ask keep one queue, and with it causal order.
@Suite("Parallel sends (many senders into one mailbox)")
struct ArrivalShardsTests {
    typealias Box = MailboxState<Int>

    @Test("the first message into an empty queue is the one that must wake the owner; a drain takes every queue, each in the order sent")
    func appendAndDrain() {
        let shards = ArrivalShards()
        #expect(!shards.mayHoldMessages)
        #expect(shards.append(1, from: 3), "first into queue 3")
        #expect(!shards.append(2, from: 3), "queue 3 already held a message")
        #expect(shards.append(10, from: 4), "first into queue 4")
        #expect(!shards.append(3, from: 3 + UInt32(ArrivalShards.count)), "same queue as sender 3")
        #expect(shards.mayHoldMessages)
        var all: [Int] = []
        shards.drain { q in
            while !q.isEmpty { all.append(q.removeFirst() as! Int) }
        }
        #expect(all == [1, 2, 3, 10], "queue by queue, each in the order sent")
        #expect(!shards.mayHoldMessages)
        #expect(shards.append(4, from: 3), "an emptied queue wakes again")
    }

    @Test("a message that waited in a sender's queue wakes a parked owner (once), schedules an idle one, and nothing is woken for a dead mailbox")
    func arrivedElsewhereWakes() {
        var m = Box(status: .running)
        let parked = m.park(7, generation: 0)
        #expect(parked)
        if case .resume(let w) = m.arrivedElsewhere() { #expect(w == 7) } else { Issue.record("parked owner not woken") }
        if case .none = m.arrivedElsewhere() {} else { Issue.record("woken twice") }
        var q = MessageQueue()
        q.append("x")
        m.absorb(&q)
        #expect(q.isEmpty && m.incoming.count == 1)
        let parkedAgain = m.park(8, generation: 0)
        #expect(!parkedAgain, "absorbed messages keep it from parking")

        var c = Box(status: .scheduled)
        var saved = SavedQueue()
        _ = c.refill(&saved)
        let step = c.refillOrIdle(&saved)
        #expect(step == .idle)
        if case .schedule = c.arrivedElsewhere() {} else { Issue.record("idle owner not scheduled") }

        var d = Box(status: .running)
        _ = d.die()
        if case .none = d.arrivedElsewhere() {} else { Issue.record("a dead mailbox woke someone") }
    }

    @Test("with parallel sends, every message arrives, in the order each sender sent it, and each sender's DOWN after its last message (Erlang's signal ordering)")
    func perSenderOrderAndDownLast() async throws {
        let senders = 6, each = scaled(20_000)
        let result = try await Parley.Process.run { me -> (Bool, Bool, Int, Bool) in
            let enabled = me.enableParallelSend()
            let parent = me.pid
            var refs: [Reference: Int] = [:]
            var pids: [Pid] = []
            for s in 0..<senders {
                let (pid, ref) = me.spawnMonitor { p in
                    _ = try await p.receive(String.self)   // "go"
                    for v in 0..<each {
                        p.send((s, v), to: parent)
                        if v % 1000 == 0 { await p.yield() }
                    }
                }
                refs[ref] = s
                pids.append(pid)
            }
            // Start them only now, so that they send at once.
            for pid in pids { me.send("go", to: pid) }
            var next = [Int](repeating: 0, count: senders)
            var ordered = true, downAfterLast = true, downs = 0
            while downs < senders {
                let m = try await me.receive()
                if let (s, v) = m as? (Int, Int) {
                    if v != next[s] { ordered = false }
                    next[s] = v + 1
                } else if let d = m as? DownMessage, let s = refs[d.ref] {
                    if next[s] != each { downAfterLast = false }
                    downs += 1
                }
            }
            return (ordered, downAfterLast, next.reduce(0, +), enabled)
        }
        #expect(result.3, "an unbounded mailbox takes parallel sends")
        #expect(result.0, "each sender's messages in the order sent")
        #expect(result.1, "each sender's DOWN after its last message")
        #expect(result.2 == senders * each, "nothing lost")
    }

    @Test("a process that did not ask keeps causal order between senders under contention: B sends to R, then tells A, which sends to R; R gets B's message first (as the BEAM by default)")
    func causalOrderByDefault() async throws {
        let rounds = scaled(20_000)
        let inOrder = try await Parley.Process.run { me -> Bool in
            let parent = me.pid
            let r = me.spawn { p in
                var ok = true
                var lastB = -1
                for _ in 0..<(4 * rounds) {
                    let m = try await p.receive()
                    if let (who, i) = m as? (String, Int) {
                        if who == "b" { lastB = i } else if who == "a", lastB < i { ok = false }
                    }
                }
                p.send(ok, to: parent)
            }
            let a = me.spawn { p in
                for _ in 0..<rounds {
                    let i = try await p.receive(Int.self)
                    p.send(("a", i), to: r)
                    p.send(("a-noise", i), to: r)
                }
            }
            me.spawn { p in
                for i in 0..<rounds {
                    p.send(("b", i), to: r)
                    p.send(i, to: a)
                    p.send(("b-noise", i), to: r)
                    if i % 256 == 0 { await p.yield() }
                }
            }
            return try await me.receive(Bool.self, after: .seconds(60)) ?? false
        }
        #expect(inOrder, "A's message i came after B's message i")
    }

    @Test("a bounded mailbox and an exited process refuse parallel sends; asking twice is harmless; SpawnOptions.parallelSend gives them to a callback process, which gets every message")
    func whoMayEnable() async throws {
        let got = try await Parley.Process.run { me -> (Bool, Bool, Bool, Int) in
            let parent = me.pid
            var options = SpawnOptions()
            options.mailbox = MailboxLimit(capacity: 10)
            let bounded = try me.spawn(options) { p in p.send(p.enableParallelSend(), to: parent) }
            let refused = try await me.receive(Bool.self, after: .seconds(10)) ?? true
            _ = bounded
            let twice = me.enableParallelSend() && me.enableParallelSend()
            let (dead, ref) = me.spawnMonitor { _ in }
            _ = try await me.down(ref)
            let deadRefused = dead.process!.useArrivalShards()
            // A callback process, with senders' queues, counting what many senders send.
            let total = 4 * scaled(5_000)
            var parallel = SpawnOptions()
            parallel.parallelSend = true
            let counter = try me.spawn(parallel, state: 0) { n, _, p in
                n += 1
                if n == total { p.send(n, to: parent) }
                return .continue
            }
            #expect(counter.process!.arrivalShards != nil, "SpawnOptions.parallelSend")
            parallel.mailbox = MailboxLimit(capacity: 10)
            let boundedToo = try me.spawn(parallel) { _ in }
            #expect(boundedToo.process!.arrivalShards == nil, "ignored with a bound")
            for _ in 0..<4 {
                me.spawn { p in for i in 0..<(total / 4) { p.send(i, to: counter) } }
            }
            let n = try await me.receive(Int.self, after: .seconds(60)) ?? -1
            me.exit(counter, .kill)
            return (refused, twice, deadRefused, n)
        }
        #expect(!got.0, "a bounded mailbox refuses")
        #expect(got.1, "asking twice")
        #expect(!got.2, "an exited process refuses")
        #expect(got.3 == 4 * scaled(5_000), "the callback process got every message")
    }

    @Test("a process that dies with messages in senders' queues drops them, and later sends to it are dropped")
    func deadProcessDropsQueued() async throws {
        final class Tracked: Sendable {
            static let live = Atomic<Int>(0)
            init() { Self.live.add(1, ordering: .relaxed) }
            deinit { Self.live.subtract(1, ordering: .relaxed) }
        }
        let before = Tracked.live.load(ordering: .relaxed)
        try await Parley.Process.run { me in
            let victim = me.spawn { p in
                p.enableParallelSend()
                _ = try await p.receive(String.self)
            }
            let ref = me.monitor(victim)
            me.spawn { p in
                for _ in 0..<1000 { p.send(Tracked(), to: victim) }
                p.send("stop", to: victim)
                for _ in 0..<1000 { p.send(Tracked(), to: victim) }
            }
            _ = try await me.down(ref)
            for _ in 0..<100 { me.send(Tracked(), to: victim) }
        }
        _ = await eventually { Tracked.live.load(ordering: .relaxed) == before }
        #expect(Tracked.live.load(ordering: .relaxed) == before, "every message to the dead process released")
    }
}
