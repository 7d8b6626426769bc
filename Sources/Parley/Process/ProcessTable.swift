import ParleyRuntime
import Synchronization

/// Every live process of one ``LocalNode``, by id: for `Process.list()`, introspection, and
/// finding the process a pid from the wire names. Sharded to keep spawn and exit on different
/// schedulers from contending. Sends never look here: a local pid holds its process.
final class ProcessTable: Sendable {
    final class Shard: Sendable {
        let map = Locked<[UInt64: ProcessCore]>([:])
    }

    /// 64 shards: spawns on different schedulers rarely meet, and a walk
    /// (``forEach(_:)``) holds one lock for a 64th of the processes at most.
    static let shardCount = 64
    let shards: [Shard] = (0..<shardCount).map { _ in Shard() }
    /// One counter for every node of the OS process: ids never repeat between its nodes, so
    /// references and pids made here stay unique whichever node made them.
    private static let counter = Atomic<UInt64>(1)

    /// A fresh (id, serial): ids count up; serial counts wrap-arounds of the 32-bit id.
    static func nextIdentity() -> (id: UInt32, serial: UInt32) {
        let n = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return (UInt32(truncatingIfNeeded: n), UInt32(truncatingIfNeeded: n >> 32))
    }

    private func key(_ p: ProcessCore) -> UInt64 { UInt64(p.serial) << 32 | UInt64(p.id) }

    func insert(_ p: ProcessCore) {
        let k = key(p)
        shards[Int(k % UInt64(Self.shardCount))].map.withLock { $0[k] = p }
    }

    func remove(_ p: ProcessCore) {
        let k = key(p)
        shards[Int(k % UInt64(Self.shardCount))].map.withLock { _ = $0.removeValue(forKey: k) }
    }

    func lookup(id: UInt32, serial: UInt32) -> ProcessCore? {
        let k = UInt64(serial) << 32 | UInt64(id)
        return shards[Int(k % UInt64(Self.shardCount))].map.withLock { $0[k] }
    }

    var count: Int { shards.reduce(0) { n, s in n + s.map.withLock { $0.count } } }

    /// Calls `body` for every process, copying one shard's references under its lock at a
    /// time and calling `body` outside it.
    func forEach(_ body: (ProcessCore) -> Void) {
        var chunk: [ProcessCore] = []
        for s in shards {
            chunk.removeAll(keepingCapacity: true)
            s.map.withLock { chunk.append(contentsOf: $0.values) }
            for p in chunk { body(p) }
        }
    }
    func all() -> [ProcessCore] {
        var out: [ProcessCore] = []
        for s in shards { s.map.withLock { out.append(contentsOf: $0.values) } }
        return out
    }
}
