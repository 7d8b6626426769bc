import ParleyRuntime
import Synchronization

/// Where messages from other processes wait, in a process that asked for parallel sends
/// (``Process/enableParallelSend()``), before the mailbox's lock takes them in: eight
/// queues, each behind its own lock, chosen by the sender's identity. Senders that hash to
/// different queues never wait for one another, and only the first message into an empty
/// queue takes the mailbox's lock (to wake the owner if it waits); the owner moves every
/// queue into its mailbox under that lock, in constant time per queue, before any step that
/// reads the mailbox.
///
/// This is the BEAM's answer to many senders and one receiver: Erlang/OTP 25's "parallel
/// signal sending optimization" (erlang.org blog, 2021-11-05) splits the outer signal queue
/// of a process with `{message_queue_data, off_heap}` into buffers picked by the sender's
/// pid. Like it, it keeps exactly Erlang's ordering guarantee and no more: one sender's
/// messages always take the same queue, so they arrive in the order sent, and its exit
/// signal (which goes through the mailbox's lock, after the queues are drained) after them;
/// between different senders there is no order, not even a causal one (B sends to R, then
/// tells A, which sends to R: A's message may come first). Processes that do not ask keep
/// one queue, where such a chain arrives in order, as on the BEAM by default.
///
/// Made once, kept until the process object is freed: 512 bytes of queue lines and a
/// small object.
///
/// ```swift
/// let shards = ArrivalShards()
/// if shards.append("hello", from: 7) { /* first in its queue: take the mailbox lock, wake the owner */ }
/// shards.drain { queue in mailbox.absorb(&queue) }   // with the mailbox lock held
/// ```
final class ArrivalShards: @unchecked Sendable {
    // @unchecked Sendable: each queue is read and written only with its own lock held; the
    // mask is an Atomic; `base` is immutable after init.

    /// How many queues (a power of two).
    static let count = 8
    /// One lock (at offset 0) and its queue (at offset 8) per 64-byte line, so senders of
    /// different queues never write to one line. Lock and queue are reached through
    /// pointers of their own: a modifying access to a struct holding both would cover the
    /// lock's bytes too, and the thread sanitizer would report it against the lock's
    /// atomic operations on another thread.
    private static let stride = 64
    private static let queueOffset = 8

    /// Bit k is set while queue k holds messages. Set and cleared only with queue k's lock
    /// held; read without it to skip empty queues. Relaxed: what a reader does with a set bit
    /// is take queue k's lock, which orders the messages; and a sender that sets a bit then
    /// takes the mailbox's lock, whose release and acquire order the bit before any later
    /// drain (see ``ProcessCore``).
    let nonEmpty = Atomic<UInt32>(0)
    private let base: UnsafeMutableRawPointer

    init() {
        base = UnsafeMutableRawPointer.allocate(byteCount: Self.count * Self.stride, alignment: Self.stride)
        for k in 0..<Self.count {
            (base + k * Self.stride).bindMemory(to: LockWord.self, capacity: 1).initialize(to: LockWord())
            (base + k * Self.stride + Self.queueOffset).bindMemory(to: MessageQueue.self, capacity: 1).initialize(to: MessageQueue())
        }
    }

    deinit {
        for k in 0..<Self.count {
            lock(k).deinitialize(count: 1)
            queue(k).deinitialize(count: 1)
        }
        base.deallocate()
    }

    // The memory at each line was bound (a LockWord, then a MessageQueue) and initialised in
    // init, and stays so until deinit.
    @inline(__always)
    private func lock(_ k: Int) -> UnsafeMutablePointer<LockWord> {
        (base + k * Self.stride).assumingMemoryBound(to: LockWord.self)
    }
    @inline(__always)
    private func queue(_ k: Int) -> UnsafeMutablePointer<MessageQueue> {
        (base + k * Self.stride + Self.queueOffset).assumingMemoryBound(to: MessageQueue.self)
    }

    /// Appends `message` to the queue of sender `origin`. True if that queue was empty: the
    /// caller must then take the mailbox's lock and wake the owner if it waits.
    @inline(__always)
    func append(_ message: any Sendable, from origin: UInt32) -> Bool {
        let k = Int(origin) & (Self.count - 1)
        let l = lock(k), q = queue(k)
        l.pointee.lockPatiently()
        let wasEmpty = q.pointee.isEmpty
        q.pointee.append(message)
        if wasEmpty { nonEmpty.bitwiseOr(1 << UInt32(k), ordering: .relaxed) }
        l.pointee.unlock()
        return wasEmpty
    }

    /// Whether any queue holds messages (a hint: read without the queues' locks).
    var mayHoldMessages: Bool { nonEmpty.load(ordering: .relaxed) != 0 }

    /// Hands each non-empty queue to `take`, which must leave it empty (move it into the
    /// mailbox, or out to be dropped), lowest queue first. Called with the mailbox's lock held.
    func drain(_ take: (inout MessageQueue) -> Void) {
        var mask = nonEmpty.load(ordering: .relaxed)
        while mask != 0 {
            let k = mask.trailingZeroBitCount
            mask &= mask &- 1
            let l = lock(k)
            l.pointee.lockPatiently()
            take(&queue(k).pointee)
            nonEmpty.bitwiseAnd(~(1 << UInt32(k)), ordering: .relaxed)
            l.pointee.unlock()
        }
    }
}
