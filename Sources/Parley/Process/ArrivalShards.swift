import DequeModule
import ParleyRuntime
import Synchronization

/// Where messages from other processes wait before the mailbox's lock takes them in, once
/// senders have been seen to contend for that lock: eight queues, each behind its own lock,
/// chosen by the sender's identity. Senders that hash to different queues never wait for one
/// another, and the first message into an empty queue is the only one that takes the
/// mailbox's lock (to wake the owner if it waits); the owner moves every queue into its
/// mailbox under that lock, in constant time per queue, before any step that reads it.
///
/// This is the BEAM's own answer to many senders and one receiver (Erlang/OTP 25's "parallel
/// signal sending optimization", erlang.org blog of 2021-11-05: the outer signal queue split
/// into buffers picked by the sender's pid, turned on when the queue's lock is contended).
/// Order is kept as a single queue keeps it: each message draws a number from the
/// mailbox's counter as it is queued, and the owner takes them in that order (``drain(_:)``).
/// So one sender's messages arrive in the order sent (Erlang's guarantee), a sender's exit
/// signal after them (it goes through the mailbox's lock, which drains the queues first),
/// and a message sent after another was received somewhere (B sends to R, then tells A,
/// which sends to R) arrives after it, as on the BEAM without the optimization. The
/// counter is the one line all senders write; the queues' locks and messages are not.
///
/// Made once per process, on contention (``ProcessCore``), never for a bounded mailbox, and
/// kept until the process object is freed; about 750 bytes.
///
/// ```swift
/// let shards = ArrivalShards()
/// if shards.append("hello", from: 7) { /* first in its queue: take the mailbox lock, wake the owner */ }
/// shards.drain { queue in mailbox.absorb(&queue) }   // with the mailbox lock held
/// ```
final class ArrivalShards: @unchecked Sendable {
    // @unchecked Sendable: each queue is read and written only with its own lock held; the
    // counter and the mask are Atomics; the scratch space is used only by `drain`, which
    // runs with the mailbox's lock held; `base` is immutable after init.

    /// How many queues (a power of two).
    static let count = 8
    /// The sequence counter on the first 64-byte line, then one queue and its lock per
    /// line, so that senders of different queues never write to one line.
    private static let stride = 64

    struct Shard: ~Copyable {
        let lock = LockWord()
        var queue = MessageQueue()
        /// Each queued message's sequence number, in queue order (increasing).
        var sequence = Deque<UInt64>()
    }

    /// Bit k is set while queue k holds messages; set and cleared only with queue k's lock
    /// held. Sequentially consistent, as the counter is: see `drain`.
    let nonEmpty = Atomic<UInt32>(0)
    private let base: UnsafeMutableRawPointer
    // Scratch space for `drain` (the mailbox's lock held): the runs it takes, their sequence
    // numbers one run after another, and the merge's output, kept so that draining
    // allocates nothing once warm. Exclusive under that lock.
    @exclusivity(unchecked) private var runs: [MessageQueue]
    @exclusivity(unchecked) private var runSequence: [UInt64] = []
    @exclusivity(unchecked) private var merged = MessageQueue()

    init() {
        base = UnsafeMutableRawPointer.allocate(byteCount: (Self.count + 1) * Self.stride, alignment: Self.stride)
        base.bindMemory(to: Atomic<UInt64>.self, capacity: 1).initialize(to: Atomic(0))
        for k in 0..<Self.count {
            (base + (k + 1) * Self.stride).bindMemory(to: Shard.self, capacity: 1).initialize(to: Shard())
        }
        runs = Array(repeating: MessageQueue(), count: Self.count)
    }

    deinit {
        for k in 0..<Self.count { shard(k).deinitialize(count: 1) }
        counter.deinitialize(count: 1)
        base.deallocate()
    }

    // The memory at each line was bound and initialised in init, and stays so until deinit.
    @inline(__always)
    private var counter: UnsafeMutablePointer<Atomic<UInt64>> { base.assumingMemoryBound(to: Atomic<UInt64>.self) }
    @inline(__always)
    private func shard(_ k: Int) -> UnsafeMutablePointer<Shard> {
        (base + (k + 1) * Self.stride).assumingMemoryBound(to: Shard.self)
    }

    /// Appends `message` to the queue of sender `origin`, numbered in the mailbox's arrival
    /// order. True if that queue was empty: the caller must then take the mailbox's lock and
    /// wake the owner if it waits.
    @inline(__always)
    func append(_ message: any Sendable, from origin: UInt32) -> Bool {
        let k = Int(origin) & (Self.count - 1)
        let s = shard(k)
        s.pointee.lock.lockPatiently()
        // Numbered under the queue's lock, so each queue's numbers increase.
        let n = counter.pointee.add(1, ordering: .sequentiallyConsistent).oldValue
        let wasEmpty = s.pointee.queue.isEmpty
        s.pointee.queue.append(message)
        s.pointee.sequence.append(n)
        if wasEmpty { nonEmpty.bitwiseOr(1 << UInt32(k), ordering: .sequentiallyConsistent) }
        s.pointee.lock.unlock()
        return wasEmpty
    }

    /// Whether any queue holds messages (a hint: read without the queues' locks).
    var mayHoldMessages: Bool { nonEmpty.load(ordering: .relaxed) != 0 }

    /// Hands `take` every message whose send finished before this call began, in the order
    /// the mailbox's counter numbered them, in one queue that `take` must leave empty;
    /// returns false (and calls nothing) if every queue was empty. Called with the mailbox's
    /// lock held.
    ///
    /// Taking all that is queued, queue by queue, could break causal order: a message from
    /// A found in a queue drained late could be delivered before an earlier one from B,
    /// sent into a queue already passed, though B's send finished before A's began (B sends,
    /// then tells A, which sends). So a drain first reads the counter (`cut`), then takes
    /// only messages numbered below it, and merges them by number. If A's message is below
    /// the cut, its number was drawn before the cut was read (both sequentially
    /// consistent), so B's earlier one was numbered below it too, and B's queue's bit was
    /// set before A drew its number: the drain visits B's queue, and under its lock finds
    /// B's message. Messages numbered at or above the cut stay for the next drain.
    @discardableResult
    func drain(_ take: (inout MessageQueue) -> Void) -> Bool {
        while true {
            let cut = counter.pointee.load(ordering: .sequentiallyConsistent)
            var mask = nonEmpty.load(ordering: .sequentiallyConsistent)
            if mask == 0 { return false }
            var n = 0
            runSequence.removeAll(keepingCapacity: true)
            var ends: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
            while mask != 0 {
                let k = mask.trailingZeroBitCount
                mask &= mask &- 1
                let s = shard(k)
                s.pointee.lock.lockPatiently()
                let count = s.pointee.sequence.count
                var below = count
                if count > 0, s.pointee.sequence[count - 1] >= cut {
                    below = 0
                    while below < count, s.pointee.sequence[below] < cut { below += 1 }
                }
                if below > 0 {
                    if below == count {
                        // All of it: the run takes the queue's chunks, the queue the run's spare.
                        swap(&runs[n], &s.pointee.queue)
                        runSequence.append(contentsOf: s.pointee.sequence)
                        s.pointee.sequence.removeAll(keepingCapacity: true)
                    } else {
                        for _ in 0..<below { runs[n].append(s.pointee.queue.removeFirst()) }
                        runSequence.append(contentsOf: s.pointee.sequence.prefix(below))
                        s.pointee.sequence.removeFirst(below)
                    }
                    withUnsafeMutableBytes(of: &ends) { $0.storeBytes(of: runSequence.count, toByteOffset: n * 8, as: Int.self) }
                    n += 1
                }
                if s.pointee.queue.isEmpty { nonEmpty.bitwiseAnd(~(1 << UInt32(k)), ordering: .sequentiallyConsistent) }
                s.pointee.lock.unlock()
            }
            if n == 0 { continue }   // everything queued came after the cut: read a newer one
            if n == 1 {
                take(&runs[0])
                return true
            }
            merge(n, ends)
            take(&merged)
            return true
        }
    }

    /// Merges runs 0..<n (each in increasing number order; run r's numbers end at
    /// `ends[r]` in `runSequence`) into `merged`, moving each message once.
    private func merge(_ n: Int, _ ends: (Int, Int, Int, Int, Int, Int, Int, Int)) {
        withUnsafeBytes(of: ends) { endsRaw in
            var pos = (0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &pos) { posRaw in
                let end = endsRaw.bindMemory(to: Int.self)
                let p = posRaw.bindMemory(to: Int.self)
                for r in 0..<n { p[r] = r == 0 ? 0 : end[r - 1] }
                runSequence.withUnsafeBufferPointer { seq in
                    while true {
                        // The run with the lowest next number, and the lowest next number of the others.
                        var best = -1, bestSeq = UInt64.max, second = UInt64.max
                        for r in 0..<n where p[r] < end[r] {
                            let v = seq[p[r]]
                            if v < bestSeq { second = bestSeq; bestSeq = v; best = r } else if v < second { second = v }
                        }
                        if best < 0 { return }
                        // Move its messages up to the next number of another run.
                        repeat {
                            merged.append(runs[best].removeFirst())
                            p[best] += 1
                        } while p[best] < end[best] && seq[p[best]] < second
                    }
                }
            }
        }
    }
}
