/// A first-in, first-out queue of messages in linked chunks: a mailbox's `incoming` side,
/// and the part of the owner's queue it has not scanned yet.
///
/// Appending never moves what is queued: a full chunk links a new one (twice the size of the
/// last, up to 256 messages). A `Deque` that grows copies all it holds, and a sender that
/// grows a mailbox does so under the mailbox's lock, so a mailbox millions deep (fan-in's
/// consumer) stalled every other sender for milliseconds, and kept the grown buffer after.
/// Moving a whole queue into another (``append(contentsOf:)-(MessageQueue)``) links chunks
/// in O(1), so the owner takes its arrived messages under the lock in constant time.
///
/// A queue that empties keeps its last chunk as a spare, so a mailbox that holds a few
/// messages at a time (ping-pong, a call) allocates nothing per message: the spare and the
/// arrived chunk change places at each refill.
///
/// Not copy-on-write: a copy shares the chunks. Each queue has one owner that mutates it
/// (the mailbox under its lock, or the process that owns the saved queue); a copy is only read.
///
/// ```swift
/// var q = MessageQueue()
/// q.append("a"); q.append("b")
/// q.removeFirst()   // "a"
/// ```
struct MessageQueue: Sequence {
    /// The oldest chunk; its header also holds the queue's count and last chunk (one word
    /// in the mailbox, which is in every process object). Nil until the first append, and
    /// after ``removeAll()``; an emptied queue keeps it as the spare.
    private var head: MessageChunk? = nil

    init() {}

    // unsafelyUnwrapped, here and below: `head` is set whenever the queue is not empty, and
    // each use is behind that check or a caller's precondition that it is not empty. Reads
    // and writes go through `head` in place (no local copy of the reference: no retain).

    var count: Int { head == nil ? 0 : head.unsafelyUnwrapped.count }
    var isEmpty: Bool { count == 0 }

    /// The size of a queue's first chunk and the largest chunk.
    static let firstChunk = 1
    static let largestChunk = 256

    mutating func append(_ message: any Sendable) {
        guard head != nil else {
            let c = MessageChunk.make(capacity: Self.firstChunk)
            c.append(message)
            c.last = Unmanaged.passUnretained(c)
            c.count = 1
            head = c
            return
        }
        let t = head.unsafelyUnwrapped.last
        let appended = t._withUnsafeGuaranteedRef { c -> Bool in
            if c.hasRoom {
                c.append(message)
                return true
            }
            if c.isEmpty {
                // The spare: the only chunk, emptied. Start it over.
                c.reset()
                c.append(message)
                return true
            }
            return false
        }
        if !appended {
            let size = t._withUnsafeGuaranteedRef { $0.size }
            let c = MessageChunk.make(capacity: Swift.min(size &* 2, Self.largestChunk))
            c.append(message)
            t._withUnsafeGuaranteedRef { $0.next = c }
            head.unsafelyUnwrapped.last = Unmanaged.passUnretained(c)
        }
        head.unsafelyUnwrapped.count &+= 1
    }

    mutating func append(contentsOf messages: [any Sendable]) {
        for m in messages { append(m) }
    }

    /// Moves every message of `other` to the end of this queue, in order, leaving `other`
    /// empty. Constant time: chunks are linked, not copied. An empty queue takes `other`'s
    /// chunks and gives it its spare.
    mutating func append(contentsOf other: inout MessageQueue) {
        if other.isEmpty { return }
        if isEmpty {
            swap(&self, &other)
            return
        }
        let h = head.unsafelyUnwrapped, o = other.head.unsafelyUnwrapped
        h.last._withUnsafeGuaranteedRef { $0.next = o }
        h.last = o.last
        h.count &+= o.count
        other = MessageQueue()
    }

    /// Calls `body` with the oldest message in place (no copy of it is made for the call);
    /// nil if the queue is empty.
    @inline(__always)
    func withFirst<R>(_ body: (any Sendable) throws -> R) rethrows -> R? {
        isEmpty ? nil : try head.unsafelyUnwrapped.withFirst(body)
    }

    /// Removes the oldest message and releases it. The queue must not be empty.
    mutating func dropFirst() {
        head.unsafelyUnwrapped.dropFirst()
        afterRemoval()
    }

    /// Removes and returns the oldest message. The queue must not be empty.
    @discardableResult
    mutating func removeFirst() -> any Sendable {
        let m = head.unsafelyUnwrapped.removeFirst()
        afterRemoval()
        return m
    }

    /// Counts a removal. A head chunk it emptied goes, and the next one becomes the head
    /// (taking over the count and the last chunk), unless it is the last: that one is kept
    /// as the spare.
    @inline(__always)
    private mutating func afterRemoval() {
        head.unsafelyUnwrapped.count &-= 1
        guard head.unsafelyUnwrapped.isEmpty else { return }
        if let next = head.unsafelyUnwrapped.next {
            next.count = head.unsafelyUnwrapped.count
            next.last = head.unsafelyUnwrapped.last
            head.unsafelyUnwrapped.next = nil
            head = next
        } else {
            head.unsafelyUnwrapped.reset()   // kept as the spare
        }
    }

    /// Drops every message (and the chunks; no spare is kept).
    mutating func removeAll() {
        self = MessageQueue()
    }

    /// The first `n` messages, oldest first.
    func prefix(_ n: Int) -> [any Sendable] {
        var out: [any Sendable] = []
        out.reserveCapacity(Swift.min(n, count))
        for m in self {
            if out.count >= n { break }
            out.append(m)
        }
        return out
    }

    func makeIterator() -> Iterator { Iterator(chunk: isEmpty ? nil : head) }

    struct Iterator: IteratorProtocol {
        var chunk: MessageChunk?
        var index = -1

        mutating func next() -> (any Sendable)? {
            while let c = chunk {
                if index < 0 { index = c.start }
                if index < c.end {
                    defer { index += 1 }
                    return c.element(at: index)
                }
                chunk = c.next
                index = -1
            }
            return nil
        }
    }
}

/// One chunk of a ``MessageQueue``: a header and room for `capacity` messages in one
/// allocation; the live messages are those at `start..<end`.
final class MessageChunk: ManagedBuffer<MessageChunk.Header, any Sendable> {
    // 32-bit positions (a chunk holds at most `MessageQueue.largestChunk` messages). `last`
    // and `count` are the queue's, kept in its head chunk only (stale in the others).
    struct Header {
        var start: Int32
        var end: Int32
        let capacity: Int32
        var next: MessageChunk?
        // Unmanaged: the chain from the head chunk holds every chunk strongly, `last`
        // included, and MessageQueue changes both together; appending through it takes no
        // retain and no release.
        var last: Unmanaged<MessageChunk>
        var count: Int
    }

    static func make(capacity: Int) -> MessageChunk {
        let b = create(minimumCapacity: capacity) { b in
            // `last` starts as the chunk itself (its queue sets it when it links the chunk).
            Header(start: 0, end: 0, capacity: Int32(capacity), next: nil,
                   last: Unmanaged.passUnretained(unsafeDowncast(b, to: MessageChunk.self)), count: 0)
        }
        // `create` on this subclass makes an instance of it; the downcast cannot fail.
        return unsafeDowncast(b, to: MessageChunk.self)
    }

    // Every access goes through the buffer's pointers: `header` as a class property would
    // pay a dynamic exclusivity check (swift_beginAccess) on each read and write. The
    // chunk's one owner (see MessageQueue) orders every access.

    /// The requested capacity (ManagedBuffer's `capacity` asks the allocator on every read).
    @inline(__always) var size: Int { withUnsafeMutablePointerToHeader { Int($0.pointee.capacity) } }
    @inline(__always) var hasRoom: Bool { withUnsafeMutablePointerToHeader { $0.pointee.end < $0.pointee.capacity } }
    @inline(__always) var isEmpty: Bool { withUnsafeMutablePointerToHeader { $0.pointee.start == $0.pointee.end } }
    @inline(__always) var start: Int { withUnsafeMutablePointerToHeader { Int($0.pointee.start) } }
    @inline(__always) var end: Int { withUnsafeMutablePointerToHeader { Int($0.pointee.end) } }
    @inline(__always) var last: Unmanaged<MessageChunk> {
        get { withUnsafeMutablePointerToHeader { $0.pointee.last } }
        set { withUnsafeMutablePointerToHeader { $0.pointee.last = newValue } }
    }
    @inline(__always) var count: Int {
        get { withUnsafeMutablePointerToHeader { $0.pointee.count } }
        set { withUnsafeMutablePointerToHeader { $0.pointee.count = newValue } }
    }
    @inline(__always) var next: MessageChunk? {
        get { withUnsafeMutablePointerToHeader { $0.pointee.next } }
        set { withUnsafeMutablePointerToHeader { $0.pointee.next = newValue } }
    }

    @inline(__always)
    func append(_ m: any Sendable) {
        withUnsafeMutablePointers { h, e in
            // In bounds: the caller checked `hasRoom`; the slot at `end` is uninitialised.
            (e + Int(h.pointee.end)).initialize(to: m)
            h.pointee.end &+= 1
        }
    }

    /// `body` gets the message at `start` in place: the pointer's addressor passes its
    /// address, so no copy is made for the call.
    @inline(__always)
    func withFirst<R>(_ body: (any Sendable) throws -> R) rethrows -> R {
        try withUnsafeMutablePointers { h, e in try body(e[Int(h.pointee.start)]) }
    }

    /// Releases the message at `start` in place (the queue checked it is not empty).
    @inline(__always)
    func dropFirst() {
        withUnsafeMutablePointers { h, e in
            (e + Int(h.pointee.start)).deinitialize(count: 1)
            h.pointee.start &+= 1
        }
    }

    @inline(__always)
    func element(at i: Int) -> any Sendable {
        withUnsafeMutablePointerToElements { $0[i] }
    }

    @inline(__always)
    func removeFirst() -> any Sendable {
        withUnsafeMutablePointers { h, e in
            // `start < end` (the queue checked it is not empty): that slot is initialised, and
            // moving it out leaves it uninitialised, outside `start..<end`.
            let m = (e + Int(h.pointee.start)).move()
            h.pointee.start &+= 1
            return m
        }
    }

    /// An emptied chunk starts over (only when `start == end`: nothing is initialised).
    @inline(__always)
    func reset() {
        withUnsafeMutablePointerToHeader {
            $0.pointee.start = 0
            $0.pointee.end = 0
        }
    }

    deinit {
        // Only `start..<end` is initialised. A long chain is released iteratively, not by
        // each chunk's deinit releasing the next (which would recurse once per chunk).
        withUnsafeMutablePointers { h, e in
            (e + Int(h.pointee.start)).deinitialize(count: Int(h.pointee.end - h.pointee.start))
            var next = h.pointee.next
            h.pointee.next = nil
            while var c = next {
                next = nil
                // Shared (a reader's copy of the queue): that holder releases the rest.
                guard isKnownUniquelyReferenced(&c) else { break }
                next = c.next
                c.next = nil
            }   // `c` goes here, with no chain behind it
        }
    }
}
