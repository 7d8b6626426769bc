import NIOCore
import NIOEmbedded
@testable import ParleyDistribution
import Testing

// The connection's life as a state machine, driven without threads or sockets: an
// EmbeddedChannel stands in for the TCP channel, integers for the callers waiting.

private typealias State = ConnectionState<Int>

private func fresh(busyLimit: Int = 0) -> State {
    State(buffer: ByteBufferAllocator().buffer(capacity: 64), busyLimit: busyLimit)
}

private let peer = PeerInfo(name: "erl@127.0.0.1", flags: .parley, creation: 7)

/// A connection whose handshake attached its channel: up.
private func up(busyLimit: Int = 0) -> State {
    var s = fresh(busyLimit: busyLimit)
    s.attemptStarted()
    _ = s.attach(EmbeddedChannel(), peer: peer)
    return s
}

/// Queues a frame body of `count` bytes.
private func enqueue(_ s: inout State, _ count: Int, mayHold: Bool = false) -> State.Enqueued {
    var held: Parker? = nil
    return [UInt8](repeating: 1, count: count).withUnsafeBytes { s.enqueue($0, mayHold: mayHold, held: &held) }
}

@Suite("Connection state machine")
struct ConnectionStateTests {
    @Test("Waiters queued while connecting are resumed once, by the attach; later callers are answered at once (invariants 1 and 2)")
    func waitersResumeOnce() {
        var s = fresh()
        s.attemptStarted()
        let r1 = s.wait(1)
        #expect(r1 == .queued)
        let r2 = s.wait(2)
        #expect(r2 == .queued)
        let channel = EmbeddedChannel()
        let r3 = s.attach(channel, peer: peer)
        #expect(r3 == [1, 2])
        #expect(s.phase == .up)
        #expect(s.peer == peer)
        let r4 = s.wait(3)
        #expect(r4 == .up)
        // Closing hands back no waiter: each was resumed once already.
        let r5 = s.close()
        #expect(r5?.waiters == [])
    }

    @Test("Closing while connecting fails every waiter; closed is final: no second close, no attach, no waiter, nothing queued (invariant 1)")
    func closeIsFinal() {
        var s = fresh()
        s.attemptStarted()
        _ = s.wait(1)
        let closed = s.close()
        #expect(closed?.waiters == [1])
        #expect(closed?.wasUp == false)
        let r6 = s.close()
        #expect(r6 == nil)
        let r7 = s.attach(EmbeddedChannel(), peer: peer)
        #expect(r7 == nil)
        let r8 = s.wait(2)
        #expect(r8 == .closed)
        guard case .nothing = enqueue(&s, 10) else { Issue.record("a closed connection queued a frame"); return }
        #expect(s.buffer.readableBytes == 0)
    }

    @Test("A simultaneous connect is two attempts: the connection fails only when the last one fails (invariant 3)")
    func lastAttemptFails() {
        var s = fresh()
        s.attemptStarted()  // our dial
        s.attemptStarted()  // their accept, joined
        let r9 = s.attemptFailed()
        #expect(!r9)
        let r10 = s.attemptFailed()
        #expect(r10)
        // Once up, a failed attempt (a replaced dial that loses later) closes nothing.
        var up = fresh()
        up.attemptStarted(); up.attemptStarted()
        _ = up.attach(EmbeddedChannel(), peer: peer)
        let r11 = up.attemptFailed()
        #expect(!r11)
    }

    @Test("net_kernel's owner: the newest attempt owns a connecting connection (an accepted simultaneous connect takes it over from our dial, which is no longer pending); nothing is pending once up or closed")
    func attemptOwnership() {
        var s = fresh()
        let dial = s.attemptStarted()
        #expect(s.isPending(dial))
        let accepted = s.attemptStarted()
        #expect(!s.isPending(dial))
        #expect(s.isPending(accepted))
        _ = s.attach(EmbeddedChannel(), peer: peer)
        #expect(!s.isPending(accepted))
        var c = fresh()
        let d = c.attemptStarted()
        _ = c.close()
        #expect(!c.isPending(d))
    }

    @Test("Net kernel's rule for simultaneous connects: the node with the greater name keeps its own attempt; a dial to an up connection replaces it only once proven")
    func simultaneousConnect() {
        #expect(State.accept(existing: .connecting, localName: "b@h", remoteName: "a@h") == .refuse)
        #expect(State.accept(existing: .connecting, localName: "a@h", remoteName: "b@h") == .joinSimultaneous)
        #expect(State.accept(existing: .up, localName: "a@h", remoteName: "b@h") == .replaceOnceProven)
        #expect(State.accept(existing: .closed, localName: "a@h", remoteName: "b@h") == .fresh)
        #expect(State.accept(existing: nil, localName: "a@h", remoteName: "b@h") == .fresh)
    }

    @Test("Frames queued while connecting are kept, in order, and written by the first flush after the handshake; one flush is scheduled at a time (invariant 6)")
    func queuedBeforeHandshake() throws {
        var s = fresh()
        s.attemptStarted()
        guard case .nothing = enqueue(&s, 3) else { Issue.record("scheduled a flush before the handshake"); return }
        guard case .nothing = enqueue(&s, 5) else { Issue.record("scheduled a flush before the handshake"); return }
        let r12 = s.takeForFlush(scheduled: true)
        #expect(r12 == nil)  // not up: nothing goes out
        _ = s.attach(EmbeddedChannel(), peer: peer)
        let flushed = s.takeForFlush(scheduled: true)
        let (bytes, _) = try #require(flushed)
        // Two frames: Len(4) 112 131 body, the length counting the two pass-through bytes.
        #expect(bytes.readableBytes == (4 + 2 + 3) + (4 + 2 + 5))
        #expect(bytes.getInteger(at: 0, as: UInt32.self) == 5)
        #expect(bytes.getInteger(at: 9, as: UInt32.self) == 7)
        guard case .scheduleFlush = enqueue(&s, 1) else { Issue.record("no flush scheduled once up"); return }
        guard case .nothing = enqueue(&s, 1) else { Issue.record("a second flush was scheduled"); return }
        _ = s.takeForFlush(scheduled: true)
        guard case .scheduleFlush = enqueue(&s, 1) else { Issue.record("no flush scheduled after the last one ran"); return }
    }

    @Test("busy_dist_port: a message sender is held once the queue reaches the limit (Erlang checks before it queues, so one message over the limit still goes); signals are never held; a flush releases the held (invariant 4)")
    func busyHoldsSenders() {
        var s = up(busyLimit: 100)
        _ = enqueue(&s, 150, mayHold: true)  // over the limit, but the queue was short: it goes
        #expect(s.isBusy)
        guard case .hold(let parker) = enqueue(&s, 10, mayHold: true) else { Issue.record("a sender was not held"); return }
        #expect(s.held.count == 1)
        guard case .nothing = enqueue(&s, 10, mayHold: false) else { Issue.record("a signal was held"); return }
        let r13 = s.releasable()
        #expect(r13.isEmpty)  // still busy
        let flushed = s.takeForFlush(scheduled: true)
        #expect(flushed != nil)
        #expect(!s.isBusy)
        let r14 = s.releasable().map { ObjectIdentifier($0) }
        #expect(r14 == [ObjectIdentifier(parker)])
        let r15 = s.forget(parker)
        #expect(!r15)  // released: nothing left to forget
    }

    @Test("A held sender whose park timed out takes itself off; closing releases every held sender")
    func heldSendersLeave() {
        var s = up(busyLimit: 10)
        _ = enqueue(&s, 20)
        guard case .hold(let a) = enqueue(&s, 1, mayHold: true), case .hold(let b) = enqueue(&s, 1, mayHold: true) else {
            Issue.record("senders were not held"); return
        }
        let r16 = s.forget(a)
        #expect(r16)
        let r17 = s.close()?.held.map { ObjectIdentifier($0) }
        #expect(r17 == [ObjectIdentifier(b)])
    }

    @Test("busy_dist_port suspends a process instead of holding its thread (sendSuspending): kept only while busy, handed back by the transition that ends the busy state or by close, each once (invariant 4)")
    func busySuspendsProcesses() {
        var s = up(busyLimit: 100)
        let idle = s.suspend(1, token: 1)
        #expect(!idle)  // not busy: goes on at once, nothing kept
        _ = enqueue(&s, 150)
        let kept = [s.suspend(2, token: 2), s.suspend(3, token: 3)]
        #expect(kept == [true, true])
        let early = s.resumable()
        #expect(early.isEmpty)  // still busy
        _ = s.takeForFlush(scheduled: true)
        let resumed = s.resumable(), again = s.resumable()
        #expect(resumed == [2, 3])
        #expect(again.isEmpty)  // each once
        s.writabilityChanged(false)  // SwiftNIO's queue is past its high water mark
        let nio = s.suspend(4, token: 4), whileNIOBusy = s.resumable()
        #expect(nio && whileNIOBusy.isEmpty)
        let closed = s.close()?.suspended
        #expect(closed == [4])
        let afterClose = s.suspend(5, token: 5)
        #expect(!afterClose)  // closed: nothing is kept
    }

    // Erlang: exit(Pid, kill) ends a process suspended on a busy distribution port at once
    // (OTP 25: is_process_alive is false right after, the receiver still stopped).
    @Test("A killed suspended process is handed back alone, at once; a kill that comes before its suspension keeps it from being kept; one after its resumption is forgotten")
    func killedSuspendedProcess() {
        var s = up(busyLimit: 100)
        _ = enqueue(&s, 150)
        let kept = [s.suspend(1, token: 1), s.suspend(2, token: 2)]
        #expect(kept == [true, true])
        let killed = s.cancelSuspended(1)
        #expect(killed == 1)
        #expect(s.suspended.map(\.token) == [2])  // the other stays suspended
        // Killed before it suspends: it is not kept, though the connection is busy.
        let none = s.cancelSuspended(3)
        #expect(none == nil)
        let late = s.suspend(3, token: 3)
        #expect(!late)
        let again = s.suspend(4, token: 3)  // the note is used once
        #expect(again)
        _ = s.takeForFlush(scheduled: true)
        let resumed = s.resumable()
        #expect(resumed == [2, 4])
        // Killed after it was resumed: nothing to hand back; the sender forgets the note.
        let afterResume = s.cancelSuspended(2)
        #expect(afterResume == nil)
        s.forgetCancelled(2)
        _ = enqueue(&s, 150)
        let later = s.suspend(5, token: 2)  // a reused token would be kept again
        #expect(later)
    }

    @Test("SwiftNIO's queue past its high water mark makes the connection busy until it is writable again")
    func writability() {
        var s = up(busyLimit: 1000)
        s.writabilityChanged(false)
        #expect(s.isBusy)
        s.writabilityChanged(true)
        #expect(!s.isBusy)
    }

    @Test("net_ticktime: a tick goes out only when nothing was written since the last one; four silent tick periods disconnect")
    func ticks() {
        var s = up()
        guard case .sendTick = s.tick(heard: true) else { Issue.record("no tick on an idle connection"); return }
        s.queueTick()
        #expect(s.buffer.readableBytes == 4)
        _ = enqueue(&s, 1)
        guard case .nothing = s.tick(heard: true) else { Issue.record("a tick although a frame was written"); return }
        for _ in 0..<3 {
            guard case .sendTick = s.tick(heard: false) else { Issue.record("gave up too early"); return }
        }
        guard case .timedOut = s.tick(heard: false) else { Issue.record("a peer silent for four periods was kept"); return }
        // Hearing from the peer resets the count.
        var t = fresh()
        t.attemptStarted()
        _ = t.attach(EmbeddedChannel(), peer: peer)
        for _ in 0..<3 { _ = t.tick(heard: false) }
        _ = t.tick(heard: true)
        for _ in 0..<3 {
            if case .timedOut = t.tick(heard: false) { Issue.record("the count was not reset by a read") }
        }
    }

    @Test("A ticker started after the connection closed is handed back to be cancelled, so it cannot keep the connection alive (invariant 5)")
    func lateTicker() {
        let loop = EmbeddedEventLoop()
        var s = up()
        let kept = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in }
        let r18 = s.tickerStarted(kept)
        #expect(r18 == nil)
        let r19 = s.close()
        #expect(r19?.ticker === kept)
        let late = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in }
        let r20 = s.tickerStarted(late)
        #expect(r20 === late)
        kept.cancel(); late.cancel()
    }
}
