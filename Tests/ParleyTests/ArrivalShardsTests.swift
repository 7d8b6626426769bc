import Foundation
import Synchronization
@testable import Parley
import Testing

/// Senders' queues (``ArrivalShards``): once senders contend for a mailbox's lock, messages
/// from other processes wait in a queue picked by the sender, as the BEAM's parallel signal
/// sending optimization (Erlang/OTP 25) splits a receiver's outer signal queue. What must not
/// change is Erlang's ordering guarantee (Erlang reference manual, "Processes", signal
/// delivery): "if an entity sends multiple signals to the same destination entity, the order
/// is preserved", and a sender's exit (its DOWN) comes after the messages it sent.
@Suite("Senders' queues (many senders into one mailbox)")
struct ArrivalShardsTests {
    typealias Box = MailboxState<Int>

    @Test("the first message into an empty queue is the one that must wake the owner; a drain takes every queue's messages in the order they were queued")
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
        #expect(all == [1, 2, 10, 3], "in the order they were queued, across queues")
        #expect(!shards.mayHoldMessages)
        #expect(shards.append(4, from: 3), "an emptied queue wakes again")
    }

    @Test("a drain merges the queues by arrival, in long runs and one by one, and leaves nothing behind")
    func mergeOrder() {
        let shards = ArrivalShards()
        var expected: [Int] = []
        var rng = SystemRandomNumberGenerator()
        for i in 0..<5_000 {
            // Runs of one sender, then single messages from random senders.
            let origin = i < 2_000 ? UInt32(i / 500) : UInt32.random(in: 0..<20, using: &rng)
            _ = shards.append(i, from: origin)
            expected.append(i)
            if i == 3_000 {
                var got: [Int] = []
                shards.drain { q in while !q.isEmpty { got.append(q.removeFirst() as! Int) } }
                #expect(got == Array(0...3_000))
                expected.removeAll()
            }
        }
        var got: [Int] = []
        while shards.drain({ q in while !q.isEmpty { got.append(q.removeFirst() as! Int) } }) {}
        #expect(got == expected)
        #expect(!shards.mayHoldMessages)
    }

    @Test("causal order across senders: B sends to R, then tells A, which sends to R; R gets B's message first, with senders contending (the BEAM's behaviour without its optimization)")
    func causalOrderAcrossSenders() async throws {
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
            #expect(r.process!.useArrivalShards())
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

    @Test("senders go to their own queues only after contending several times between two refills; a refill starts the count again")
    func contentionThreshold() {
        var m = Box(status: .running)
        let n = Int(Box.contentionThreshold)
        for _ in 1..<n { let t = m.noteContention(); #expect(!t) }
        var saved = SavedQueue()
        _ = m.refill(&saved)
        for _ in 1..<n { let t = m.noteContention(); #expect(!t) }
        let t = m.noteContention()
        #expect(t, "the threshold-th contended delivery since the refill")
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

    @Test("with senders' queues, every message arrives, in the order each sender sent it, and each sender's DOWN after its last message (Erlang's signal ordering)")
    func perSenderOrderAndDownLast() async throws {
        let senders = 6, each = scaled(20_000)
        let result = try await Parley.Process.run { me -> (Bool, Bool, Int, Bool) in
            #expect(me.pid.process!.useArrivalShards())
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
            let shardsUsed = me.pid.process!.arrivalShards != nil
            return (ordered, downAfterLast, next.reduce(0, +), shardsUsed)
        }
        #expect(result.0, "each sender's messages in the order sent")
        #expect(result.1, "each sender's DOWN after its last message")
        #expect(result.2 == senders * each, "nothing lost")
        #expect(result.3)
    }

    @Test("senders that keep contending for one mailbox's lock get queues of their own; a bounded mailbox never does")
    func contentionTurnsThemOn() async throws {
        let threads = 4, each = scaled(50_000)
        for bounded in [false, true] {
            let got = try await Parley.Process.run { me -> (Bool, Int) in
                var options = SpawnOptions()
                if bounded { options.mailbox = MailboxLimit(capacity: 10_000_000) }
                let parent = me.pid
                let sink = try me.spawn(options) { p in
                    var n = 0
                    while n < threads * each {
                        _ = try await p.receive(Int.self)
                        n += 1
                    }
                    p.send(n, to: parent)
                }
                let core = sink.process!
                // Several OS threads at once, each as a process of its own (`origin`).
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    for i in 0..<each { core.deliver(i, origin: UInt32(1000 + t)) }
                }
                let n = try await me.receive(Int.self, after: .seconds(60))
                return (core.arrivalShards != nil, n ?? -1)
            }
            #expect(got.1 == threads * each, "every message arrived (bounded: \(bounded))")
            #expect(got.0 == !bounded, "queues of their own: \(got.0) (bounded: \(bounded))")
        }
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
            let victim = me.spawn { p in _ = try await p.receive(String.self) }
            #expect(victim.process!.useArrivalShards())
            let ref = me.monitor(victim)
            let sender = me.spawn { p in
                for _ in 0..<1000 { p.send(Tracked(), to: victim) }
                p.send("stop", to: victim)
                for _ in 0..<1000 { p.send(Tracked(), to: victim) }
            }
            _ = sender
            _ = try await me.down(ref)
            // Sends that race the exit are dropped by the sender that finds it dead.
            for _ in 0..<100 { me.send(Tracked(), to: victim) }
        }
        _ = await eventually { Tracked.live.load(ordering: .relaxed) == before }
        #expect(Tracked.live.load(ordering: .relaxed) == before, "every message to the dead process released")
    }
}
