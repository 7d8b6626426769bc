import ParleyRuntime
import Synchronization

/// Every live process of one ``LocalNode``, by id: for `Process.list()`, introspection, and
/// finding the process a pid from the wire names. Sharded to keep spawn and exit on different
/// schedulers from contending. Sends never look here: a local pid holds its process.
///
/// Ids are handed out in order (``nextIdentity()``), so each shard lays processes out by id,
/// as the BEAM's process table does (`erl_ptab.c`: a pid's number is its slot): eight
/// consecutive ids share a cache line (``ProcessTableShard``), so a spawn or an exit touches
/// the line its neighbours touched rather than a hashed bucket anywhere in tens of
/// megabytes. With Swift's `Dictionary` (SipHash, random buckets) the table was 12 % of
/// skynet and 15 % of spawn-idle-callback (BENCHMARKS.md, 2026-12-06).
final class ProcessTable: Sendable {
    /// 64 shards: spawns on different schedulers rarely meet, and a walk
    /// (``forEach(_:)``) holds one lock for a 64th of the processes at most.
    static let shardBits = 6
    static let shardCount = 1 << shardBits
    let shards: [ProcessTableShard] = (0..<shardCount).map { _ in ProcessTableShard() }
    /// The shards again, unretained (`shards` holds them for the table's life): picking one
    /// takes no reference, so spawns and exits on every core do not all write the reference
    /// count of one shard (and, through `LocalNode.default`, of the table and the node).
    private let shardRefs: [Unmanaged<ProcessTableShard>]

    init() {
        shardRefs = shards.map { Unmanaged.passUnretained($0) }
    }
    /// One counter for every node of the OS process: ids never repeat between its nodes, so
    /// references and pids made here stay unique whichever node made them.
    private static let counter = Atomic<UInt64>(1)

    /// A fresh (id, serial): ids count up; serial counts wrap-arounds of the 32-bit id.
    static func nextIdentity() -> (id: UInt32, serial: UInt32) {
        let n = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return (UInt32(truncatingIfNeeded: n), UInt32(truncatingIfNeeded: n >> 32))
    }

    @inline(__always)
    private func key(_ p: ProcessCore) -> UInt64 { UInt64(p.serial) << 32 | UInt64(p.id) }

    @inline(__always)
    private func withShard<R>(_ k: UInt64, _ body: (ProcessTableShard) -> R) -> R {
        shardRefs[Int(truncatingIfNeeded: k) & (Self.shardCount - 1)]._withUnsafeGuaranteedRef(body)
    }

    func insert(_ p: ProcessCore) {
        let k = key(p)
        withShard(k) { $0.insert(k, p) }
    }

    func remove(_ p: ProcessCore) {
        let k = key(p)
        // The table's reference is given back outside the shard's lock: it may be the last.
        withShard(k) { $0.remove(k, p) }?.release()
    }

    func lookup(id: UInt32, serial: UInt32) -> ProcessCore? {
        let k = UInt64(serial) << 32 | UInt64(id)
        return k == 0 ? nil : withShard(k) { $0.lookup(k) }
    }

    var count: Int { shards.reduce(0) { $0 + $1.count } }

    /// Calls `body` for every process, copying one shard's references under its lock at a
    /// time and calling `body` outside it.
    func forEach(_ body: (ProcessCore) -> Void) {
        var chunk: [ProcessCore] = []
        for s in shards {
            chunk.removeAll(keepingCapacity: true)
            s.append(to: &chunk)
            for p in chunk { body(p) }
        }
    }

    func all() -> [ProcessCore] {
        var out: [ProcessCore] = []
        for s in shards { s.append(to: &out) }
        return out
    }
}

/// One shard of a ``ProcessTable``: open addressing on 8-byte slots, each the address of a
/// process (holding +1 on it), 0 if empty or 1 if its process left (a tombstone).
///
/// Where an id goes: the shard's ids, `key >> shardBits`, are taken in groups of eight
/// consecutive ones, and a group gets one 64-byte line of eight slots, picked by Fibonacci
/// hashing of the group's number. So processes spawned together share a line (a spawn or an
/// exit touches the line its neighbours just touched, not a hashed bucket anywhere in tens
/// of megabytes), while groups spread over the table as hashed keys do: a long-lived process
/// that sits in a line only displaces the group that lands on that line, by a slot, rather
/// than every later id (as laying ids out in order would: a run as long as the live window,
/// which a removal then had to walk).
///
/// A removal leaves a tombstone (no entries move, no process is read); inserts reuse
/// tombstones. The table is rebuilt, to half full or less, when live entries and tombstones
/// pass 3/4 of the slots, and when live entries fall below 1/8 (memory goes back after a
/// burst of processes exits). Only a lookup by id and a rebuild read a process's id.
final class ProcessTableShard: @unchecked Sendable {
    // @unchecked Sendable: `slots`, `mask`, `lineShift`, `live` and `dead` are read and written
    // only between `lock.lock()` and `lock.unlock()`.

    /// 256 slots (2 KiB; 128 KiB for a node's 64 shards): a node with a few thousand
    /// processes rebuilds its table only to clear tombstones, and a burst of spawns and exits
    /// above that rebuilds it a few times, not once per doubling from 16 (the allocation
    /// gate's spawn-idle-callback row counted those rebuilds: 0.03 allocations per process).
    static let minimumCapacity = 256
    static let empty: UInt = 0, tombstone: UInt = 1
    private let lock = LockWord()
    // Unsafe pointer: `mask + 1` initialized slots, owned by this shard alone (allocated in
    // `init`/`rebuild`, freed in `rebuild`/`deinit`). A slot above 1 holds +1 on its process.
    private var slots: UnsafeMutablePointer<UInt>
    private var mask: Int
    /// 64 minus log2 of the number of lines (Fibonacci hashing keeps the top bits).
    private var lineShift: UInt64
    private var live = 0
    private var dead = 0

    init() {
        (slots, mask, lineShift) = Self.table(Self.minimumCapacity)
    }

    deinit {
        for i in 0...mask where slots[i] > Self.tombstone { Self.process(slots[i]).release() }
        slots.deallocate()
    }

    private static func table(_ capacity: Int) -> (UnsafeMutablePointer<UInt>, Int, UInt64) {
        let s = UnsafeMutablePointer<UInt>.allocate(capacity: capacity)
        s.initialize(repeating: empty, count: capacity)
        let lines = capacity / 8
        return (s, capacity - 1, UInt64(64 - lines.trailingZeroBitCount))
    }

    @inline(__always)
    private static func process(_ slot: UInt) -> Unmanaged<ProcessCore> {
        // The slot holds a retained ProcessCore's address (above `tombstone`), see `insert`.
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: slot)!)
    }

    @inline(__always)
    private static func key(_ slot: UInt) -> UInt64 {
        process(slot)._withUnsafeGuaranteedRef { UInt64($0.serial) << 32 | UInt64($0.id) }
    }

    /// The first slot to try for `k`: slot `id % 8` of the line its group of eight hashes to.
    @inline(__always)
    private func home(_ k: UInt64) -> Int {
        let n = k >> UInt64(ProcessTable.shardBits)
        let line = ((n >> 3) &* 0x9E37_79B9_7F4A_7C15) >> lineShift
        return Int(truncatingIfNeeded: line << 3 | n & 7) & mask
    }

    var count: Int {
        lock.lock(); defer { lock.unlock() }
        return live
    }

    var capacity: Int {
        lock.lock(); defer { lock.unlock() }
        return mask + 1
    }

    func insert(_ k: UInt64, _ p: ProcessCore) {
        let address = UInt(bitPattern: Unmanaged.passRetained(p).toOpaque())
        lock.lock()
        if (live + dead + 1) * 4 > (mask + 1) * 3 { rebuild(for: live + 1) }
        // Ids never repeat, so `k` is not here: the first free slot takes it.
        var i = home(k)
        while slots[i] > Self.tombstone { i = (i + 1) & mask }
        if slots[i] == Self.tombstone { dead -= 1 }
        slots[i] = address
        live += 1
        lock.unlock()
    }

    /// Removes `p` (whose key is `k`); returns the table's reference for the caller to
    /// release, or nil if `p` is not here.
    func remove(_ k: UInt64, _ p: ProcessCore) -> Unmanaged<ProcessCore>? {
        let address = UInt(bitPattern: Unmanaged.passUnretained(p).toOpaque())
        lock.lock()
        defer { lock.unlock() }
        var i = home(k)
        while slots[i] != address {
            if slots[i] == Self.empty { return nil }
            i = (i + 1) & mask
        }
        slots[i] = Self.tombstone
        live -= 1
        dead += 1
        if live * 8 < mask + 1 && mask + 1 > Self.minimumCapacity { rebuild(for: live) }
        return Self.process(address)
    }

    func lookup(_ k: UInt64) -> ProcessCore? {
        lock.lock()
        defer { lock.unlock() }
        var i = home(k)
        while true {
            let s = slots[i]
            if s == Self.empty { return nil }
            if s != Self.tombstone, Self.key(s) == k { return Self.process(s).takeUnretainedValue() }
            i = (i + 1) & mask
        }
    }

    /// Appends every process of the shard to `out` (under the lock: references only).
    func append(to out: inout [ProcessCore]) {
        lock.lock()
        defer { lock.unlock() }
        out.reserveCapacity(out.count + live)
        for i in 0...mask where slots[i] > Self.tombstone { out.append(Self.process(slots[i]).takeUnretainedValue()) }
    }

    /// Moves the live entries into a table at most half full with `entries` of them, and
    /// drops the tombstones (under the lock).
    private func rebuild(for entries: Int) {
        var capacity = Self.minimumCapacity
        while capacity < entries * 2 { capacity *= 2 }
        let old = slots, oldCount = mask + 1
        (slots, mask, lineShift) = Self.table(capacity)
        dead = 0
        for i in 0..<oldCount where old[i] > Self.tombstone {
            var j = home(Self.key(old[i]))
            while slots[j] != Self.empty { j = (j + 1) & mask }
            slots[j] = old[i]
        }
        old.deallocate()
    }
}
