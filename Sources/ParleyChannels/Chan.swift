import DequeModule
import ParleyRuntime
import Synchronization

/// A channel whose values are all of one type: the common case. See ``Chan`` for the API.
///
/// ```swift
/// let ch = Channel<String>()                     // unbuffered
/// go { try await ch.send("hi") }
/// print(try await ch.receive() ?? "closed")      // "hi"
/// ```
///
/// SwiftNIO has a `Channel` protocol too. In a file that imports NIOCore beside Parley,
/// write `Parley.Channel<String>` (or ``Chan``, which NIO does not have), or put
/// `typealias Channel = Parley.Channel` in one file of your module so that `Channel` means
/// Parley's there and NIO's is `NIOCore.Channel`.
public typealias Channel<Element: Sendable> = Chan<Element, Element>

/// A core.async/Go channel: a queue that processes, Swift tasks, threads and callbacks use
/// to hand values to each other, with a buffer policy (``BufferPolicy``) and, optionally, a
/// transform (``Transducer``) applied to the values sent, so that `Input` (what is sent)
/// may differ from `Output` (what is received). ``Channel`` is `Chan<Element, Element>`.
///
/// The whole algorithm is in this file (as Go's is in `chan.go` and core.async's in
/// `channels.clj`). Invariants, under `lock`:
/// - receivers wait (`takers`) only while nothing can be taken: the buffer is empty and no
///   sender waits;
/// - senders wait (`putters`) only while their value cannot be placed: no buffer (no
///   receiver waits) or a full fixed buffer;
/// - queued cells whose waiter completed elsewhere (a select's losing case, a cancelled or
///   timed-out wait) are dead; they are skipped and purged lazily, and never count toward the
///   pending limit.
///
/// Closing follows core.async: later sends are refused (`send` returns `false`); buffered
/// values and sends already waiting can still be received; after those, receivers get `nil`.
///
/// ```swift
/// let jobs = Channel<Int>(buffer: .fixed(100))
/// for i in 0..<10 { try await jobs.send(i) }
/// jobs.close()
/// for try await job in jobs { print(job) }       // 0 ... 9, then the loop ends
/// ```
public final class Chan<Input: Sendable, Output: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `state` is only read or written between `lock.lockPatiently()` and
    // `lock.unlock()`; `readyHint` is an Atomic; the rest is immutable after init.

    /// The most senders, and separately the most receivers, that may wait on one channel
    /// (core.async's `MAX-QUEUE-SIZE`). One more gives ``ChannelError/tooManyPending(limit:)``.
    public static var pendingLimit: Int { 1024 }

    @usableFromInline
    struct State {
        @usableFromInline var buffer: ChannelBuffer<Output>?
        @usableFromInline var takers = Deque<Cell<Output>>()
        @usableFromInline var putters = Deque<Cell<Input>>()
        @usableFromInline var closed = false
        /// The transform's completion ran (core.async flushes once, on close).
        @usableFromInline var completed = false
        @usableFromInline init(buffer: ChannelBuffer<Output>?) { self.buffer = buffer }

        /// Waiting senders and receivers, dead cells left out.
        var pending: (sends: Int, receives: Int) {
            (putters.reduce(0) { $0 + ($1.owner.isWaiting ? 1 : 0) },
             takers.reduce(0) { $0 + ($1.owner.isWaiting ? 1 : 0) })
        }
    }

    // Layout: the hint, the lock and the buffer's ring indices (State's first fields) are
    // declared first, so that the fields a buffered send or receive writes share the lock's
    // cache line and one line moves between a producer's and a consumer's core per value.
    /// Buffered values plus waiting senders plus one if closed, stored under the lock and
    /// read without it by a select's first pass to skip channels that cannot be ready.
    @usableFromInline let readyHint = Atomic<Int>(0)
    @usableFromInline let lock = LockWord()
    @usableFromInline @exclusivity(unchecked) var state: State
    @usableFromInline let stage: TransformStage<Input, Output>?
    @usableFromInline let undeliveredInput: (@Sendable (Input) -> Void)?
    @usableFromInline let undeliveredOutput: (@Sendable (Output) -> Void)?
    /// The buffer this channel was made with.
    public let buffer: BufferPolicy

    /// Makes a channel.
    ///
    /// - Parameters:
    ///   - buffer: how values are buffered; `.unbuffered` (the default) is a rendezvous.
    ///   - onUndelivered: called, outside any lock, with each value that will never reach a
    ///     receiver: sent after close, dropped by a sliding or dropping buffer or a promise
    ///     that already has its value, or held by a send that was cancelled (Kotlin's
    ///     `onUndeliveredElement`).
    ///
    /// ```swift
    /// let ticks = Channel<Int>(buffer: .sliding(1), onUndelivered: { print("dropped \($0)") })
    /// ```
    /// - Precondition: a `.fixed` size is 0 or more (0 is unbuffered); a `.sliding` or
    ///   `.dropping` size is 1 or more. A size outside these is a programmer error and traps,
    ///   as Go's `make(chan T, -1)` panics; check a size that comes from data first.
    public init(buffer: BufferPolicy = .unbuffered, onUndelivered: (@Sendable (Output) -> Void)? = nil) where Input == Output {
        let policy = Self.validated(buffer)
        self.buffer = policy
        self.state = State(buffer: policy == .unbuffered ? nil : ChannelBuffer(policy))
        self.stage = nil
        self.undeliveredInput = onUndelivered
        self.undeliveredOutput = onUndelivered
    }

    /// Makes a channel whose sent values pass through `transform` (core.async's
    /// `(chan buf xform ex-handler)`). A transform needs a buffer. If the transform throws,
    /// `onError` gives the value to put in the failed one's place, or `nil` for none (the
    /// default); the channel keeps working. When the transform finishes early (as `take(n)`
    /// does), the channel closes; when the channel closes, the transform's completion runs
    /// (``Transducer/partition(_:)`` sends its last, short group).
    ///
    /// ```swift
    /// let words = Chan(buffer: .fixed(8), transform: Transducer<Int, String>.map { "#\($0)" })
    /// try await words.send(7)
    /// print(try await words.receive()!)       // "#7"
    /// ```
    /// - Precondition: `buffer` is not `.unbuffered` (core.async: "buffer must be supplied
    ///   when transducer is"), and its size obeys ``init(buffer:onUndelivered:)``'s rule.
    public init(buffer: BufferPolicy, transform: Transducer<Input, Output>,
                onError: (@Sendable (any Error) -> Output?)? = nil,
                onUndelivered: (@Sendable (Input) -> Void)? = nil) {
        let policy = Self.validated(buffer)
        precondition(policy != .unbuffered, "Parley: a channel with a transform needs a buffer (core.async: \"buffer must be supplied when transducer is\")")
        self.buffer = policy
        self.state = State(buffer: ChannelBuffer(policy))
        self.stage = TransformStage(transform, onError: onError)
        self.undeliveredInput = onUndelivered
        self.undeliveredOutput = nil
    }

    deinit {
        // The buffer's ring is the channel's own memory (see ChannelBuffer).
        state.buffer?.release()
    }

    private static func validated(_ policy: BufferPolicy) -> BufferPolicy {
        switch policy {
        case .fixed(let n):
            precondition(n >= 0, "Parley: a buffer size cannot be negative (got \(n))")
            return n == 0 ? .unbuffered : policy
        case .sliding(let n), .dropping(let n):
            precondition(n > 0, "Parley: a \(policy) buffer needs a size of at least 1")
            return policy
        case .unbuffered, .promise:
            return policy
        }
    }

    // MARK: State queries

    /// Whether ``close()`` was called. Values may still be waiting to be received.
    public var isClosed: Bool { withLock { $0.closed } }

    /// The number of values in the buffer now (for a promise, 1 once it has its value).
    public var count: Int { withLock { $0.buffer?.count ?? 0 } }

    /// Senders and receivers waiting now, dead entries (losing select cases, cancelled waits)
    /// left out.
    public var pending: (sends: Int, receives: Int) { withLock { $0.pending } }

    @inlinable
    func withLock<R>(_ body: (inout State) -> R) -> R {
        lock.lockPatiently()
        defer { lock.unlock() }
        return body(&state)
    }

    // MARK: The algorithm (called with `lock` held)

    /// What a send or receive attempt did.
    @usableFromInline
    enum Outcome {
        /// Completed; for a receive, `value` is the value (nil: closed and drained). For a
        /// send, `value` is unused and `accepted` says whether the channel took it.
        case completed
        /// Closed: a send is refused; a receive gets nil.
        case closed
        /// Cannot complete now and no cell was given to queue.
        case wouldBlock
        /// The cell was queued; its waiter will be completed later.
        case queued
        /// The select this attempt belongs to was completed by another case meanwhile.
        case abandoned
        /// Queueing would exceed ``pendingLimit``.
        case tooMany
    }

    /// Side effects collected under the lock and performed after it is released.
    ///
    /// The references are held as `Unmanaged` (+1, taken back by ``perform(_:)``) so that an
    /// operation that wakes nobody, nearly every send and receive on a buffered channel,
    /// releases nothing: with plain optionals, each scope end called `swift_release` twice
    /// on nil (7–10 % of chan-spsc). Every `Effects` made is passed to `perform` on every
    /// path, which is what keeps the count balanced.
    @usableFromInline
    struct Effects {
        // Unmanaged: each non-nil reference holds one retain taken in `add`/`extra` and given
        // back exactly once by `perform`, which every creator of an Effects calls.
        @usableFromInline var wake: Unmanaged<Waiter>?
        /// Rare extras, allocated only when needed: more wakes (a close, a promise, a
        /// transform's burst) and values the hook must see.
        @usableFromInline var more: Unmanaged<More>?

        @usableFromInline
        final class More {
            @usableFromInline var wakes: [Waiter] = []
            @usableFromInline var droppedInputs: [Input] = []
            @usableFromInline var droppedOutputs: [Output] = []
            @usableFromInline init() {}
        }

        @inlinable init() { wake = nil; more = nil }

        @inlinable
        mutating func extra() -> More {
            if let m = more { return m.takeUnretainedValue() }
            let m = More()
            more = .passRetained(m)
            return m
        }

        @inlinable
        mutating func add(_ w: Waiter) {
            if wake == nil { wake = .passRetained(w) } else { extra().wakes.append(w) }
        }

        @inlinable mutating func dropped(_ v: Input) { extra().droppedInputs.append(v) }
        @inlinable mutating func dropped(output v: Output) { extra().droppedOutputs.append(v) }
    }

    @inlinable
    func perform(_ e: Effects) {
        if let w = e.wake { w.takeRetainedValue().signal() }
        if let m = e.more { performMore(m.takeRetainedValue()) }
    }

    @usableFromInline
    func performMore(_ m: Effects.More) {
        for w in m.wakes { w.signal() }
        if let hook = undeliveredInput { for v in m.droppedInputs { hook(v) } }
        if let hook = undeliveredOutput { for v in m.droppedOutputs { hook(v) } }
    }

    @inlinable
    func updateHint() {
        let buffered = state.buffer?.count ?? 0
        readyHint.store(buffered + state.putters.count + (state.closed ? 1 : 0), ordering: .relaxed)
    }

    /// Claims `other` for a completion by `active` (nil: an operation nobody else can see).
    @inlinable
    func claim(_ other: Waiter, active: Waiter?) -> Waiter.PairClaim {
        guard let active else { return other.claim() ? .claimed : .otherGone }
        return Waiter.claimPair(active, other)
    }

    /// A send of `value`. With `cell`, queue it if the value cannot be placed now; with
    /// `active`, the send is a case of that select, which must be claimed to complete.
    @inlinable
    func putLocked(_ value: Input, cell: Cell<Input>?, active: Waiter?, _ fx: inout Effects) -> Outcome {
        if state.closed { return .closed }
        if state.buffer != nil {
            if !state.buffer!.isFull {
                if let active, !active.claim() { return .abandoned }
                if stage == nil {
                    // No transform: Input is Output (the only initializer without one requires it).
                    let out = unsafeBitCast(value, to: Output.self)
                    if state.buffer!.isEmpty && state.buffer!.policy != .promise, let t = firstLiveTaker() {
                        deliver(out, claimedTaker: t, &fx)
                    } else {
                        if let dropped = state.buffer!.add(out) { fx.dropped(output: dropped) }
                        dispatchBuffered(&fx)
                    }
                } else {
                    addTransformed(value, &fx)
                }
                updateHint()
                return .completed
            }
            // A full fixed buffer: no receiver can be waiting.
        } else {
            // Unbuffered: hand the value to a waiting receiver.
            var i = 0
            while i < state.takers.count {
                let t = state.takers[i]
                if let active, t.group === active { i += 1; continue }   // never meet our own select
                switch claim(t.owner, active: active) {
                case .claimed:
                    state.takers.remove(at: i)
                    // Unbuffered means no transform, so Input is Output (see init).
                    deliver(unsafeBitCast(value, to: Output.self), claimedTaker: t, &fx)
                    return .completed
                case .otherGone:
                    state.takers.remove(at: i)
                case .selfGone:
                    return .abandoned
                }
            }
        }
        guard let cell else { return .wouldBlock }
        if !reserveRoom(&state.putters) { return .tooMany }
        state.putters.append(cell)
        updateHint()
        return .queued
    }

    /// A receive. Same conventions as `putLocked`; a completed receive stores its value in
    /// `result` (nil when closed and drained).
    @inlinable
    func takeLocked(cell: Cell<Output>?, active: Waiter?, result: inout Output?, _ fx: inout Effects) -> Outcome {
        if state.buffer != nil && !state.buffer!.isEmpty {
            if let active, !active.claim() { return .abandoned }
            result = state.buffer!.remove()
            refillFromPutters(&fx)
            updateHint()
            return .completed
        }
        var i = 0
        while i < state.putters.count {
            let p = state.putters[i]
            if let active, p.group === active { i += 1; continue }
            switch claim(p.owner, active: active) {
            case .claimed:
                state.putters.remove(at: i)
                // Senders wait with an empty buffer only on an unbuffered channel (no transform).
                result = unsafeBitCast(p.value!, to: Output.self)
                p.value = nil
                p.owner.winner = p.index
                fx.add(p.owner)
                if state.closed { completeIfDrained(&fx) }
                updateHint()
                return .completed
            case .otherGone:
                state.putters.remove(at: i)
            case .selfGone:
                return .abandoned
            }
        }
        if state.closed {
            if let active, !active.claim() { return .abandoned }
            result = nil
            return .closed
        }
        guard let cell else { return .wouldBlock }
        if !reserveRoom(&state.takers) { return .tooMany }
        state.takers.append(cell)
        return .queued
    }

    /// Closes the channel (core.async `close!`).
    @inlinable
    func closeLocked(_ fx: inout Effects) {
        if state.closed { return }
        state.closed = true
        if state.putters.isEmpty { completeTransform(&fx) }
        dispatchBuffered(&fx)
        // Whoever still waits to receive gets end-of-stream.
        while let t = state.takers.popFirst() {
            if t.owner.claim() {
                t.value = nil
                t.closed = true
                t.owner.winner = t.index
                fx.add(t.owner)
            }
        }
        updateHint()
    }

    /// The first taker whose waiter can be claimed (claimed on return), dead ones dropped.
    @inlinable
    func firstLiveTaker() -> Cell<Output>? {
        while let t = state.takers.first {
            state.takers.removeFirst()
            if t.owner.claim() { return t }
        }
        return nil
    }

    @inlinable
    func deliver(_ value: Output, claimedTaker t: Cell<Output>, _ fx: inout Effects) {
        t.value = value
        t.owner.winner = t.index
        fx.add(t.owner)
    }

    /// Hands buffered values to waiting receivers (a promise gives its value to all of them).
    @inlinable
    func dispatchBuffered(_ fx: inout Effects) {
        while !state.takers.isEmpty, let buffer = state.buffer, !buffer.isEmpty {
            guard let t = firstLiveTaker() else { break }
            deliver(state.buffer!.remove(), claimedTaker: t, &fx)
        }
    }

    /// After a receive made room: moves waiting senders' values into the buffer.
    @inlinable
    func refillFromPutters(_ fx: inout Effects) {
        while !state.putters.isEmpty && !state.buffer!.isFull {
            let p = state.putters.removeFirst()
            guard p.owner.claim() else { continue }
            let v = p.value!
            p.value = nil
            p.owner.winner = p.index
            fx.add(p.owner)
            if stage == nil {
                // No transform: Input is Output (the only initializer without one requires it).
                if let dropped = state.buffer!.add(unsafeBitCast(v, to: Output.self)) { fx.dropped(output: dropped) }
            } else {
                addTransformed(v, &fx)
            }
        }
        if state.closed { completeIfDrained(&fx) }
    }

    @inlinable
    func completeIfDrained(_ fx: inout Effects) {
        if state.putters.isEmpty && !state.completed { completeTransform(&fx); dispatchBuffered(&fx) }
    }

    /// Runs the transform on one sent value; what it produces goes into the buffer. A
    /// transform that finished (reduced) closes the channel, releasing waiting senders.
    @usableFromInline
    func addTransformed(_ value: Input, _ fx: inout Effects) {
        guard let stage else { return }
        let more = stage.step(value)
        for out in stage.drain() {
            if let dropped = state.buffer!.add(out) { fx.dropped(output: dropped) }
        }
        dispatchBuffered(&fx)
        if !more {
            // core.async's abort: waiting senders complete (their values are discarded), then close.
            while let p = state.putters.popFirst() {
                if p.owner.claim() {
                    if let v = p.value { fx.dropped(v) }
                    p.value = nil
                    p.owner.winner = p.index
                    fx.add(p.owner)
                }
            }
            closeLocked(&fx)
        }
    }

    @usableFromInline
    func completeTransform(_ fx: inout Effects) {
        guard !state.completed else { return }
        state.completed = true
        guard let stage else { return }
        stage.complete()
        for out in stage.drain() {
            if let dropped = state.buffer!.add(out) { fx.dropped(output: dropped) }
        }
    }

    /// Makes room for one more waiter in `queue`: drops dead cells from its front, and from
    /// everywhere once the limit is near. False if `pendingLimit` live waiters are queued.
    @inlinable
    func reserveRoom<V>(_ queue: inout Deque<Cell<V>>) -> Bool {
        while let f = queue.first, !f.owner.isWaiting { queue.removeFirst() }
        if queue.count >= 64 && queue.count & 63 == 0 || queue.count >= Self.pendingLimit {
            queue.removeAll { !$0.owner.isWaiting }
        }
        return queue.count < Self.pendingLimit
    }
}
