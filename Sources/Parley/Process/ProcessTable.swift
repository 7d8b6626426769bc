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
/// process (holding +1 on it) with where its id goes in the spare bits, 0 if empty or 1 if
/// its process left (a tombstone).
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
/// burst of processes exits). Only a lookup by id reads a process's id (of a slot whose
/// place bits match), and a rebuild of a shard over 2^16 lines (half a million slots).
final class ProcessTableShard: @unchecked Sendable {
    // @unchecked Sendable: `slots`, `mask`, `lineShift`, `live` and `dead` are read and written
    // only between `lock.lock()` and `lock.unlock()`.

    /// 256 slots (2 KiB; 128 KiB for a node's 64 shards): a node with a few thousand
    /// processes rebuilds its table only to clear tombstones, and a burst of spawns and exits
    /// above that rebuilds it a few times, not once per doubling from 16 (the allocation
    /// gate's spawn-idle-callback row counted those rebuilds: 0.03 allocations per process).
    static let minimumCapacity = 256
    static let empty: UInt = 0, tombstone: UInt = 1
    /// A live slot's address bits. The rest carry where its key goes: bits 0–2 its place in
    /// its group of eight, bits 48 and up the top bits of its group's hash (`hashBits` of
    /// them), so a rebuild moves an entry without reading its process (a cache miss per live
    /// entry, 3–4 % of spawn-idle-callback when it did). Objects are 16-byte aligned, and
    /// user-space addresses fit in 47 bits on x86_64 and 48 on arm64 (Linux hands out higher
    /// ones only to a mapping that asks for them): `insert` checks it.
    static let addressMask: UInt = 0x0000_FFFF_FFFF_FFF0
    private static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
    private let lock = LockWord()
    // Unsafe pointer: `mask + 1` initialized slots, owned by this shard alone (allocated in
    // `init`/`rebuild`, freed in `rebuild`/`deinit`). A slot above 1 holds +1 on its process.
    private var slots: UnsafeMutablePointer<UInt>
    private var mask: Int
    /// 64 minus log2 of the number of lines (Fibonacci hashing keeps the top bits).
    private var lineShift: UInt64
    /// How many top bits of a group's hash a slot keeps (16; fewer in tests): a table of up
    /// to 2^hashBits lines (2^19 slots with 16) rebuilds from the slots alone; a larger one
    /// reads each live process's id, as it always did.
    private let hashBits: UInt64
    private var live = 0
    private var dead = 0

    init(hashBits: Int = 16) {
        self.hashBits = UInt64(hashBits)
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
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: slot & addressMask)!)
    }

    @inline(__always)
    private static func key(_ slot: UInt) -> UInt64 {
        process(slot)._withUnsafeGuaranteedRef { UInt64($0.serial) << 32 | UInt64($0.id) }
    }

    /// A live slot's bits besides the address, for key `k`: its place in its group of eight
    /// and the top `hashBits` bits of the group's hash.
    @inline(__always)
    private func placeBits(_ k: UInt64) -> UInt {
        let n = k >> UInt64(ProcessTable.shardBits)
        let hash = (n >> 3) &* Self.golden
        return UInt(n & 7) | UInt(hash >> (64 - hashBits)) << 48
    }

    /// The first slot to try for `k`: slot `id % 8` of the line its group of eight hashes to.
    @inline(__always)
    private func home(_ k: UInt64) -> Int {
        let n = k >> UInt64(ProcessTable.shardBits)
        let line = ((n >> 3) &* Self.golden) >> lineShift
        return Int(truncatingIfNeeded: line << 3 | n & 7) & mask
    }

    /// `home` of a live slot's key, from the slot's own bits when the table has few enough
    /// lines for them (the line is the hash's top `64 - lineShift` bits, of the `hashBits`
    /// kept), otherwise from its process.
    @inline(__always)
    private func home(slot s: UInt) -> Int {
        let lineBits = 64 - lineShift
        guard lineBits <= hashBits else { return home(Self.key(s)) }
        let line = UInt64(s >> 48) >> (hashBits - lineBits)
        return Int(truncatingIfNeeded: line << 3 | UInt64(s & 7)) & mask
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
        precondition(address & ~Self.addressMask == 0, "a process at \(address), outside the 48-bit, 16-byte aligned addresses the process table packs")
        let slot = address | placeBits(k)
        lock.lock()
        if (live + dead + 1) * 4 > (mask + 1) * 3 { rebuild(for: live + 1) }
        // Ids never repeat, so `k` is not here: the first free slot takes it.
        var i = home(k)
        while slots[i] > Self.tombstone { i = (i + 1) & mask }
        if slots[i] == Self.tombstone { dead -= 1 }
        slots[i] = slot
        live += 1
        lock.unlock()
    }

    /// Removes `p` (whose key is `k`); returns the table's reference for the caller to
    /// release, or nil if `p` is not here.
    func remove(_ k: UInt64, _ p: ProcessCore) -> Unmanaged<ProcessCore>? {
        let slot = UInt(bitPattern: Unmanaged.passUnretained(p).toOpaque()) | placeBits(k)
        lock.lock()
        defer { lock.unlock() }
        var i = home(k)
        while slots[i] != slot {
            if slots[i] == Self.empty { return nil }
            i = (i + 1) & mask
        }
        slots[i] = Self.tombstone
        live -= 1
        dead += 1
        if live * 8 < mask + 1 && mask + 1 > Self.minimumCapacity { rebuild(for: live) }
        return Self.process(slot)
    }

    func lookup(_ k: UInt64) -> ProcessCore? {
        let place = placeBits(k)
        lock.lock()
        defer { lock.unlock() }
        var i = home(k)
        while true {
            let s = slots[i]
            if s == Self.empty { return nil }
            // Only a slot whose place bits match can be `k`'s: others are passed unread.
            if s & ~Self.addressMask == place, s != Self.tombstone, Self.key(s) == k { return Self.process(s).takeUnretainedValue() }
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
            var j = home(slot: old[i])
            while slots[j] != Self.empty { j = (j + 1) & mask }
            slots[j] = old[i]
        }
        old.deallocate()
    }
}
