import NIOCore
import NIOPosix
import ParleyRuntime

/// The life of the connection to one other node, as a state machine: the phase, the
/// handshake attempts, the callers waiting for it to come up, the outgoing frames, the
/// senders held while it is busy, and net tick bookkeeping. ``Connection`` keeps it behind
/// its lock and runs what each transition returns (resume waiters, unpark senders, write,
/// close the channel, cancel the ticker) after the lock is released. Generic over the waiter
/// so that the tests drive it without threads or continuations.
///
/// Invariants:
/// 1. **The phase only moves forward**: connecting → up → closed, or connecting → closed.
///    Closed is final: it queues nothing, holds nobody, and adds no waiter.
/// 2. **Every waiter is resumed exactly once**: by ``attach(_:peer:)`` (up) or by
///    ``close()`` (failed). Waiters are only kept while connecting.
/// 3. **A connecting connection fails with its last attempt**: a dial and an accept for the
///    same node (a simultaneous connect) are two attempts; the one that completes attaches,
///    and the connection fails only when every attempt has failed. The newest attempt owns
///    the connection (net_kernel's owner: an accepted simultaneous connect takes it over from
///    our dial, which then gives up); only the owner of a connecting connection is pending.
/// 4. **A held sender is released** by the transition that ends the busy state (a flush, the
///    channel writable again) or by close; a held sender whose timed park ran out removes
///    itself (``forget(_:)``), so none is left behind. A suspended process (``suspend(_:token:)``)
///    is resumed by the same transitions, or when it is killed (``cancelSuspended(_:)``),
///    exactly once.
/// 5. **The ticker lives only while up**: one that is started after the close is handed
///    back to be cancelled (``tickerStarted(_:)``).
/// 6. **At most one flush is scheduled** at a time; frames queued before the handshake are
///    written by the flush that follows ``attach(_:peer:)``.
struct ConnectionState<Waiter> {
    enum Phase: Equatable { case connecting, up, closed }

    private(set) var phase: Phase = .connecting
    /// Frames waiting to be written: `Len 112 131 ...` (pass-through), or `Len 131 68 ...`
    /// once both nodes set DFLAG_DIST_HDR_ATOM_CACHE (``distHeader``).
    private(set) var buffer: ByteBuffer
    /// Frames queued while connecting, before the peer's flags say which header they take;
    /// written into `buffer` by ``attach(_:peer:distHeader:)``. Their bytes count toward busy.
    private var pending: [(bytes: [UInt8], messageAt: Int?)] = []
    private var pendingBytes = 0
    /// Whether frames go with the distribution header and its atom cache (set at attach).
    private(set) var distHeader = false
    /// What the peer's atom cache holds, as the frames queued so far have filled it.
    private var atomsOut = AtomCacheOut()
    private(set) var channel: (any NIOCore.Channel)? = nil
    private(set) var peer: PeerInfo? = nil
    /// Handshakes in flight for this node (an outgoing dial, an incoming accept).
    private var attempts = 0
    /// The attempt that owns the connection while it is connecting, and the last id given.
    private var owner = 0
    private var lastAttempt = 0
    private var waiters: [Waiter] = []
    private var ticker: RepeatedTask? = nil
    private var flushScheduled = false
    private var wroteSinceTick = false
    /// Frames and bytes queued for the peer (ticks excluded; frames queued while connecting,
    /// which the first flush writes, included): `net_kernel:node_info/1`'s `out`, counted
    /// under the lock the send already takes.
    private(set) var framesOut = 0
    private(set) var bytesOut = 0
    /// When the connection came up (monotonic nanoseconds), and from which address.
    private(set) var upSince: UInt64 = 0
    private(set) var address: String? = nil
    /// Net tick periods in a row in which nothing arrived (four disconnect).
    private(set) var silentTicks = 0
    /// Senders held while the connection is busy (Erlang's busy_dist_port).
    private(set) var held: [Parker] = []
    /// Processes suspended while the connection is busy (``Connection/suspendWhileBusy()``),
    /// each with its suspension's token: resumed by the same transitions that release
    /// `held`, or one alone when it is killed (invariant 4).
    private(set) var suspended: [(token: UInt64, waiter: Waiter)] = []
    /// Tokens of suspensions cancelled (their process killed) when they were not kept: before
    /// their ``suspend(_:token:)``, which then keeps nothing, or after their resumption, until
    /// the sender forgets them (``forgetCancelled(_:)``).
    private var cancelledTokens: Set<UInt64> = []
    /// SwiftNIO's queue has passed its high water mark and not yet drained to the low one
    /// (the channel's writability as the handler last saw it: kept here so that a send never
    /// touches the channel object the loop works on).
    private var nioBusy = false
    /// `Configuration.bufferBusyLimit` in bytes, 0 for none.
    let busyLimit: Int

    init(buffer: ByteBuffer, busyLimit: Int) {
        self.buffer = buffer
        self.busyLimit = busyLimit
    }

    /// Busy: our buffer has reached the limit, or SwiftNIO's queue has.
    var isBusy: Bool { busyLimit > 0 && (buffer.readableBytes + pendingBytes >= busyLimit || nioBusy) }

    // MARK: Coming up

    /// A handshake for this node starts; it becomes the owner (a simultaneous connect the
    /// peer wins takes over from our dial, as net_kernel's `remarked`). Returns its id.
    @discardableResult
    mutating func attemptStarted() -> Int {
        attempts += 1
        lastAttempt += 1
        owner = lastAttempt
        return lastAttempt
    }

    /// dist_util's `is_pending`: whether attempt `id` still owns a connection that is
    /// connecting. An attempt that no longer does gives up (another one took over, or came
    /// up, or the connection closed), and answers `false` to a peer's `alive`.
    func isPending(_ id: Int) -> Bool { phase == .connecting && owner == id }

    /// A handshake for this node failed. True when the connection must now close: it was
    /// still connecting and no other attempt is left (invariant 3).
    mutating func attemptFailed() -> Bool {
        attempts -= 1
        return attempts <= 0 && phase == .connecting
    }

    /// The handshake on `channel` completed. Returns the waiters to resume, or nil if the
    /// connection is no longer connecting (another attempt won, or it closed): then this
    /// channel is not used. `distHeader`: both nodes set DFLAG_DIST_HDR_ATOM_CACHE, so every
    /// frame from now on starts with a distribution header (erts refuses a pass-through one).
    mutating func attach(_ channel: any NIOCore.Channel, peer: PeerInfo, distHeader: Bool = false) -> [Waiter]? {
        guard phase == .connecting else { return nil }
        phase = .up
        self.distHeader = distHeader
        for f in pending { f.bytes.withUnsafeBytes { _ = write($0, refs: nil, messageAt: f.messageAt) } }
        pending = []
        pendingBytes = 0
        self.channel = channel
        self.peer = peer
        upSince = MonotonicClock.now
        address = channel.remoteAddress.map { a in a.ipAddress.map { "\($0):\(a.port ?? 0)" } ?? "\(a)" }
        attempts -= 1
        defer { waiters = [] }
        return waiters
    }

    /// What a caller waiting for the connection learns now.
    enum Wait { case up, closed, queued }

    /// A caller waits for the connection: answered at once when it is up or closed,
    /// otherwise `waiter` is kept until ``attach(_:peer:)`` or ``close()``.
    mutating func wait(_ waiter: Waiter) -> Wait {
        switch phase {
        case .up: return .up
        case .closed: return .closed
        case .connecting:
            waiters.append(waiter)
            return .queued
        }
    }

    /// The net ticker started after ``attach(_:peer:)``. Returns it back when the connection
    /// closed in the meantime, to be cancelled (invariant 5).
    mutating func tickerStarted(_ task: RepeatedTask) -> RepeatedTask? {
        guard phase == .up else { return task }
        ticker = task
        return nil
    }

    // MARK: Sending

    /// What a sender does after ``enqueue(_:mayHold:held:)``.
    enum Enqueued {
        /// Nothing: queued for a flush already scheduled (or for the one after the
        /// handshake), or dropped because the connection is closed.
        case nothing
        /// Schedule the one flush on the channel's event loop.
        case scheduleFlush(any NIOCore.Channel)
        /// Write now: the sender runs on the channel's own event loop and has queued a lot.
        case flushNow
        /// The connection is busy: park on this parker, then try again.
        case hold(Parker)
    }

    /// Queues one frame, or, when the connection is busy and the sender `mayHold`, holds the
    /// sender instead (busy_dist_port). Erlang checks for busy before it queues, so one
    /// message larger than the limit still goes when the queue is short. `held` is the
    /// sender's parker from an earlier round, reused.
    ///
    /// `bytes` is the frame after its header: encoded with `refs` (the frame's atoms, named
    /// by index in its terms) when the sender saw the distribution header negotiated,
    /// otherwise as a pass-through frame's `Control [131 Message]`, with the message's
    /// version byte at `messageAt`.
    mutating func enqueue(_ bytes: UnsafeRawBufferPointer, refs: AtomRefs? = nil, messageAt: Int? = nil,
                          mayHold: Bool, held parker: inout Parker?) -> Enqueued {
        guard phase != .closed else { return .nothing }
        if mayHold, isBusy, let p = parker ?? Self.parkerIfMayBlock() {
            parker = p
            held.append(p)
            return .hold(p)
        }
        framesOut &+= 1
        // While connecting, the flush that follows the handshake writes what is queued.
        guard phase == .up, let ch = channel else {
            // Only an up connection has told its senders to use references (refs is nil).
            pending.append((Array(bytes), messageAt))
            pendingBytes &+= bytes.count
            bytesOut &+= bytes.count &+ 6
            return .nothing
        }
        bytesOut &+= write(bytes, refs: refs, messageAt: messageAt)
        wroteSinceTick = true
        // A burst from a process running on this connection's own event loop (woken there
        // by a read): a scheduled flush cannot run until it returns, so write as it goes.
        // A scheduled flush, if any, stays so.
        if buffer.readableBytes >= Self.inlineFlushBytes, ch.eventLoop.inEventLoop { return .flushNow }
        // The common case touches neither the channel nor its loop (their reference counts
        // are the loop thread's: sharing them costs cache-line transfers on every send).
        if flushScheduled { return .nothing }
        flushScheduled = true
        return .scheduleFlush(ch)
    }

    /// Writes one frame into `buffer` with the header the connection uses; returns its size
    /// with its length. Pass-through: `Len 112 131 Control [131 Message]`. Distribution
    /// header: `Len 131 68 N Flags Refs Control [Message]`, the message without its version
    /// byte (a frame encoded as pass-through loses it here, and lists no atoms).
    private mutating func write(_ bytes: UnsafeRawBufferPointer, refs: AtomRefs?, messageAt: Int?) -> Int {
        guard distHeader else {
            // References are only made once the header is negotiated, which stays so.
            guard refs == nil else { return 0 }
            buffer.writeInteger(UInt32(bytes.count + 2))
            buffer.writeInteger(UInt16(112 << 8 | 131))
            buffer.writeBytes(bytes)
            return bytes.count &+ 6
        }
        if let refs {
            // The header is assembled in stack scratch (writing to `buffer` from the cache's
            // callback would be a second access to `self`), then copied in once.
            let plan = atomsOut.plan(refs)
            buffer.writeInteger(UInt32(plan.size + bytes.count))
            withUnsafeTemporaryAllocation(byteCount: plan.size, alignment: 1) { scratch in
                var at = 0
                atomsOut.write(refs, plan) { piece in
                    guard let from = piece.baseAddress, piece.count > 0 else { return }
                    scratch.baseAddress!.advanced(by: at).copyMemory(from: from, byteCount: piece.count)
                    at += piece.count
                }
                buffer.writeBytes(UnsafeRawBufferPointer(scratch))
            }
            buffer.writeBytes(bytes)
            return plan.size &+ bytes.count &+ 4
        }
        let dropped = messageAt == nil ? 0 : 1
        buffer.writeInteger(UInt32(3 + bytes.count - dropped))
        buffer.writeInteger(UInt16(131 << 8 | 68))
        buffer.writeInteger(UInt8(0))
        if let m = messageAt {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[..<m]))
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[(m + 1)...]))
        } else {
            buffer.writeBytes(bytes)
        }
        return 3 &+ bytes.count &- dropped &+ 4
    }

    /// How much a sender on the connection's own event loop queues before writing it itself.
    static var inlineFlushBytes: Int { 64 << 10 }

    /// A fresh parker if the calling thread may be held while the connection is busy; nil on
    /// an event loop thread, where holding could stop the I/O that would release it.
    private static func parkerIfMayBlock() -> Parker? {
        MultiThreadedEventLoopGroup.currentEventLoop == nil ? Parker() : nil
    }

    /// A held sender whose timed park ran out takes itself off the list (invariant 4).
    /// True if it was still there.
    mutating func forget(_ parker: Parker) -> Bool {
        guard let i = held.firstIndex(where: { $0 === parker }) else { return false }
        held.remove(at: i)
        return true
    }

    /// Takes everything queued for one write, with the channel to write it to; nil when
    /// there is nothing to write or the connection is not up. `scheduled`: this is the
    /// scheduled flush (a sender's own flush leaves that one in place).
    mutating func takeForFlush(scheduled: Bool) -> (ByteBuffer, any NIOCore.Channel)? {
        if scheduled { flushScheduled = false }
        guard phase == .up, let ch = channel, buffer.readableBytes > 0 else { return nil }
        var fresh = ch.allocator.buffer(capacity: 4096)
        swap(&fresh, &buffer)
        return (fresh, ch)
    }

    /// The channel's writability changed: SwiftNIO's queue passed its high water mark or
    /// drained to the low one.
    mutating func writabilityChanged(_ writable: Bool) { nioBusy = !writable }

    /// The held senders to unpark, now that the connection is no longer busy or is closed.
    mutating func releasable() -> [Parker] {
        guard phase == .closed || !isBusy, !held.isEmpty else { return [] }
        defer { held = [] }
        return held
    }

    /// A process waits for the connection to stop being busy before it sends (a send that
    /// suspends instead of holding its thread, as the BEAM suspends a process that sends to
    /// a busy distribution port). False, and nothing kept, when it is not busy or is closed:
    /// the caller goes on at once; also when this suspension (`token`) was cancelled
    /// already. Otherwise `waiter` is kept until ``resumable()``, ``close()`` or
    /// ``cancelSuspended(_:)`` hands it back (invariant 4).
    mutating func suspend(_ waiter: Waiter, token: UInt64) -> Bool {
        if cancelledTokens.remove(token) != nil { return false }
        guard phase != .closed, isBusy else { return false }
        suspended.append((token, waiter))
        return true
    }

    /// The suspended processes to resume, now that the connection is no longer busy.
    mutating func resumable() -> [Waiter] {
        guard phase == .closed || !isBusy, !suspended.isEmpty else { return [] }
        defer { suspended = [] }
        return suspended.map(\.waiter)
    }

    /// The process suspended as `token` was killed (its task cancelled): its waiter, to
    /// resume at once, if it is kept; otherwise nil, and the token is noted, so that a
    /// ``suspend(_:token:)`` still to come keeps nothing (Erlang: `exit(Pid, kill)` ends a
    /// process suspended on a busy port at once).
    mutating func cancelSuspended(_ token: UInt64) -> Waiter? {
        if let i = suspended.firstIndex(where: { $0.token == token }) { return suspended.remove(at: i).waiter }
        cancelledTokens.insert(token)
        return nil
    }

    /// The sender of a cancelled suspension is past the point where its cancellation could
    /// come: its token, if noted, is dropped.
    mutating func forgetCancelled(_ token: UInt64) { cancelledTokens.remove(token) }

    // MARK: Net ticks

    /// What one net tick does.
    enum Tick { case nothing, sendTick(any NIOCore.Channel), timedOut(any NIOCore.Channel) }

    /// Net tick: write something every TickTime/4, and give up on a peer silent for four
    /// periods (kernel app docs, net_ticktime). `heard`: something was read since the last
    /// tick.
    mutating func tick(heard: Bool) -> Tick {
        guard phase == .up, let ch = channel else { return .nothing }
        silentTicks = heard ? 0 : silentTicks + 1
        if silentTicks >= 4 { return .timedOut(ch) }
        let send = !wroteSinceTick
        wroteSinceTick = false
        return send ? .sendTick(ch) : .nothing
    }

    /// Queues the 4-byte zero tick, unless frames are queued (they go first, and a tick
    /// carries no data anyway).
    mutating func queueTick() {
        if buffer.readableBytes == 0 { buffer.writeInteger(UInt32(0)) }
    }

    // MARK: Closing

    /// What closing leaves to do outside the lock.
    struct Closed {
        let channel: (any NIOCore.Channel)?
        let waiters: [Waiter]
        let ticker: RepeatedTask?
        let held: [Parker]
        let suspended: [Waiter]
        /// It had come up (a peer was known): watchers get nodedown.
        let wasUp: Bool
    }

    /// Closes: drops what is queued and returns what to release. Nil if it was closed
    /// already (invariant 1).
    mutating func close() -> Closed? {
        guard phase != .closed else { return nil }
        let wasUp = phase == .up
        phase = .closed
        buffer.clear()
        pending = []
        pendingBytes = 0
        defer {
            waiters = []
            held = []
            suspended = []
            ticker = nil
            channel = nil
        }
        return Closed(channel: channel, waiters: waiters, ticker: ticker, held: held, suspended: suspended.map(\.waiter), wasUp: wasUp)
    }

    // MARK: Simultaneous connects

    /// How to answer a node that connects to us while we already have a connection to it
    /// in `existing` (dist_util's status, as net_kernel decides).
    enum Accept: Equatable {
        /// A simultaneous connect the peer loses: its name is the smaller; our dial goes on.
        case refuse
        /// A simultaneous connect the peer wins: its attempt joins our connection.
        case joinSimultaneous
        /// The peer dials while we think the old connection lives: it has probably
        /// restarted. A new connection replaces the old one once it has proved the cookie,
        /// so an unauthenticated client cannot knock a live node off.
        case replaceOnceProven
        /// No connection (or a closed one): a new one.
        case fresh
    }

    static func accept(existing: Phase?, localName: String, remoteName: String) -> Accept {
        switch existing {
        case .connecting: return localName > remoteName ? .refuse : .joinSimultaneous
        case .up: return .replaceOnceProven
        case .closed, nil: return .fresh
        }
    }
}
