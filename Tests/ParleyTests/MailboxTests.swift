@testable import Parley
import Testing

/// The mailbox state machine driven without threads: a waiter is a plain number, and every
/// transition's returned action is checked, as `Chan`'s are.
@Suite("Mailbox state machine (invariants of MailboxState)")
struct MailboxTests {
    typealias Box = MailboxState<Int>

    func isResume(_ w: Box.Wake, _ waiter: Int) -> Bool {
        if case .resume(let x) = w { return x == waiter }
        return false
    }
    func isNone(_ w: Box.Wake) -> Bool { if case .none = w { return true } else { return false } }
    func isSchedule(_ w: Box.Wake) -> Bool { if case .schedule = w { return true } else { return false } }

    @Test("a parked receiver is woken by exactly the delivery that finds it; a delivery before it parks keeps it from parking (invariant 2)")
    func noLostWakeUp() {
        var m = Box(status: .running)
        let r1 = m.park(1, generation: 0)
        #expect(r1)
        #expect(m.status == .waiting && m.waiter == 1)
        let r2 = m.deliver("a")
        #expect(isResume(r2, 1))
        #expect(m.status == .running && m.waiter == nil)
        let r3 = m.deliver("b")
        #expect(isNone(r3), "a running receiver is not woken again")
        let r4 = m.park(2, generation: 0)
        #expect(!r4, "messages arrived: it must not park")
        var saved = SavedQueue()
        let r5 = m.refill(&saved)
        #expect(r5)
        #expect(saved.count == 2)
        let r6 = m.park(3, generation: 0)
        #expect(r6)
    }

    @Test("a receive's timer wakes only its own wait; a timer that fired before the park keeps it from parking")
    func timeoutGenerations() {
        var m = Box(status: .running)
        let g0 = m.nextGeneration()   // an earlier receive's timer, not cancelled in time
        let g1 = m.nextGeneration()
        let r7 = m.park(1, generation: g1)
        #expect(r7)
        let r8 = m.timeout(g0)
        #expect(isNone(r8), "an earlier receive's timer")
        let r9 = m.timeout(g1)
        #expect(isResume(r9, 1))
        #expect(m.timedOut(g1))
        let r10 = m.park(2, generation: g1)
        #expect(!r10, "its timer already fired")
        let g3 = m.nextGeneration()
        _ = m.timeout(g3)
        let r11 = m.park(3, generation: g3)
        #expect(!r11, "the receive's timer fired before it parked")
        // An earlier timer firing after the current one has fired leaves it fired.
        _ = m.timeout(g1)
        #expect(m.timedOut(g3))
        #expect(!m.timedOut(g1))
        // A new generation is not fired, whatever came before.
        let g4 = m.nextGeneration()
        #expect(g4 != g3 && !m.timedOut(g4))
        let r12 = m.park(4, generation: g4)
        #expect(r12)
    }

    @Test("a select's channel completion wakes the parked owner, or keeps it from parking when seen under the lock")
    func signal() {
        var m = Box(status: .running)
        let r12 = m.park(1, generation: 0, signalled: true)
        #expect(!r12)
        let r13 = m.park(1, generation: 0, signalled: false)
        #expect(r13)
        let r14 = m.signal()
        #expect(isResume(r14, 1))
        let r15 = m.signal()
        #expect(isNone(r15))
    }

    @Test("a callback process is scheduled once per idle period, however many messages arrive (invariant 3)")
    func scheduledOnce() {
        var m = Box(status: .idle)
        let r16 = m.deliver(1)
        #expect(isSchedule(r16))
        let r17 = m.deliver(2)
        #expect(isNone(r17))
        var saved = SavedQueue()
        let r18 = m.refillOrIdle(&saved)
        #expect(r18 == .more)
        let r19 = m.refillOrIdle(&saved)
        #expect(r19 == .idle)
        #expect(m.status == .idle)
        let r20 = m.deliver(contentsOf: [3, 4])
        #expect(isSchedule(r20))
    }

    @Test("the message that wakes an idle callback process goes into the owner's queue; later ones queue behind it in incoming, in the order sent; a dead mailbox takes none (invariants 1 and 3)")
    func wakingDeliveryIntoSaved() {
        var m = Box(status: .idle)
        var saved = SavedQueue()
        let r1 = m.deliver(1, waking: &saved)
        #expect(isSchedule(r1))
        #expect(saved.count == 1 && m.incoming.isEmpty, "the run takes it without a refill")
        let r2 = m.deliver(2, waking: &saved)
        #expect(isNone(r2), "scheduled once per idle period")
        #expect(saved.count == 1 && m.incoming.count == 1)
        let first = saved.removeFirst()
        #expect(first as? Int == 1)
        let r3 = m.refillOrIdle(&saved)
        #expect(r3 == .more)
        #expect(saved[0] as? Int == 2)
        var waiting = Box(status: .running)
        var other = SavedQueue()
        let r4 = waiting.deliver(3, waking: &other)
        #expect(isNone(r4))
        #expect(other.isEmpty && waiting.incoming.count == 1, "a running process's messages go to incoming")
        _ = waiting.die()
        let r5 = waiting.deliver(4, waking: &other)
        #expect(isNone(r5))
        #expect(other.isEmpty && waiting.incoming.isEmpty)
    }

    @Test("claim: an idle callback process with an empty mailbox is handed over with the message; with messages queued the message goes behind them; a busy one is not claimed")
    func claim() {
        var m = Box(status: .idle)
        let r21 = m.claim("call")
        #expect(r21 == .direct)
        #expect(m.status == .scheduled)
        let r22 = m.claim("again")
        #expect(r22 == .busy, "already owned")
        var saved = SavedQueue()
        let r23 = m.refillOrIdle(&saved)
        #expect(r23 == .idle)
        _ = m.deliver("early")
        #expect(m.status == .scheduled)
        let r24 = m.refillOrIdle(&saved)
        #expect(r24 == .more)
        let r25 = m.refillOrIdle(&saved)
        #expect(r25 == .idle)
        // Idle with a message in `incoming` cannot happen through deliver; through start it can.
        var bounded = Box(status: .idle)
        let r26 = bounded.claim("x", bounded: true)
        #expect(r26 == .busy, "a bounded mailbox's policy must see every message")
        var dead = Box(status: .idle)
        _ = dead.die()
        let r27 = dead.claim("x")
        #expect(r27 == .dead)
    }

    @Test("a local call's reply goes to the reply slot only while its call is open for it; the slot keeps the first (a reply or the DOWN); once the call ends nothing more arrives (invariant 4)")
    func replySlot() {
        var m = Box(status: .running)
        var slot = ReplySlot()
        let r28 = m.acceptReply(7, "early", slot: &slot)
        #expect(r28 == nil, "no call yet")
        m.beginCall(7, local: true, slot: &slot)
        let r29 = m.parkForReply(1, alias: 7, generation: 0, slot: slot)
        #expect(r29)
        #expect(m.status == .calling)
        guard let wake = m.acceptReply(7, "r1", slot: &slot) else { Issue.record("refused"); return }
        #expect(isResume(wake, 1))
        let r30 = m.acceptReply(7, "r2", slot: &slot)
        #expect(r30 == nil, "the slot holds one reply")
        let r31 = m.parkForReply(2, alias: 7, generation: 0, slot: slot)
        #expect(!r31, "a reply waits in the slot")
        guard case .done(let r32) = m.callStep(7, generation: 0, slot: &slot) else { Issue.record("no reply"); return }
        #expect(r32 as? String == "r1")
        #expect(m.callAlias == 0, "a reply taken ends the call")
        let r33 = m.acceptReply(7, "r3", slot: &slot)
        #expect(r33 == nil, "the call is over")

        m.beginCall(8, local: true, slot: &slot)
        let r34 = m.callStep(8, generation: 0, slot: &slot)
        guard case .wait = r34 else { Issue.record("nothing came yet: \(r34)"); return }
        let r35 = m.endCall(8, slot: &slot)
        #expect(r35 == nil)
        #expect(m.callAlias == 0)
        let r36 = m.acceptReply(8, "late", slot: &slot)
        #expect(r36 == nil, "a reply after the call ended is dropped")

        m.beginCall(9, local: false, slot: &slot)
        let r37 = m.acceptReply(9, "r", slot: &slot)
        #expect(r37 == nil, "a remote call's reply comes through the mailbox")
    }

    @Test("a process parked in a call is woken by its reply, its timer or its death, not by other messages (invariant 2)")
    func callingIgnoresDeliveries() {
        var m = Box(status: .running)
        var slot = ReplySlot()
        m.beginCall(5, local: true, slot: &slot)
        let g = m.nextGeneration()
        let r1 = m.parkForReply(1, alias: 5, generation: g, slot: slot)
        #expect(r1)
        let r2 = m.deliver("unrelated")
        #expect(isNone(r2), "a delivery waits for the next receive")
        #expect(m.status == .calling)
        let r3 = m.timeout(g)
        #expect(isResume(r3, 1), "the call's timer wakes it")
        let r4 = m.callStep(5, generation: g, slot: &slot)
        guard case .timedOut = r4 else { Issue.record("expected a timeout: \(r4)"); return }
        // A reply that beats the deactivation is still taken by endCall.
        let r5 = m.acceptReply(5, "just in time", slot: &slot)
        #expect(r5 != nil)
        #expect(m.endCall(5, slot: &slot) as? String == "just in time")

        m.beginCall(6, local: true, slot: &slot)
        let r6 = m.parkForReply(2, alias: 6, generation: 0, slot: slot)
        #expect(r6)
        guard let (before, waiter, dropped) = m.die() else { Issue.record("not dead"); return }
        #expect(before == .calling && waiter == 2)
        #expect(dropped.count == 1, "the unrelated message goes with the mailbox")
        let r7 = m.callStep(6, generation: 0, slot: &slot)
        guard case .dead = r7 else { Issue.record("expected dead: \(r7)"); return }
    }

    @Test("a full mailbox: dropNewest drops the arrival, dropOldest the oldest (in incoming, or counted against the owner's queue), exit asks for the owner's death (invariant 5)")
    func bounds() {
        var newest = Box(status: .running)
        var two = Box.Limit(capacity: 2, overflow: .dropNewest)
        _ = newest.deliver(1, savedCount: 0, limit: &two).wake
        _ = newest.deliver(2, savedCount: 0, limit: &two).wake
        let third = newest.deliver(3, savedCount: 0, limit: &two)
        #expect(third.dropped)
        #expect(newest.incoming.map { $0 as! Int } == [1, 2])

        var oldest = Box(status: .running)
        var twoOldest = Box.Limit(capacity: 2, overflow: .dropOldest)
        _ = oldest.deliver(1, savedCount: 0, limit: &twoOldest).wake
        _ = oldest.deliver(2, savedCount: 0, limit: &twoOldest).wake
        let o3 = oldest.deliver(3, savedCount: 0, limit: &twoOldest)
        #expect(o3.dropped)
        #expect(oldest.incoming.map { $0 as! Int } == [2, 3])
        // The oldest sit in the owner's queue: the drop is counted for the owner to apply.
        var saved = SavedQueue()
        _ = oldest.refill(&saved)
        _ = oldest.deliver(4, savedCount: saved.count, limit: &twoOldest).wake
        #expect(twoOldest.pendingDrops == 1)
        let r39 = saved.dropOldest(twoOldest.pendingDrops)
        #expect(r39 == 1)
        #expect(saved[0] as? Int == 3)

        var exit = Box(status: .running)
        var one = Box.Limit(capacity: 1, overflow: .exit)
        _ = exit.deliver(1, savedCount: 0, limit: &one).wake
        if case .overflowExit = exit.deliver(2, savedCount: 0, limit: &one).wake {} else { Issue.record("expected overflowExit") }
    }

    @Test("death is final: it hands back the waiter and the dropped messages once; later deliveries are dropped (invariant 1)")
    func death() {
        var m = Box(status: .running)
        _ = m.deliver("x")
        var saved = SavedQueue()
        _ = m.refill(&saved)
        let r40 = m.park(5, generation: 0)
        #expect(r40)
        guard let (before, waiter, dropped) = m.die() else { Issue.record("not dead"); return }
        #expect(before == .waiting && waiter == 5 && dropped.isEmpty)
        let r41 = m.die()
        #expect(r41 == nil)
        let r42 = m.deliver("y")
        #expect(isNone(r42))
        #expect(m.incoming.isEmpty)
        let r43 = m.park(6, generation: 0)
        #expect(!r43)
        var slot = ReplySlot()
        m.beginCall(3, local: true, slot: &slot)
        let r44 = m.acceptReply(3, "r", slot: &slot)
        #expect(r44 == nil)
    }

    @Test("selective receive: the first match in arrival order from the cursor; others stay in order; a refused claim takes nothing")
    func selectiveTake() {
        var m = Box(status: .running)
        for i in 1...5 { _ = m.deliver(i) }
        var saved = SavedQueue()
        _ = m.refill(&saved)
        var cursor = 0
        let r45 = saved.take(from: &cursor) { ($0 as? Int).map { $0 % 2 == 0 } ?? false }
        #expect(r45 == .taken)
        #expect(cursor == 1)
        #expect((0..<saved.count).map { saved[$0] as! Int } == [1, 3, 4, 5])
        var from2 = 2
        let r46 = saved.take(from: &from2) { ($0 as? Int) == 1 }
        #expect(r46 == .notFound, "messages before the marker are not looked at")
        #expect(from2 == saved.count)
        var c = 0
        let r47 = saved.take(from: &c, claim: { false }) { _ in true }
        #expect(r47 == .refused)
        #expect(saved.count == 4)
    }
}
