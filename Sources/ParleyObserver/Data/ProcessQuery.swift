import ParleyOTP

/// One page of the Processes table: a sort column, an order, a search and a page, answered
/// on the server so that a node with a million processes sends the browser one page.
public struct ProcessQuery: Sendable, Hashable {
    /// The columns the table sorts by.
    public enum Column: String, Sendable, CaseIterable {
        case pid, name, status, messageQueueLength = "queue", reductions, memory, kind
    }
    public var sort: Column = .reductions
    public var descending = true
    /// Kept rows whose pid, registered name, label or behaviour contain it (case-insensitive).
    public var search = ""
    public var offset = 0
    public var limit = 50

    public init(sort: Column = .reductions, descending: Bool = true, search: String = "", offset: Int = 0, limit: Int = 50) {
        self.sort = sort
        self.descending = descending
        self.search = search
        self.offset = max(0, offset)
        self.limit = min(max(1, limit), 500)
    }
}

/// A page of rows, with how many rows matched in all and how old the data is.
public struct ProcessPage: Sendable, Codable {
    public struct Row: Sendable, Codable, Hashable {
        public let pid: String
        public let name: String?
        public let label: String?
        public let behaviour: String?
        public let kind: String
        public let status: String
        public let queue: Int
        public let reductions: Int
        public let memory: Int
    }
    public let rows: [Row]
    public let total: Int
    public let matched: Int
    public let offset: Int
    /// Milliseconds the walk over the process table took, and its age when served.
    public let walkMilliseconds: Double
    public let ageMilliseconds: Double
}

/// The process table as last walked. A walk is repeated at most once per `minInterval`, and
/// never more often than 50 times its own duration, so the observer's share of a scheduler
/// stays near 2 % however many processes there are (a million idle processes take about
/// 0.1–0.2 s to walk here: the table then refreshes every 5–10 s).
final class ProcessTableCache: Sendable {
    private struct Walk {
        var rows: [Process.Summary] = []
        var at: UInt64 = 0
        var nanos: UInt64 = 0
    }
    let node: LocalNode
    let minInterval: UInt64
    private let last = Locked(Walk())
    private let walking = Locked(false)

    init(node: LocalNode, minInterval: Duration) {
        self.node = node
        self.minInterval = MonotonicClock.nanoseconds(minInterval)
    }

    /// The rows, walked afresh if the last walk is stale (one walker at a time; others get
    /// the previous rows meanwhile).
    func rows() -> (rows: [Process.Summary], at: UInt64, nanos: UInt64) {
        let now = MonotonicClock.now
        let w = last.withLock { $0 }
        let stale = w.at == 0 || now &- w.at >= max(minInterval, w.nanos &* 50)
        if stale, walking.withLock({ busy in if busy { return false }; busy = true; return true }) {
            defer { walking.withLock { $0 = false } }
            let start = MonotonicClock.now
            let rows = node.summaries()
            let end = MonotonicClock.now
            let fresh = Walk(rows: rows, at: end, nanos: end &- start)
            last.withLock { $0 = fresh }
            return (fresh.rows, fresh.at, fresh.nanos)
        }
        if w.at == 0 {
            // Another walker is on the first walk: walk too rather than show nothing.
            let rows = node.summaries()
            return (rows, MonotonicClock.now, 0)
        }
        return (w.rows, w.at, w.nanos)
    }

    /// Drops the cached rows, so the next query walks again (after an action).
    func invalidate() { last.withLock { $0.at = 0 } }

    /// The last page's ordering, reused while the walk it came from is the latest: an open
    /// page asks again every refresh, and a million rows need not be ranked again for it.
    private struct Ranked {
        let walkAt: UInt64
        let sort: ProcessQuery.Column
        let descending: Bool
        let search: String
        let wanted: Int
        let ordered: [Process.Summary]
        let matched: Int
    }
    private let ranked = Locked<Ranked?>(nil)

    func page(_ q: ProcessQuery) -> ProcessPage {
        let (all, at, nanos) = rows()
        let needle = q.search.lowercased()
        let wanted = q.offset + q.limit
        let (ordered, matched): ([Process.Summary], Int)
        if let r = ranked.withLock({ $0 }), r.walkAt == at, r.sort == q.sort, r.descending == q.descending,
           r.search == needle, r.wanted >= wanted {
            (ordered, matched) = (r.ordered, r.matched)
        } else {
            let matching = needle.isEmpty ? Array(all.indices) : all.indices.filter { Self.matches(all[$0], needle) }
            let top = Self.rank(all, matching, sort: q.sort, descending: q.descending, count: wanted)
            (ordered, matched) = (top.map { all[$0] }, matching.count)
            ranked.withLock {
                $0 = Ranked(walkAt: at, sort: q.sort, descending: q.descending, search: needle, wanted: wanted,
                            ordered: ordered, matched: matched)
            }
        }
        let slice = q.offset < ordered.count ? Array(ordered[q.offset..<min(ordered.count, wanted)]) : []
        return ProcessPage(
            rows: slice.map(Self.row), total: all.count, matched: matched, offset: q.offset,
            walkMilliseconds: Double(nanos) / 1e6, ageMilliseconds: Double(MonotonicClock.now &- at) / 1e6)
    }

    /// The indices (of `candidates`) of the first `count` rows in the query's order. Numeric
    /// columns rank by a precomputed key, so a million rows cost one pass over integers.
    static func rank(_ rows: [Process.Summary], _ candidates: [Int], sort: ProcessQuery.Column, descending: Bool, count: Int) -> [Int] {
        func numeric(_ key: (Process.Summary) -> Int) -> [Int] {
            let keys = candidates.map { (key: key(rows[$0]), index: $0) }
            // Ties go by pid (the index order of the walk is not pid order).
            return top(keys, count: count) { a, b in
                if a.key != b.key { return descending ? a.key > b.key : a.key < b.key }
                return rows[a.index].pid < rows[b.index].pid
            }.map(\.index)
        }
        switch sort {
        case .messageQueueLength: return numeric(\.messageQueueLength)
        case .reductions: return numeric(\.reductions)
        case .memory: return numeric(\.memory)
        default: return top(candidates, count: count) { before(rows[$0], rows[$1], sort, descending) }
        }
    }

    static func row(_ s: Process.Summary) -> ProcessPage.Row {
        .init(pid: s.pid.description, name: s.registeredName, label: s.label, behaviour: s.behaviour,
              kind: s.kind.rawValue, status: s.status.rawValue, queue: s.messageQueueLength,
              reductions: s.reductions, memory: s.memory)
    }

    static func matches(_ s: Process.Summary, _ needle: String) -> Bool {
        if s.pid.description.contains(needle) { return true }
        for text in [s.registeredName, s.label, s.behaviour] {
            if let text, text.lowercased().contains(needle) { return true }
        }
        return false
    }

    /// Whether `a` comes before `b`; ties go by pid, so pages are stable.
    static func before(_ a: Process.Summary, _ b: Process.Summary, _ column: ProcessQuery.Column, _ descending: Bool) -> Bool {
        func ordered<T: Comparable>(_ x: T, _ y: T) -> Bool? {
            if x == y { return nil }
            return descending ? x > y : x < y
        }
        let decided: Bool?
        switch column {
        case .pid: decided = ordered(a.pid, b.pid)
        case .name: decided = ordered(a.registeredName ?? a.label ?? "", b.registeredName ?? b.label ?? "")
        case .status: decided = ordered(a.status.rawValue, b.status.rawValue)
        case .messageQueueLength: decided = ordered(a.messageQueueLength, b.messageQueueLength)
        case .reductions: decided = ordered(a.reductions, b.reductions)
        case .memory: decided = ordered(a.memory, b.memory)
        case .kind: decided = ordered(a.kind.rawValue, b.kind.rawValue)
        }
        return decided ?? (a.pid < b.pid)
    }

    /// The first `count` elements in `before` order, without sorting them all: a sorted
    /// buffer of the best `count` so far (a million rows and a page of 50 cost one pass).
    static func top<T>(_ items: [T], count: Int, by before: (T, T) -> Bool) -> [T] {
        guard count < items.count / 2 else { return Array(items.sorted(by: before).prefix(count)) }
        var best: [T] = []
        best.reserveCapacity(count + 1)
        for item in items {
            if best.count == count, let worst = best.last, !before(item, worst) { continue }
            var lo = 0, hi = best.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if before(item, best[mid]) { hi = mid } else { lo = mid + 1 }
            }
            best.insert(item, at: lo)
            if best.count > count { best.removeLast() }
        }
        return best
    }
}
