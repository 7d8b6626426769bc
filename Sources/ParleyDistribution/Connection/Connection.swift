import Logging
import NIOCore
import NIOPosix
@_spi(Distribution) import Parley
import Synchronization

/// Control message tags (erl_dist_protocol, "Protocol between connected nodes").
enum Control {
    static let link = 1, send = 2, exit = 3, unlink = 4, regSend = 6, groupLeader = 7, exit2 = 8
    static let sendTT = 12, exitTT = 13, regSendTT = 16, exit2TT = 18
    static let monitorP = 19, demonitorP = 20, monitorPExit = 21
    static let unlinkId = 35, unlinkIdAck = 36
}

/// The connection to one other node: the outgoing queue (kept while the connection is being
/// set up, so messages sent meanwhile are not lost), the channel once the handshake is done,
/// ticks, and what arrives.
///
/// Senders on any thread encode their frame straight into one shared buffer under the lock;
/// the first to make it non-empty schedules one flush on the channel's event loop, which
/// writes everything queued by then in one write. Per-pair ordering is the buffer's order.
final class Connection: Sendable {
    enum Phase: Equatable { case connecting, up, closed }

    struct Out {
        var phase: Phase = .connecting
        var buffer: ByteBuffer
        var flushScheduled = false
        var channel: (any NIOCore.Channel)? = nil
        var peer: PeerInfo? = nil
        /// Handshakes in flight for this node (an outgoing dial, an incoming accept).
        var attempts = 0
        var wroteSinceTick = false
        var silentTicks = 0
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var tickTask: RepeatedTask? = nil
        /// Senders held while the connection is busy (Erlang's busy_dist_port).
        var busyWaiters: [Parker] = []
        /// SwiftNIO's queue has passed its high water mark (set to the limit) and not yet
        /// drained to the low one (the channel's writability, as the handler last saw it:
        /// kept here so that a send never touches the channel object the loop works on).
        var nioBusy = false

        /// Busy: our buffer has reached the limit, or SwiftNIO's queue has.
        func isBusy(limit: Int) -> Bool {
            buffer.readableBytes >= limit || nioBusy
        }
    }

    let node: Node
    /// Strong: the router lives as long as distribution runs, and drops its connections as
    /// they close (an unowned reference costs a side-table check on every use).
    let router: DistributionRouter
    /// Messages read but not yet delivered. Touched only on the channel's event loop.
    nonisolated(unsafe) let inbox = Inbox()
    /// Recent atoms, nodes and pids from this peer. Touched only on the channel's event loop.
    nonisolated(unsafe) let decodeCache = DecodeCache()
    let out: Locked<Out>
    /// Set by every read; the ticker clears it (relaxed: a heuristic for liveness, no data
    /// is published through it).
    let readSinceTick = Atomic<Bool>(false)
    /// `Configuration.bufferBusyLimit`, 0 for none.
    let busyLimit: Int
    /// How many senders are held (written under `out`'s lock; read relaxed by flushes to
    /// skip the lock when nobody waits: a missed wake-up is caught by the holder's own
    /// periodic re-check).
    let heldSenders = Atomic<Int>(0)

    init(node: Node, router: DistributionRouter) {
        self.node = node
        self.router = router
        self.busyLimit = router.configuration.bufferBusyLimit.map { max(1, $0) } ?? 0
        self.out = Locked(Out(buffer: ByteBufferAllocator().buffer(capacity: 4096)))
    }

    /// SwiftNIO's write buffer water marks for a busy limit: high at the limit, low at half.
    static func waterMark(_ limit: Int?) -> ChannelOptions.Types.WriteBufferWaterMark {
        guard let limit else { return .init(low: Int.max / 2, high: Int.max / 2 + 1) }
        let high = max(2, limit)
        return .init(low: high / 2, high: high)
    }

    var phase: Phase { out.withLock { $0.phase } }
    var peer: PeerInfo? { out.withLock { $0.peer } }

    // MARK: Sending

    /// Queues one frame: `Len 112 131 Control [131 Payload]` (no atom cache). Messages
    /// (`isMessage`, REG_SEND) may hold their sender while the connection is busy; signals
    /// (links, monitors, exits) never do: they are sent from places that must not block.
    func send(control: Term, payload: Term? = nil, isMessage: Bool = false) {
        send(mayHold: isMessage) { out, identity throws(TermEncodingError) in
            try out.write(control, identity: identity)
            if let payload {
                out.put(131)
                try out.write(payload, identity: identity)
            }
        }
    }

    /// SEND `{2, '', To}` and the message: the hot path, with the control tuple written
    /// directly rather than built as a term. Holds the sender while the connection is busy.
    func send(_ payload: Term, to pid: Pid) {
        send(mayHold: true) { out, identity throws(TermEncodingError) in
            try out.writeSendControl(to: pid, identity: identity)
            out.put(131)
            try out.write(payload, identity: identity)
        }
    }

    /// Encodes a frame body (after `112 131`) into stack scratch outside the lock, then
    /// appends the whole frame to the outgoing buffer under it. With `mayHold`, a sender that
    /// finds the connection busy is held until it is not (``Configuration/bufferBusyLimit``).
    private func send(mayHold: Bool = false, _ encode: (inout ScratchSink, WireIdentity) throws(TermEncodingError) -> Void) {
        let identity = router.identity
        let next: Next = withUnsafeTemporaryAllocation(byteCount: 512, alignment: 8) { scratch in
            var sink = ScratchSink(scratch)
            do {
                try encode(&sink, identity)
            } catch {
                router.log.warning("dropped a message to \(node): \(error)")
                return .nothing
            }
            return sink.withBytes { bytes in
                var held: Parker? = nil
                while true {
                    let next = out.withLock { o in enqueue(bytes, &o, mayHold: mayHold, held: &held) }
                    guard case .hold(let p) = next else { return next }
                    // Woken by a flush, by the channel becoming writable again or by close;
                    // the timeout only bounds the cost of a wake-up that raced past us.
                    p.park(deadline: MonotonicClock.now &+ 50_000_000)
                    out.withLock { o in
                        if let i = o.busyWaiters.firstIndex(where: { $0 === p }) {
                            o.busyWaiters.remove(at: i)
                            heldSenders.wrappingSubtract(1, ordering: .relaxed)
                        }
                    }
                }
            }
        }
        switch next {
        case .nothing, .hold: break
        case .flushNow: flush(rescheduling: false)
        // From the loop thread itself this queues a task without a wake-up.
        case .schedule(let ch): ch.eventLoop.execute { self.flush() }
        }
    }

    /// What a sender does after its frame is queued (or instead of it).
    private enum Next { case nothing, schedule(any NIOCore.Channel), flushNow, hold(Parker) }

    /// Under `out`'s lock: queues one frame, or, when the connection is busy and the sender
    /// `mayHold`, parks the sender there instead (busy_dist_port). Erlang checks for busy before
    /// it queues, so one message larger than the limit still goes when the queue is short.
    private func enqueue(_ bytes: UnsafeRawBufferPointer, _ o: inout Out, mayHold: Bool, held: inout Parker?) -> Next {
        guard o.phase != .closed else { return .nothing }
        if mayHold, busyLimit > 0, o.isBusy(limit: busyLimit), let p = held ?? Self.parkerIfMayBlock() {
            held = p
            o.busyWaiters.append(p)
            heldSenders.wrappingAdd(1, ordering: .relaxed)
            return .hold(p)
        }
        o.buffer.writeInteger(UInt32(bytes.count + 2))
        o.buffer.writeInteger(UInt16(112 << 8 | 131))
        o.buffer.writeBytes(bytes)
        o.wroteSinceTick = true
        // While connecting, the flush that follows the handshake writes what is queued.
        guard o.phase == .up else { return .nothing }
        // A burst from a process running on this connection's own event loop (woken there
        // by a read): a scheduled flush cannot run until it returns, so write as it goes.
        // A scheduled flush, if any, stays so.
        if o.buffer.readableBytes >= Self.inlineFlushBytes, let ch = o.channel, ch.eventLoop.inEventLoop { return .flushNow }
        // The common case touches neither the channel nor its loop (their reference counts
        // are the loop thread's: sharing them costs cache-line transfers on every send).
        if o.flushScheduled { return .nothing }
        guard let ch = o.channel else { return .nothing }
        o.flushScheduled = true
        return .schedule(ch)
    }

    /// A fresh parker if the calling thread may be held while the connection is busy; nil on
    /// an event loop thread, where holding could stop the I/O that would release it.
    private static func parkerIfMayBlock() -> Parker? {
        MultiThreadedEventLoopGroup.currentEventLoop == nil ? Parker() : nil
    }

    /// The channel's writability changed (on its event loop): SwiftNIO's queue passed its
    /// high water mark, or drained to the low one.
    func writabilityChanged(_ writable: Bool) {
        out.withLock { $0.nioBusy = !writable }
        if writable { releaseHeldSenders() }
    }

    /// Releases the senders held on a busy connection once it is no longer busy (or closed).
    func releaseHeldSenders() {
        guard heldSenders.load(ordering: .relaxed) > 0 else { return }
        let limit = busyLimit
        let released = out.withLock { o -> [Parker] in
            guard o.phase == .closed || !o.isBusy(limit: limit) else { return [] }
            let w = o.busyWaiters
            o.busyWaiters = []
            heldSenders.wrappingSubtract(w.count, ordering: .relaxed)
            return w
        }
        for p in released { p.unpark() }
    }

    /// How much a sender on the connection's own event loop queues before writing it itself.
    static let inlineFlushBytes = 64 << 10

    /// Writes everything queued (on the channel's event loop).
    func flush(rescheduling: Bool = true) {
        let (buffer, channel) = out.withLock { o -> (ByteBuffer?, (any NIOCore.Channel)?) in
            // A flush that a sender on the loop makes itself leaves the scheduled one in
            // place (it writes whatever comes after).
            if rescheduling { o.flushScheduled = false }
            guard o.phase == .up, let ch = o.channel, o.buffer.readableBytes > 0 else { return (nil, nil) }
            var fresh = ch.allocator.buffer(capacity: 4096)
            swap(&fresh, &o.buffer)
            return (fresh, ch)
        }
        if let buffer, let channel {
            channel.writeAndFlush(buffer, promise: nil)
            router.busyWait?.noteActivity()
        }
        releaseHeldSenders()
    }

    // MARK: Life cycle

    func attemptStarted() { out.withLock { $0.attempts += 1 } }

    /// A handshake for this node failed. The connection fails when no other attempt is left.
    func attemptFailed(_ reason: String) {
        let failed = out.withLock { o -> Bool in
            o.attempts -= 1
            return o.attempts <= 0 && o.phase == .connecting
        }
        if failed { close(reason: reason, wasUp: false) }
    }

    /// The handshake on `channel` completed: the connection is up.
    func attach(_ channel: any NIOCore.Channel, peer: PeerInfo, tickTime: Duration) -> Bool {
        let waiters = out.withLock { o -> [CheckedContinuation<Void, any Error>]? in
            guard o.phase == .connecting else { return nil }
            o.phase = .up
            o.channel = channel
            o.peer = peer
            o.attempts -= 1
            let w = o.waiters
            o.waiters = []
            return w
        }
        guard let waiters else { return false }
        let period = TimeAmount.nanoseconds(Int64(tickTime.components.seconds) * 1_000_000_000 / 4 + Int64(tickTime.components.attoseconds / 4_000_000_000))
        // Strong: close() cancels the task, which breaks the cycle. A weak reference would
        // give the connection a side table, and every retain on the send and read paths
        // would take the runtime's slow path.
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in self.tick() }
        out.withLock { $0.tickTask = task }
        for w in waiters { w.resume() }
        router.connectionUp(self, peer: peer)
        channel.eventLoop.execute { self.flush() }
        return true
    }

    /// Waits until the connection is up (or throws why it failed).
    func waitUntilUp() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let now: Result<Void, any Error>? = out.withLock { o in
                switch o.phase {
                case .up: return .success(())
                case .closed: return .failure(DistributionError.connectFailed(node: node.name, reason: "connection closed"))
                case .connecting:
                    o.waiters.append(c)
                    return nil
                }
            }
            if let now { c.resume(with: now) }
        }
    }

    /// Net tick: write something every TickTime/4, and give up on a peer silent for four
    /// periods (kernel app docs, net_ticktime).
    func tick() {
        let heard = readSinceTick.exchange(false, ordering: .relaxed)
        let (sendTick, timedOut, channel) = out.withLock { o -> (Bool, Bool, (any NIOCore.Channel)?) in
            guard o.phase == .up else { return (false, false, nil) }
            o.silentTicks = heard ? 0 : o.silentTicks + 1
            let send = !o.wroteSinceTick
            o.wroteSinceTick = false
            return (send, o.silentTicks >= 4, o.channel)
        }
        guard let channel else { return }
        if timedOut {
            router.log.warning("net_tick_timeout: \(node) sent nothing for four tick periods; disconnecting")
            channel.close(promise: nil)
            return
        }
        if sendTick {
            var b = channel.allocator.buffer(capacity: 4)
            b.writeInteger(UInt32(0))
            // Through the queue's order: nothing queued is overtaken (a tick carries no data anyway).
            out.withLock { o in
                if o.buffer.readableBytes == 0 { o.buffer.writeBuffer(&b) }
            }
            flush()
        }
    }

    /// Closes the connection: drops what is queued, and tells the router (which fires
    /// `noconnection` for every link and monitor across it).
    func close(reason: String, wasUp: Bool) {
        let (channel, waiters, task, wasOpen) = out.withLock { o -> ((any NIOCore.Channel)?, [CheckedContinuation<Void, any Error>], RepeatedTask?, Bool) in
            let open = o.phase != .closed
            o.phase = .closed
            o.buffer.clear()
            let w = o.waiters
            o.waiters = []
            let t = o.tickTask
            o.tickTask = nil
            let ch = o.channel
            o.channel = nil
            return (ch, w, t, open)
        }
        guard wasOpen else { return }
        // Senders held on the busy connection go on; what they send now is dropped, as
        // messages to a node we are not connected to are.
        releaseHeldSenders()
        task?.cancel()
        channel?.close(promise: nil)
        for w in waiters { w.resume(throwing: DistributionError.connectFailed(node: node.name, reason: reason)) }
        router.connectionClosed(self, reason: reason)
    }

    // MARK: Receiving (on the channel's event loop)

    /// Every complete frame at the start of `raw` (4-byte lengths, after the handshake), read
    /// in one pass without a buffer object per frame. Returns how many bytes they took; a
    /// partial frame at the end waits for the next read.
    /// - Throws: ``FrameError`` for a frame over `maxFrame` or one that does not decode.
    func receiveFrames(_ raw: UnsafeRawBufferPointer, maxFrame: Int) throws(FrameError) -> Int {
        readSinceTick.store(true, ordering: .relaxed)
        var reader = TermReader(UnsafeRawBufferPointer(start: nil, count: 0), identity: router.identity, limits: router.limits)
        reader.cache = decodeCache
        var at = 0
        while raw.count - at >= 4 {
            let length = Int(UInt32(raw[at]) << 24 | UInt32(raw[at + 1]) << 16 | UInt32(raw[at + 2]) << 8 | UInt32(raw[at + 3]))
            if length > maxFrame { throw .tooLarge(length) }
            guard raw.count - at - 4 >= length else { break }
            if length > 0 {
                do {
                    reader.reset(UnsafeRawBufferPointer(rebasing: raw[(at + 4)..<(at + 4 + length)]))
                    try receive(&reader)
                } catch {
                    throw .undecodable(error)
                }
            }
            at += 4 + length
        }
        return at
    }

    /// One frame's bytes after its length, `112 131 Control [131 Payload]`, in `r`.
    func receive(_ r: inout TermReader) throws(TermDecodingError) {
        let pass = try r.u8()
        guard pass == 112 else { throw .unknownTag(pass, at: 0) }
        // SEND, the common case, is read without building its control tuple.
        if let to = try r.readSendControl() {
            // A SEND without its message is malformed but harmless: ignored, as the router
            // ignores other malformed control messages.
            guard r.remaining > 0 else {
                router.handle(control: .tuple([.integer(Control.send), .atom(""), .pid(to)]), payload: nil, from: self)
                return
            }
            let payload = try r.readVersioned()
            if r.remaining > 0 { throw .trailingBytes(r.remaining) }
            if to.isLocal { inbox.add(MessageCodec.message(from: payload, to: to), to: to) }
            return
        }
        let control = try r.readVersioned()
        let payload = r.remaining > 0 ? try r.readVersioned() : nil
        if r.remaining > 0 { throw .trailingBytes(r.remaining) }
        router.handle(control: control, payload: payload, from: self)
    }
}

/// Why a connection's input was refused after the handshake.
enum FrameError: Error, CustomStringConvertible {
    /// A frame longer than `Configuration.maxFrameSize`.
    case tooLarge(Int)
    /// A frame whose terms do not decode.
    case undecodable(TermDecodingError)

    var description: String {
        switch self {
        case .tooLarge(let n): return "frame of \(n) bytes exceeds the limit"
        case .undecodable(let e): return "\(e)"
        }
    }
}

/// Messages from one read, grouped by consecutive target, delivered together at the end of
/// the read: one mailbox lock and one wake-up per group instead of per message.
final class Inbox {
    // Only the owning connection's event loop thread touches it, so the dynamic exclusivity
    // check is redundant.
    @exclusivity(unchecked) private var groups: [(Pid, [any Sendable])] = []

    func add(_ message: any Sendable, to pid: Pid) {
        if let last = groups.indices.last, groups[last].0 == pid {
            groups[last].1.append(message)
        } else {
            groups.append((pid, [message]))
        }
    }

    func flush() {
        guard !groups.isEmpty else { return }
        let taken = groups
        groups.removeAll(keepingCapacity: true)
        for (pid, messages) in taken { Remote.deliverBatch(messages, to: pid) }
    }
}

/// Errors from the distribution API.
public enum DistributionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The node could not be reached or refused the connection.
    case connectFailed(node: String, reason: String)
    /// Distribution is not running (call ``Distribution/start(_:)`` first).
    case notStarted
    /// Distribution is already running on this OS process.
    case alreadyStarted(String)
    /// A node name that is not `name@host` (or a bare short name).
    case badNodeName(String)
    /// EPMD refused the registration, or could not be reached or started.
    case epmd(String)
    /// Listening on the distribution port failed.
    case listenFailed(String)
    /// The remote node has no spawnable function of that name.
    case unknownSpawnable(String)

    public var description: String {
        switch self {
        case .connectFailed(let n, let r): return "cannot connect to \(n): \(r)"
        case .notStarted: return "distribution is not started on this node"
        case .alreadyStarted(let n): return "distribution is already started as \(n)"
        case .badNodeName(let n): return "bad node name '\(n)' (expected name@host)"
        case .epmd(let r): return "epmd: \(r)"
        case .listenFailed(let r): return "cannot listen for distribution connections: \(r)"
        case .unknownSpawnable(let n): return "no spawnable function '\(n)' on the remote node"
        }
    }
}
