import ParleyRuntime
import Synchronization

/// Every live local process, by id: for `Process.list()`, introspection, and (later) finding
/// the local process a pid from the wire names. Sharded to keep spawn and exit on different
/// schedulers from contending. Sends never look here: a local pid holds its process.
enum ProcessTable {
    final class Shard: Sendable {
        let map = Locked<[UInt64: ProcessCore]>([:])
    }

    static let shardCount = 16
    static let shards: [Shard] = (0..<shardCount).map { _ in Shard() }
    private static let counter = Atomic<UInt64>(1)

    /// A fresh (id, serial): ids count up; serial counts wrap-arounds of the 32-bit id.
    static func nextIdentity() -> (id: UInt32, serial: UInt32) {
        let n = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return (UInt32(truncatingIfNeeded: n), UInt32(truncatingIfNeeded: n >> 32))
    }

    private static func key(_ p: ProcessCore) -> UInt64 { UInt64(p.serial) << 32 | UInt64(p.id) }

    static func insert(_ p: ProcessCore) {
        let k = key(p)
        shards[Int(k % UInt64(shardCount))].map.withLock { $0[k] = p }
    }

    static func remove(_ p: ProcessCore) {
        let k = key(p)
        shards[Int(k % UInt64(shardCount))].map.withLock { _ = $0.removeValue(forKey: k) }
    }

    static func lookup(id: UInt32, serial: UInt32) -> ProcessCore? {
        let k = UInt64(serial) << 32 | UInt64(id)
        return shards[Int(k % UInt64(shardCount))].map.withLock { $0[k] }
    }

    static var count: Int { shards.reduce(0) { n, s in n + s.map.withLock { $0.count } } }

    static func all() -> [ProcessCore] {
        var out: [ProcessCore] = []
        for s in shards { s.map.withLock { out.append(contentsOf: $0.values) } }
        return out
    }
}
