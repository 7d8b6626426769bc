import CParleyShims
import ParleyDistribution
import ParleyOTP

#if canImport(Glibc)
import Glibc
#endif

/// What the System page shows of a node, read without stopping it (observer's System tab,
/// LiveDashboard's Home).
public struct SystemSnapshot: Sendable, Codable {
    public struct SchedulerRow: Sendable, Codable {
        public let index: Int
        /// Busy fraction (0...1) since the previous snapshot of the same sampler.
        public let utilization: Double
        public let runQueueLength: Int
        public let jobsRun: UInt64
        public let steals: UInt64
    }
    public struct LongSchedule: Sendable, Codable {
        public let job: String
        public let milliseconds: Double
    }
    /// One connection to another node (``NodeInfo``, `net_kernel:node_info/1`).
    public struct Peer: Sendable, Codable {
        public let name: String
        public let hidden: Bool
        public let creation: UInt32
        /// `pending`, `up`, or `silent` (nothing heard for `silentTicks` net tick periods).
        public let state: String
        public let silentTicks: Int
        public let address: String?
        public let framesIn: Int
        public let framesOut: Int
        public let bytesIn: Int
        public let bytesOut: Int
        public let upSeconds: Double

        init(_ n: NodeInfo) {
            name = n.name
            hidden = n.isHidden
            creation = n.creation
            switch n.state {
            case .pending: state = "pending"; silentTicks = 0
            case .up: state = "up"; silentTicks = 0
            case .silent(let t): state = "silent"; silentTicks = t
            case .closed: state = "closed"; silentTicks = 0
            }
            address = n.address
            framesIn = n.framesIn
            framesOut = n.framesOut
            bytesIn = n.bytesIn
            bytesOut = n.bytesOut
            upSeconds = Double(n.upForNanoseconds) / 1e9
        }
    }
    public let node: String
    public let distributed: Bool
    public let uptimeSeconds: Double
    public let schedulers: [SchedulerRow]
    public let globalQueueLength: Int
    public let longSchedulesTotal: Int
    public let recentLongSchedules: [LongSchedule]
    public let blockingThreads: Int
    public let blockingBusy: Int
    public let blockingLimit: Int
    public let processCount: Int
    public let registeredNames: Int
    public let timers: Int
    /// Resident memory of the OS process (`/proc/self/statm`), bytes.
    public let residentBytes: Int
    /// Heap in use by the C allocator (mallinfo2), bytes.
    public let heapBytes: Int
    public let peers: [Peer]
}

/// Takes system snapshots; keeps the previous scheduler counters so that each snapshot's
/// utilization covers the time since the one before.
final class SystemSampler: Sendable {
    let node: LocalNode
    private let previous: Locked<[WorkerStatistics]>
    static let startedAt = MonotonicClock.now

    /// The first snapshot's utilization covers the time since the sampler was made.
    init(node: LocalNode) {
        self.node = node
        self.previous = Locked(Scheduler.shared.statistics)
    }

    func snapshot() -> SystemSnapshot {
        let scheduler = Scheduler.shared
        let now = scheduler.statistics
        let before = previous.withLock { p -> [WorkerStatistics] in
            let old = p
            p = now
            return old
        }
        let rows = now.map { w -> SystemSnapshot.SchedulerRow in
            let u = before.first { $0.index == w.index }.map { $0.utilization(until: w) } ?? 0
            return .init(index: w.index, utilization: u, runQueueLength: w.runQueueLength, jobsRun: w.jobsRun, steals: w.steals)
        }
        let long = scheduler.longScheduleReports
        let blocking = scheduler.blocking.threadCounts
        return SystemSnapshot(
            node: node.name, distributed: node.isDistributed, uptimeSeconds: Self.uptime(),
            schedulers: rows, globalQueueLength: scheduler.globalQueueLength,
            longSchedulesTotal: long.total,
            recentLongSchedules: long.recent.suffix(10).map { .init(job: $0.job, milliseconds: $0.milliseconds) },
            blockingThreads: blocking.started, blockingBusy: blocking.busy, blockingLimit: scheduler.blocking.maxThreads,
            processCount: node.processCount, registeredNames: node.registered().count, timers: scheduler.timers.count,
            residentBytes: Self.residentBytes(), heapBytes: Int(parley_heap_in_use()),
            peers: node.nodesInfo.map(SystemSnapshot.Peer.init))
    }

    /// Seconds since the OS process started (`/proc/self/stat` field 22 against
    /// `/proc/uptime`), or since the observer's module loaded where /proc is missing.
    static func uptime() -> Double {
        if let stat = readSmallFile("/proc/self/stat"), let up = readSmallFile("/proc/uptime"),
           let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // Fields after the command: state is field 3, starttime field 22 → index 19.
            if fields.count > 19, let start = Double(fields[19]), let sys = Double(up.split(separator: " ")[0]) {
                let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
                if hz > 0 { return max(0, sys - start / hz) }
            }
        }
        return Double(MonotonicClock.now &- startedAt) / 1e9
    }

    static func residentBytes() -> Int {
        guard let statm = readSmallFile("/proc/self/statm") else { return 0 }
        let parts = statm.split(separator: " ")
        guard parts.count > 1, let pages = Int(parts[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}
