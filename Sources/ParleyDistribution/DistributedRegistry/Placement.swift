/// Where a name of a ``DistributedRegistry`` lives: given the name and the registry's
/// current members (node names, sorted), the node that owns it, or `nil` when no node may
/// hold names now (a quorum placement that has lost its quorum).
///
/// Every member must compute the same owner from the same members, so a placement must be
/// a pure function of its inputs (no `Hasher`, whose seed differs per OS process).
///
/// ```swift
/// struct PinToFirst: Placement {
///     func owner(of name: String, among members: [String]) -> String? { members.first }
/// }
/// let registry = try await DistributedRegistry.start("jobs", placement: PinToFirst())
/// ```
public protocol Placement: Sendable {
    /// The owner of `name` among `members` (sorted, never empty), or `nil` for none.
    func owner(of name: String, among members: [String]) -> String?
}

extension Placement where Self == HashRing {
    /// A consistent-hash ring with `virtualNodes` points per member (libring's `HashRing`,
    /// Swarm's default `Swarm.Distribution.Ring`): when a member joins or leaves, only the
    /// names it gains or held move, about 1/N of them.
    public static func ring(virtualNodes: Int = 128) -> HashRing { HashRing(virtualNodes: virtualNodes) }
}

extension Placement where Self == StaticQuorumRing {
    /// The ring, while at least `quorum` members are present; no owner below that (Swarm's
    /// `StaticQuorumRing`): the minority side of a partition stops its names and refuses
    /// registrations, so a name never has two holders, at the cost of availability.
    /// For a cluster of N nodes use `quorum = N/2 + 1`, and never run more than
    /// `2 × quorum − 1` nodes.
    public static func staticQuorum(_ quorum: Int, virtualNodes: Int = 128) -> StaticQuorumRing {
        StaticQuorumRing(quorum: quorum, ring: HashRing(virtualNodes: virtualNodes))
    }
}

/// A consistent-hash ring: each member puts `virtualNodes` points on a 64-bit circle, and a
/// name belongs to the member of the first point at or after the name's hash.
///
/// The hash is FNV-1a over the UTF-8 bytes, finished with SplitMix64's mixer: the same on
/// every node and every run.
public struct HashRing: Placement {
    /// Points per member (libring's default weight is 128).
    public let virtualNodes: Int
    /// The points of the last few member lists asked about, sorted by position.
    let cache = Locked<[[String]: [(UInt64, String)]]>([:])

    public init(virtualNodes: Int = 128) {
        self.virtualNodes = max(1, virtualNodes)
    }

    public func owner(of name: String, among members: [String]) -> String? {
        guard !members.isEmpty else { return nil }
        if members.count == 1 { return members[0] }
        let points = self.points(members)
        let h = Self.hash(name)
        // The first point at or after h, wrapping to the first point.
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].0 < h { lo = mid + 1 } else { hi = mid }
        }
        return points[lo == points.count ? 0 : lo].1
    }

    func points(_ members: [String]) -> [(UInt64, String)] {
        if let hit = cache.withLock({ $0[members] }) { return hit }
        var points: [(UInt64, String)] = []
        points.reserveCapacity(members.count * virtualNodes)
        for m in members {
            for i in 0..<virtualNodes { points.append((Self.hash("\(m)#\(i)"), m)) }
        }
        // Ties (astronomically rare) break by member name, so every node sorts alike.
        points.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        cache.withLock { c in
            if c.count >= 8 { c.removeAll() }
            c[members] = points
        }
        return points
    }

    /// FNV-1a 64 over the UTF-8 bytes, then SplitMix64's finaliser.
    static func hash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        h = (h ^ (h >> 30)) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ (h >> 27)) &* 0x94d0_49bb_1331_11eb
        return h ^ (h >> 31)
    }
}

/// ``HashRing`` behind a static quorum; see ``Placement/staticQuorum(_:virtualNodes:)``.
public struct StaticQuorumRing: Placement {
    /// The fewest members that may hold names.
    public let quorum: Int
    /// The ring that places names while the quorum is present.
    public let ring: HashRing

    public func owner(of name: String, among members: [String]) -> String? {
        members.count >= quorum ? ring.owner(of: name, among: members) : nil
    }
}
