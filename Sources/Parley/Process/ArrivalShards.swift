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
/// Made once, kept until the process object is freed; 576 bytes.
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
    /// One queue and its lock per 64-byte line, so senders of different queues never write
    /// to one line.
    private static let stride = 64

    struct Shard: ~Copyable {
        let lock = LockWord()
        var queue = MessageQueue()
    }

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
            (base + k * Self.stride).bindMemory(to: Shard.self, capacity: 1).initialize(to: Shard())
        }
    }

    deinit {
        for k in 0..<Self.count { shard(k).deinitialize(count: 1) }
        base.deallocate()
    }

    // The memory at each stride was bound to Shard and initialised in init, and stays so
    // until deinit.
    @inline(__always)
    private func shard(_ k: Int) -> UnsafeMutablePointer<Shard> {
        (base + k * Self.stride).assumingMemoryBound(to: Shard.self)
    }

    /// Appends `message` to the queue of sender `origin`. True if that queue was empty: the
    /// caller must then take the mailbox's lock and wake the owner if it waits.
    @inline(__always)
    func append(_ message: any Sendable, from origin: UInt32) -> Bool {
        let k = Int(origin) & (Self.count - 1)
        let s = shard(k)
        s.pointee.lock.lockPatiently()
        let wasEmpty = s.pointee.queue.isEmpty
        s.pointee.queue.append(message)
        if wasEmpty { nonEmpty.bitwiseOr(1 << UInt32(k), ordering: .relaxed) }
        s.pointee.lock.unlock()
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
            let s = shard(k)
            s.pointee.lock.lockPatiently()
            take(&s.pointee.queue)
            nonEmpty.bitwiseAnd(~(1 << UInt32(k)), ordering: .relaxed)
            s.pointee.lock.unlock()
        }
    }
}
