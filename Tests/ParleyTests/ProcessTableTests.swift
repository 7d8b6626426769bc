@testable import Parley
import Testing

/// The process table (ProcessTable.swift) against a plain dictionary: what `Process.list()`,
/// `processCount` and a pid decoded from the wire (`LocalNode.localPid(id:serial:)`) read.
/// Erlang's `erlang:processes/0` lists exactly the live processes, and a pid whose process
/// exited names no process (`is_process_alive/1` is false); the table must say the same
/// through every spawn and exit order, and hold each live process until it leaves.
@Suite("Process table (slots by id, tombstones, rebuilds)")
struct ProcessTableTests {
    static func key(_ p: ProcessCore) -> UInt64 { UInt64(p.serial) << 32 | UInt64(p.id) }

    /// Checks the shard against `expected` by lookups, a walk and its count.
    static func check(_ shard: ProcessTableShard, _ expected: [UInt64: ProcessCore], absent: [UInt64]) {
        #expect(shard.count == expected.count)
        var walked: [ProcessCore] = []
        shard.append(to: &walked)
        #expect(Set(walked.map(key)) == Set(expected.keys))
        for (k, p) in expected { #expect(shard.lookup(k) === p) }
        for k in absent { #expect(shard.lookup(k) == nil) }
    }

    @Test("spawn order in, spawn order out (a million idle processes woken in turn): every lookup right, memory given back")
    func fifoChurn() {
        let shard = ProcessTableShard()
        var live: [UInt64: ProcessCore] = [:]
        var order: [ProcessCore] = []
        for _ in 0..<20_000 {
            let p = SequentialProcess(limit: nil, hosted: nil)
            shard.insert(Self.key(p), p)
            live[Self.key(p)] = p
            order.append(p)
        }
        Self.check(shard, live, absent: [])
        #expect(shard.capacity <= 4 * 20_000, "at most half full after its last rebuild, 3/4 before the next")
        var gone: [UInt64] = []
        for p in order.prefix(19_990) {
            #expect(shard.remove(Self.key(p), p) != nil)
            live[Self.key(p)] = nil
            gone.append(Self.key(p))
        }
        Self.check(shard, live, absent: gone)
        #expect(shard.capacity <= 8 * 10 + ProcessTableShard.minimumCapacity, "rebuilt smaller as processes left (capacity \(shard.capacity))")
        // A second removal of the same process finds nothing (an exit is recorded once).
        #expect(shard.remove(Self.key(order[0]), order[0]) == nil)
    }

    @Test("A rebuild places entries from the slots' own bits while the table is small enough for them, and from each process's id above that: both give tables that look up, walk and remove right")
    func rebuildFromSlotsOrProcesses() {
        // hashBits 6: the slots alone place entries up to 64 lines (512 slots); the table
        // grows past that, so later rebuilds read the processes. The default keeps 16 bits.
        for shard in [ProcessTableShard(hashBits: 6), ProcessTableShard()] {
            var live: [UInt64: ProcessCore] = [:]
            var gone: [UInt64] = []
            var all: [ProcessCore] = []
            var oldest = 0
            for round in 0..<6_000 {
                let p = SequentialProcess(limit: nil, hosted: nil)
                shard.insert(Self.key(p), p)
                live[Self.key(p)] = p
                all.append(p)
                // One in three rounds the oldest leaves, so tombstones and rebuilds mix in.
                if round % 3 == 2 {
                    let q = all[oldest]
                    oldest += 1
                    #expect(shard.remove(Self.key(q), q) != nil)
                    live[Self.key(q)] = nil
                    gone.append(Self.key(q))
                }
            }
            #expect(shard.capacity > 512)
            Self.check(shard, live, absent: gone)
            for (k, p) in live where k % 2 == 0 {
                #expect(shard.remove(k, p) != nil)
                live[k] = nil
                gone.append(k)
            }
            Self.check(shard, live, absent: gone)
        }
    }

    @Test("long-lived processes among a sliding window of short-lived ones: lookups stay right and the table stays near its live count")
    func longLivedAmongChurn() {
        let shard = ProcessTableShard()
        var live: [UInt64: ProcessCore] = [:]
        var window: [ProcessCore] = []
        var gone: [UInt64] = []
        var rng = SystemRandomNumberGenerator()
        for round in 0..<30_000 {
            let p = SequentialProcess(limit: nil, hosted: nil)
            shard.insert(Self.key(p), p)
            live[Self.key(p)] = p
            if round % 7 == 0 { continue }   // one in seven stays for good (a supervisor, a server)
            window.append(p)
            if window.count > 2_000 {
                // Short-lived ones leave in a shuffled order, not the order they came.
                let q = window.remove(at: Int.random(in: 0..<window.count, using: &rng))
                #expect(shard.remove(Self.key(q), q) != nil)
                live[Self.key(q)] = nil
                if gone.count < 2_000 { gone.append(Self.key(q)) }
            }
            if round % 5_000 == 0 {
                #expect(shard.capacity <= 8 * live.count + ProcessTableShard.minimumCapacity)
            }
        }
        Self.check(shard, live, absent: gone)
        #expect(shard.capacity <= 8 * live.count + ProcessTableShard.minimumCapacity)
    }

    @Test("the table holds each process until it leaves, then lets it go")
    func holdsUntilRemoved() {
        let shard = ProcessTableShard()
        weak var held: ProcessCore?
        do {
            let p = SequentialProcess(limit: nil, hosted: nil)
            held = p
            shard.insert(Self.key(p), p)
        }
        #expect(held != nil, "the table's reference keeps an unreferenced live process")
        if let p = held { shard.remove(Self.key(p), p)?.release() }
        #expect(held == nil)
    }

    @Test("the node's table: spawned processes are listed and counted, and leave the list when they exit (erlang:processes/0)")
    func nodeTable() async throws {
        let node = try LocalNode(name: "ptab_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1")
        let before = node.processCount
        var pids: [Pid] = []
        for _ in 0..<300 {
            pids.append(try node.spawn(state: 0) { _, _, _ in .stop(.normal) })
        }
        #expect(node.processCount == before + 300)
        #expect(Set(node.list()).isSuperset(of: pids))
        for p in pids { Process.send(0, to: p) }
        #expect(await eventually { node.processCount == before })
        #expect(Set(node.list()).isDisjoint(with: pids))
    }
}
