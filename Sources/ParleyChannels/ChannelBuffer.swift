/// How a channel buffers values: core.async's buffers, as small values plugged into the one
/// channel algorithm (``Chan``).
///
/// ```swift
/// let rendezvous = Channel<Int>()                    // unbuffered: a send waits for a receiver
/// let queue = Channel<Int>(buffer: .fixed(64))       // sends wait only when 64 are buffered
/// let latest = Channel<Int>(buffer: .sliding(1))     // never waits; keeps the newest value
/// let first = Channel<Int>(buffer: .dropping(8))     // never waits; keeps the oldest 8
/// let answer = Channel<Int>(buffer: .promise)        // the first value, to every receiver, forever
/// ```
public enum BufferPolicy: Sendable, Hashable, CustomStringConvertible {
    /// No buffer: a send completes only when a receiver takes the value (core.async `(chan)`, Go `make(chan T)`).
    case unbuffered
    /// Up to `n` values; a send waits while it is full (core.async `(chan n)`, `buffer`).
    case fixed(Int)
    /// Up to `n` values; a send into a full buffer drops the *oldest* value and never waits (`sliding-buffer`).
    case sliding(Int)
    /// Up to `n` values; a send into a full buffer drops the *new* value and never waits (`dropping-buffer`).
    case dropping(Int)
    /// Holds the first value sent, gives it to every receiver, and ignores later sends (`promise-chan`).
    case promise

    public var description: String {
        switch self {
        case .unbuffered: "unbuffered"
        case .fixed(let n): "fixed(\(n))"
        case .sliding(let n): "sliding(\(n))"
        case .dropping(let n): "dropping(\(n))"
        case .promise: "promise"
        }
    }

    /// Whether a send into this buffer never has to wait (core.async's `unblocking-buffer?`).
    public var neverBlocks: Bool {
        switch self {
        case .sliding, .dropping, .promise: true
        case .unbuffered, .fixed: false
        }
    }
}

/// A buffer's storage and its policy: core.async's `Buffer` protocol (`full?`, `add!`,
/// `remove!`, `count`) as one struct, so that the channel code stays monomorphic.
///
/// The values are a ring of slots the buffer owns (not a `Deque`): its head and count live
/// inline in the channel object, on the cache line of the channel's lock, so a send or a
/// receive on a buffered channel moves no other line between the two threads (a `Deque`'s
/// count and start live in its own heap header, which both sides wrote on every value).
/// The ring starts at no more than 1024 slots and doubles up to the capacity, so a large
/// buffer costs memory only once it fills. The channel releases the ring in its `deinit`
/// (``release()``): the struct is stored in exactly one place, the channel's state, and is
/// never copied out and mutated.
@usableFromInline
struct ChannelBuffer<Element> {
    /// Index of the oldest value, in 0...mask.
    @usableFromInline var head = 0
    /// Values in the ring.
    @usableFromInline var items = 0
    /// Slot count minus one; the slot count is a power of two (0 slots: mask is -1).
    @usableFromInline var mask = -1
    // Unsafe: the ring's slots, `mask + 1` of them, of which exactly the `items` from `head`
    // (wrapping) are initialized; owned by this buffer alone and freed by `release()`.
    @usableFromInline var slots: UnsafeMutablePointer<Element>? = nil
    @usableFromInline
    let policy: BufferPolicy
    @usableFromInline
    let capacity: Int
    /// Whether `policy` is `.fixed`, the one policy under which a send waits. Stored rather
    /// than matched from `policy` in ``isFull`` on each send: matching the enum there made
    /// chan-spsc 2 % slower (interleaved, six runs each).
    @usableFromInline let waitsWhenFull: Bool
    /// The promise buffer's value, once delivered.
    @usableFromInline var promised: Element?

    @usableFromInline
    init(_ policy: BufferPolicy) {
        self.policy = policy
        switch policy {
        case .unbuffered, .promise: capacity = 0
        case .fixed(let n), .sliding(let n), .dropping(let n): capacity = n
        }
        if case .fixed = policy { waitsWhenFull = true } else { waitsWhenFull = false }
        if capacity > 0 { grow(to: min(capacity, 1024)) }
    }

    /// Frees the ring and the values in it. Called once, by the channel's `deinit`.
    @usableFromInline
    mutating func release() {
        guard let slots else { return }
        while items > 0 { _ = removeFirstFromRing() }
        slots.deallocate()
        self.slots = nil
        promised = nil
    }

    /// Whether a send must wait (only a fixed buffer ever is).
    @inlinable
    var isFull: Bool { waitsWhenFull && items >= capacity }

    @inlinable
    var count: Int {
        if case .promise = policy { return promised == nil ? 0 : 1 }
        return items
    }

    @inlinable
    var isEmpty: Bool { count == 0 }

    /// Adds a value; returns a value the policy dropped (the new one for dropping, the
    /// oldest for sliding, a later one for promise), which the channel reports as undelivered.
    @inlinable
    mutating func add(_ value: Element) -> Element? {
        switch policy {
        case .unbuffered:
            preconditionFailure("Parley: add to an unbuffered channel's buffer")
        case .fixed:
            appendToRing(value)
            return nil
        case .dropping:
            if items >= capacity { return value }
            appendToRing(value)
            return nil
        case .sliding:
            // The oldest goes first, so the ring never holds more than `capacity`.
            let dropped = items >= capacity ? removeFirstFromRing() : nil
            appendToRing(value)
            return dropped
        case .promise:
            if promised == nil { promised = value; return nil }
            return value
        }
    }

    /// Takes the next value (a promise buffer keeps its value).
    @inlinable
    mutating func remove() -> Element {
        if case .promise = policy { return promised! }
        return removeFirstFromRing()
    }

    @inlinable
    mutating func appendToRing(_ value: Element) {
        if items > mask { grow(to: items + 1) }
        (slots.unsafelyUnwrapped + ((head &+ items) & mask)).initialize(to: value)
        items &+= 1
    }

    @inlinable
    mutating func removeFirstFromRing() -> Element {
        precondition(items > 0, "Parley: remove from an empty channel buffer")
        let v = (slots.unsafelyUnwrapped + head).move()
        head = (head &+ 1) & mask
        items &-= 1
        return v
    }

    /// Reallocates the ring with room for at least `needed` values (a power of two), moving
    /// the values to the front of the new ring.
    @usableFromInline
    mutating func grow(to needed: Int) {
        var size = 1
        while size < needed { size &*= 2 }
        let fresh = UnsafeMutablePointer<Element>.allocate(capacity: size)
        if let old = slots {
            let firstRun = min(items, mask + 1 - head)
            fresh.moveInitialize(from: old + head, count: firstRun)
            if items > firstRun { (fresh + firstRun).moveInitialize(from: old, count: items - firstRun) }
            old.deallocate()
        }
        slots = fresh
        head = 0
        mask = size - 1
    }
}
