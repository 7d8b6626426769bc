import DequeModule

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
@usableFromInline
struct ChannelBuffer<Element> {
    @usableFromInline
    let policy: BufferPolicy
    @usableFromInline
    let capacity: Int
    @usableFromInline var items: Deque<Element>
    /// The promise buffer's value, once delivered.
    @usableFromInline var promised: Element?

    @usableFromInline
    init(_ policy: BufferPolicy) {
        self.policy = policy
        switch policy {
        case .unbuffered, .promise: capacity = 0
        case .fixed(let n), .sliding(let n), .dropping(let n): capacity = n
        }
        items = Deque(minimumCapacity: min(capacity, 1024))
    }

    /// Whether a send must wait (only a fixed buffer ever is).
    @inlinable
    var isFull: Bool {
        if case .fixed = policy { return items.count >= capacity }
        return false
    }

    @inlinable
    var count: Int {
        if case .promise = policy { return promised == nil ? 0 : 1 }
        return items.count
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
            items.append(value)
            return nil
        case .dropping:
            if items.count >= capacity { return value }
            items.append(value)
            return nil
        case .sliding:
            items.append(value)
            if items.count > capacity { return items.removeFirst() }
            return nil
        case .promise:
            if promised == nil { promised = value; return nil }
            return value
        }
    }

    /// Takes the next value (a promise buffer keeps its value).
    @inlinable
    mutating func remove() -> Element {
        if case .promise = policy { return promised! }
        return items.removeFirst()
    }
}
