import ParleyRuntime

/// What a channel that opted into introspection looks like now: its buffer, how full it is,
/// who waits on it, and whether it is closed. ``ChannelIntrospection/channels`` lists them;
/// the observer's Channels page shows them.
///
/// ```swift
/// let jobs = Channel<Int>(buffer: .fixed(100)).observed(as: "jobs")
/// print(ChannelIntrospection.channels.first { $0.name == "jobs" }?.count ?? 0)   // 0
/// ```
public struct ChannelSnapshot: Sendable, Hashable, Codable {
    /// The name given to ``Chan/observed(as:)``.
    public let name: String
    /// The buffer policy (`fixed(100)`, `sliding(1)`, `unbuffered`, `promise`).
    public let buffer: String
    /// The buffer's size (0 for unbuffered and promise channels).
    public let capacity: Int
    /// Values in the buffer now (a promise: 1 once it has its value).
    public let count: Int
    /// Senders and receivers waiting now (core.async's pending puts and takes).
    public let pendingSends: Int
    public let pendingReceives: Int
    public let isClosed: Bool
    /// The `Input` and `Output` types' names (one when they are the same).
    public let elementType: String
    /// How long ago it was registered, in seconds.
    public let ageSeconds: Double
}

/// Channels that opted into introspection, as weak references: a channel listed here still
/// goes away when its last user drops it, and then leaves the list.
///
/// Opting in is per channel (``Chan/observed(as:)``) because the list holds a weak
/// reference: the channel's object then has a side table, so each retain and release of
/// that channel takes the runtime's slower path. Channels that never opt in pay nothing.
public enum ChannelIntrospection {
    struct Entry {
        weak var channel: (any IntrospectableChannel)?
        let name: String
        let registeredAt: UInt64
    }

    private static let registry = Locked<[ObjectIdentifier: Entry]>([:])

    static func register(_ channel: any IntrospectableChannel, name: String) {
        registry.withLock { $0[ObjectIdentifier(channel)] = Entry(channel: channel, name: name, registeredAt: MonotonicClock.now) }
    }

    /// Takes `channel` off the list (it also leaves on its own once it is gone).
    public static func forget<I, O>(_ channel: Chan<I, O>) {
        _ = registry.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Every observed channel still alive, sorted by name. Each channel's figures are read
    /// under its own lock, one at a time, after the list's lock is released.
    public static var channels: [ChannelSnapshot] {
        let live = registry.withLock { entries -> [(any IntrospectableChannel, String, UInt64)] in
            var live: [(any IntrospectableChannel, String, UInt64)] = []
            for (key, entry) in entries {
                if let c = entry.channel { live.append((c, entry.name, entry.registeredAt)) } else { entries.removeValue(forKey: key) }
            }
            return live
        }
        let now = MonotonicClock.now
        return live.map { channel, name, at in
            channel.snapshot(name: name, ageSeconds: Double(now &- at) / 1e9)
        }.sorted { $0.name == $1.name ? $0.ageSeconds > $1.ageSeconds : $0.name < $1.name }
    }
}

/// A channel the introspection list can read without knowing its element types.
protocol IntrospectableChannel: AnyObject, Sendable {
    func snapshot(name: String, ageSeconds: Double) -> ChannelSnapshot
}

extension Chan: IntrospectableChannel {
    /// Lists this channel, under `name`, in ``ChannelIntrospection/channels`` (and on the
    /// observer's Channels page) for as long as it lives; returns it, for chaining. Names
    /// need not be unique. See ``ChannelIntrospection`` for what opting in costs.
    ///
    /// ```swift
    /// let results = Channel<String>(buffer: .sliding(16)).observed(as: "results")
    /// ```
    @discardableResult
    public func observed(as name: String) -> Self {
        ChannelIntrospection.register(self, name: name)
        return self
    }

    func snapshot(name: String, ageSeconds: Double) -> ChannelSnapshot {
        let (count, capacity, closed, pending) = withLock { s in
            (s.buffer?.count ?? 0, s.buffer?.capacity ?? 0, s.closed, s.pending)
        }
        let types = Input.self == Output.self ? "\(Output.self)" : "\(Input.self) → \(Output.self)"
        return ChannelSnapshot(name: name, buffer: buffer.description, capacity: capacity, count: count,
                               pendingSends: pending.sends, pendingReceives: pending.receives, isClosed: closed,
                               elementType: types, ageSeconds: ageSeconds)
    }
}
