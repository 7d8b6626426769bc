import Logging
import NIOCore
import NIOPosix
@_spi(Distribution) import Parley
import Synchronization

/// The connection to one other node: the outgoing queue (kept while the connection is being
/// set up, so messages sent meanwhile are not lost), the channel once the handshake is done,
/// ticks, and what arrives.
///
/// Senders on any thread encode their frame straight into one shared buffer under the lock;
/// the first to make it non-empty schedules one flush on the channel's event loop, which
/// writes everything queued by then in one write. Per-pair ordering is the buffer's order.
final class Connection: Sendable {
    typealias State = ConnectionState<CheckedContinuation<Void, any Error>>

    let node: Node
    /// Strong: the router lives as long as distribution runs, and drops its connections as
    /// they close (an unowned reference costs a side-table check on every use).
    let router: DistributionRouter
    let state: Locked<State>
    /// Set by every read; the ticker clears it (relaxed: a heuristic for liveness, no data
    /// is published through it).
    let readSinceTick = Atomic<Bool>(false)
    /// How many senders are held or suspended (written under `state`'s lock; read relaxed
    /// by releases to skip the lock when nobody waits). No wake-up is missed: only
    /// `takeForFlush`, `writabilityChanged` and `close` end the busy state, each under the
    /// lock, and a release follows each; a sender kept under the lock before that section
    /// is visible to the release's load through the lock, and one that comes after it sees
    /// the connection not busy and is not kept. A held thread also re-checks every 50 ms.
    let heldSenders = Atomic<Int>(0)
    /// Whether the connection is busy, as the last transition under `state`'s lock left it
    /// (written under the lock; read relaxed by the router's `sendSuspending` before it
    /// calls ``suspendWhileBusy()``, whose lock decides).
    let busyHint = Atomic<Bool>(false)
    /// Numbers each ``suspendWhileBusy()`` for its cancellation (relaxed: only uniqueness
    /// matters).
    private let suspensions = Atomic<UInt64>(0)
    /// Whether frames take the distribution header (set once, as the connection comes up).
    let distHeader = Atomic<Bool>(false)
    /// Frames (ticks excluded) and bytes read from the peer. Written only by the channel's
    /// event loop (a load and a store, no read-modify-write); read relaxed by introspection,
    /// which needs no ordering with anything else.
    let framesIn = Atomic<Int>(0)
    let bytesIn = Atomic<Int>(0)

    init(node: Node, router: DistributionRouter) {
        self.node = node
        self.router = router
        let busyLimit = router.configuration.bufferBusyLimit.map { max(1, $0) } ?? 0
        self.state = Locked(State(buffer: ByteBufferAllocator().buffer(capacity: 4096), busyLimit: busyLimit))
    }

    /// SwiftNIO's write buffer water marks for a busy limit: high at the limit, low at half.
    static func waterMark(_ limit: Int?) -> ChannelOptions.Types.WriteBufferWaterMark {
        guard let limit else { return .init(low: Int.max / 2, high: Int.max / 2 + 1) }
        let high = max(2, limit)
        return .init(low: high / 2, high: high)
    }

    var phase: State.Phase { state.withLock { $0.phase } }

    /// What `net_kernel:node_info/1` tells of this connection, read in one lock round trip.
    var info: NodeInfo {
        let (phase, peer, out, outBytes, since, address, silent) = state.withLock { s in
            (s.phase, s.peer, s.framesOut, s.bytesOut, s.upSince, s.address, s.silentTicks)
        }
        let state: NodeInfo.State
        switch phase {
        case .connecting: state = .pending
        case .up: state = silent > 0 ? .silent(ticks: silent) : .up
        case .closed: state = .closed
        }
        return NodeInfo(name: node.name, state: state, address: address, isHidden: peer?.isHidden ?? false,
                        creation: peer?.creation ?? 0, framesIn: framesIn.load(ordering: .relaxed), framesOut: out,
                        bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: outBytes,
                        upForNanoseconds: since == 0 ? 0 : MonotonicClock.now &- since)
    }
    var peer: PeerInfo? { state.withLock { $0.peer } }

    // MARK: Sending

    /// Queues one frame: `Len 112 131 Control [131 Payload]`, or, once both nodes set
    /// DFLAG_DIST_HDR_ATOM_CACHE, `Len 131 68 Header Control [Payload]` with the frame's atoms
    /// named by index. Messages (`isMessage`, REG_SEND) may hold their sender while the
    /// connection is busy; signals (links, monitors, exits) never do: they are sent from
    /// places that must not block.
    func send(control: Term, payload: Term? = nil, isMessage: Bool = false) {
        send(mayHold: isMessage) { out, identity throws(TermEncodingError) in
            try out.write(control, identity: identity)
            if let payload {
                out.startMessage()
                try out.write(payload, identity: identity)
            }
        }
    }

    /// SEND `{2, '', To}` and the message: the hot path, with the control tuple written
    /// directly rather than built as a term. Holds the sender while the connection is busy.
    func send(_ payload: Term, to pid: Pid) {
        send(mayHold: true) { out, identity throws(TermEncodingError) in
            try out.writeSendControl(to: pid, identity: identity)
            out.startMessage()
            try out.write(payload, identity: identity)
        }
    }

    /// Encodes a frame body (what follows its header) into stack scratch outside the lock,
    /// then appends the whole frame to the outgoing buffer under it, where its header is
    /// made (the atom cache's entries are decided in the order frames go on the wire). With
    /// `mayHold`, a sender that finds the connection busy is held until it is not
    /// (``Configuration/bufferBusyLimit``).
    private func send(mayHold: Bool = false, _ encode: (inout ScratchSink, WireIdentity) throws(TermEncodingError) -> Void) {
        let identity = router.identity
        let next: State.Enqueued = withUnsafeTemporaryAllocation(byteCount: 512, alignment: 8) { scratch in
            var sink = ScratchSink(scratch)
            // Relaxed: a sender that still sees false makes a pass-through body, which the
            // locked enqueue turns into a headed frame if the connection has come up since.
            if distHeader.load(ordering: .relaxed) { sink.refs = AtomRefs() }
            do {
                try encode(&sink, identity)
            } catch {
                router.log.warning("dropped a message to \(node): \(error)")
                return .nothing
            }
            let refs = sink.refs, messageAt = sink.messageAt
            return sink.withBytes { bytes in
                var held: Parker? = nil
                while true {
                    let next = state.withLock { s in
                        let next = s.enqueue(bytes, refs: refs, messageAt: messageAt, mayHold: mayHold, held: &held)
                        if case .hold = next { heldSenders.wrappingAdd(1, ordering: .relaxed) }
                        noteBusy(s)
                        return next
                    }
                    guard case .hold(let p) = next else { return next }
                    // Woken by a flush, by the channel becoming writable again or by close;
                    // the timeout only bounds the cost of a wake-up that raced past us.
                    p.park(deadline: MonotonicClock.now &+ 50_000_000)
                    state.withLock { s in
                        if s.forget(p) { heldSenders.wrappingSubtract(1, ordering: .relaxed) }
                    }
                }
            }
        }
        switch next {
        case .nothing, .hold: break
        case .flushNow: flush(scheduled: false)
        // From the loop thread itself this queues a task without a wake-up.
        case .scheduleFlush(let ch): ch.eventLoop.execute { self.flush() }
        }
    }

    /// The channel's writability changed (on its event loop): SwiftNIO's queue passed its
    /// high water mark, or drained to the low one.
    func writabilityChanged(_ writable: Bool) {
        state.withLock { s in
            s.writabilityChanged(writable)
            noteBusy(s)
        }
        if writable { releaseHeldSenders() }
    }

    /// Releases the senders held on a busy connection once it is no longer busy (or closed),
    /// and resumes the processes suspended on it.
    func releaseHeldSenders() {
        guard heldSenders.load(ordering: .relaxed) > 0 else { return }
        let (released, resumed) = state.withLock { s in
            let r = s.releasable(), t = s.resumable()
            heldSenders.wrappingSubtract(r.count + t.count, ordering: .relaxed)
            return (r, t)
        }
        for p in released { p.unpark() }
        for t in resumed { t.resume() }
    }

    /// Mirrors the state's busy flag into `busyHint` (under the lock; stores only a change).
    @inline(__always)
    private func noteBusy(_ s: borrowing State) {
        let busy = s.phase != .closed && s.isBusy
        if busyHint.load(ordering: .relaxed) != busy { busyHint.store(busy, ordering: .relaxed) }
    }

    /// Waits while the connection is busy (``Configuration/bufferBusyLimit``): the task
    /// suspends, which frees its thread (an event loop thread too), until a flush or the
    /// channel's writability ends the busy state, or the connection closes. Returns at once
    /// when it is not busy. Callers check `busyHint` first (relaxed: a stale false lets one
    /// more message queue, as the thread path's check-then-queue does; a stale true only
    /// brings them here, where the lock decides).
    @inline(never)
    func suspendWhileBusy() async {
        let token = suspensions.wrappingAdd(1, ordering: .relaxed).newValue
        // The continuation never throws: close resumes it normally (the send that follows
        // is dropped, as sends to a node we are not connected to are). A kill cancels the
        // process's task: it resumes at once, and its send is dropped.
        await withTaskCancellationHandler {
            try? await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let kept = state.withLock { s in
                    let kept = s.suspend(c, token: token)
                    if kept { heldSenders.wrappingAdd(1, ordering: .relaxed) }
                    return kept
                }
                if !kept { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                let w = s.cancelSuspended(token)
                if w != nil { heldSenders.wrappingSubtract(1, ordering: .relaxed) }
                return w
            }
            waiter?.resume()
        }
        // Out of the handler's reach now: a cancellation that came after the resumption left
        // its token behind.
        if Task.isCancelled { state.withLock { $0.forgetCancelled(token) } }
    }

    /// Writes everything queued (on the channel's event loop). `scheduled`: this is the one
    /// scheduled flush, not a sender's own.
    func flush(scheduled: Bool = true) {
        if let (buffer, channel) = state.withLock({ s in
            defer { noteBusy(s) }
            return s.takeForFlush(scheduled: scheduled)
        }) {
            channel.writeAndFlush(buffer, promise: nil)
            router.busyWait?.noteActivity()
        }
        releaseHeldSenders()
    }

    // MARK: Life cycle

    /// A handshake starts for this node; returns its attempt id (see ``isPending(_:)``).
    @discardableResult
    func attemptStarted() -> Int { state.withLock { $0.attemptStarted() } }

    /// dist_util's `is_pending`: attempt `id` still owns this connection, which is connecting.
    func isPending(_ id: Int) -> Bool { state.withLock { $0.isPending(id) } }

    /// A handshake for this node failed. The connection fails when no other attempt is left.
    func attemptFailed(_ reason: String) {
        if state.withLock({ $0.attemptFailed() }) { close(reason: reason) }
    }

    /// The handshake on `channel` completed: the connection is up. False if another attempt
    /// won or the connection closed meanwhile: then `channel` is not used.
    func attach(_ channel: any NIOCore.Channel, peer: PeerInfo, tickTime: Duration) -> Bool {
        // DFLAG_DIST_HDR_ATOM_CACHE on both sides: every frame takes the distribution header
        // from now on (dist_util keeps the flags both set).
        let headed = peer.flags.contains(.distHeaderAtomCache) && router.flags.contains(.distHeaderAtomCache)
        guard let waiters = state.withLock({ s -> [CheckedContinuation<Void, any Error>]? in
            let w = s.attach(channel, peer: peer, distHeader: headed)
            if w != nil { distHeader.store(headed, ordering: .relaxed) }
            return w
        }) else { return false }
        let period = TimeAmount.nanoseconds(Int64(tickTime.components.seconds) * 1_000_000_000 / 4 + Int64(tickTime.components.attoseconds / 4_000_000_000))
        // Strong: close() cancels the task, which breaks the cycle. A weak reference would
        // give the connection a side table, and every retain on the send and read paths
        // would take the runtime's slow path.
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in self.tick() }
        state.withLock { $0.tickerStarted(task) }?.cancel()
        for w in waiters { w.resume() }
        router.connectionUp(self, peer: peer)
        channel.eventLoop.execute { self.flush() }
        return true
    }

    /// Waits until the connection is up (or throws why it failed).
    func waitUntilUp() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            switch state.withLock({ $0.wait(c) }) {
            case .up: c.resume()
            case .closed: c.resume(throwing: DistributionError.connectFailed(node: node.name, reason: "connection closed"))
            case .queued: break
            }
        }
    }

    /// Net tick (every TickTime/4 on the channel's event loop).
    func tick() {
        let heard = readSinceTick.exchange(false, ordering: .relaxed)
        switch state.withLock({ $0.tick(heard: heard) }) {
        case .nothing:
            break
        case .timedOut(let channel):
            router.log.warning("net_tick_timeout: \(node) sent nothing for four tick periods; disconnecting")
            _ = channel  // close() closes it
            close(reason: "net_tick_timeout", down: .netTickTimeout)
        case .sendTick:
            state.withLock { $0.queueTick() }
            flush()
        }
    }

    /// Closes the connection: drops what is queued, and tells the router (which fires
    /// `noconnection` for every link and monitor across it).
    func close(reason: String, down: NodeDownReason = .connectionClosed) {
        guard let closed = state.withLock({ s in
            defer { noteBusy(s) }
            return s.close()
        }) else { return }
        // Senders held on the busy connection go on; what they send now is dropped, as
        // messages to a node we are not connected to are.
        heldSenders.wrappingSubtract(closed.held.count + closed.suspended.count, ordering: .relaxed)
        for p in closed.held { p.unpark() }
        for t in closed.suspended { t.resume() }
        closed.ticker?.cancel()
        closed.channel?.close(promise: nil)
        for w in closed.waiters { w.resume(throwing: DistributionError.connectFailed(node: node.name, reason: reason)) }
        router.connectionClosed(self, wasUp: closed.wasUp, reason: down)
    }

    // MARK: Receiving (on the channel's event loop)

    /// The frames of one read as ``DistributionFrameDecoder`` cut them (whole frames with
    /// 4-byte lengths, each within the size limit), read in one pass without a buffer object
    /// per frame. Messages go to `inbox`, delivered when the read ends; `cache` is the
    /// channel's decode cache. Both belong to the channel's handler, on its event loop.
    /// - Throws: the first frame's error that does not decode.
    func receiveFrames(_ raw: UnsafeRawBufferPointer, inbox: Inbox, cache: DecodeCache) throws(TermDecodingError) {
        readSinceTick.store(true, ordering: .relaxed)
        bytesIn.store(bytesIn.load(ordering: .relaxed) &+ raw.count, ordering: .relaxed)
        var frames = 0
        defer { framesIn.store(framesIn.load(ordering: .relaxed) &+ frames, ordering: .relaxed) }
        var reader = TermReader(UnsafeRawBufferPointer(start: nil, count: 0), identity: router.identity, limits: router.limits)
        reader.cache = cache
        var at = 0
        while raw.count - at >= 4 {
            let length = Int(UInt32(raw[at]) << 24 | UInt32(raw[at + 1]) << 16 | UInt32(raw[at + 2]) << 8 | UInt32(raw[at + 3]))
            guard raw.count - at - 4 >= length else { return }  // never: the decoder cut whole frames
            if length > 0 {
                frames &+= 1
                reader.reset(UnsafeRawBufferPointer(rebasing: raw[(at + 4)..<(at + 4 + length)]))
                try receive(&reader, inbox: inbox)
            }
            at += 4 + length
        }
    }

    /// One frame's bytes after its length, in `r`: `112 131 Control [131 Payload]`, or
    /// `131 68 Header Control [Payload]` (the distribution header, whose atom cache references
    /// the terms then use, and which stands for their version bytes).
    func receive(_ r: inout TermReader, inbox: Inbox) throws(TermDecodingError) {
        let first = try r.u8()
        let versioned: Bool
        switch first {
        case 112:
            versioned = true
            r.forgetFrameAtoms()   // a pass-through frame refers to none
        case ExternalTermFormat.version:
            let tag = try r.u8()
            guard tag == 68 else { throw .unknownTag(tag, at: 1) }
            try r.readDistHeader()
            versioned = false
        default:
            throw .unknownTag(first, at: 0)
        }
        // SEND, the common case, is read without building its control tuple.
        if let to = try r.readSendControl(versioned: versioned) {
            // A SEND without its message is malformed but harmless: ignored, as the router
            // ignores other malformed control messages.
            guard r.remaining > 0 else {
                router.handle(control: .tuple([.integer(Control.send), .atom(""), .pid(to)]), payload: nil, from: self, inbox: inbox)
                return
            }
            let payload = versioned ? try r.readVersioned() : try r.readUnversioned()
            if r.remaining > 0 { throw .trailingBytes(r.remaining) }
            if to.holdsProcess, let m = MessageCodec.incoming(from: payload, to: to) { inbox.add(m, to: to) }
            return
        }
        let control = versioned ? try r.readVersioned() : try r.readUnversioned()
        let payload = r.remaining > 0 ? (versioned ? try r.readVersioned() : try r.readUnversioned()) : nil
        if r.remaining > 0 { throw .trailingBytes(r.remaining) }
        router.handle(control: control, payload: payload, from: self, inbox: inbox)
    }
}
