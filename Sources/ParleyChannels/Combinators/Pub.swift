import ParleyRuntime

/// Splits a source channel's values into topics and copies each to the channels subscribed
/// to its topic (core.async's `pub`). Make one with ``pub(_:topic:buffer:)``; subscribe with
/// ``sub(_:_:close:)``, unsubscribe with ``unsub(_:_:)``, ``unsubAll()`` and
/// ``unsubAll(_:)``.
///
/// Each topic has its own channel, made with the buffer the pub's `buffer` function gives
/// for that topic, and a ``Mult`` of that channel whose taps are the subscribers. A `go`
/// block takes each source value, computes its topic and sends the value to that topic's
/// channel; a value whose topic has no subscribers is dropped. Within a topic delivery is
/// lock-step (every subscriber accepts a value before the next is delivered); a topic
/// buffer lets the pub move on to other topics meanwhile, so with buffers a channel
/// subscribed to several topics may see them interleaved differently from the source. When
/// the source is closed and drained, every topic's channel is closed, which closes the
/// subscribers made with `close: true`.
///
/// ```swift
/// let source = Channel<String>()
/// let p = pub(source, topic: { $0.hasPrefix("#") ? "tag" : "text" })
/// let tags = p.sub("tag", Channel<String>(buffer: .fixed(8)))
/// try await source.send("#swift")
/// print(try await tags.receive()!)   // "#swift"
/// ```
public final class Pub<Value: Sendable, Topic: Hashable & Sendable>: Sendable {
    /// A topic's channel and the mult that copies it to the topic's subscribers.
    final class TopicMult: Sendable {
        let channel: Channel<Value>
        let mult: Mult<Value>
        init(_ buffer: BufferPolicy) {
            channel = Channel<Value>(buffer: buffer)
            mult = Mult(channel)
        }

        /// Ends the topic without closing its subscribers: the mult loses its taps, then
        /// its channel is closed so that its `go` block finishes.
        func retire() {
            mult.untapAll()
            channel.close()
        }
    }

    private let mults = Locked<[Topic: TopicMult]>([:])
    private let bufferFor: @Sendable (Topic) -> BufferPolicy

    init<I>(_ source: Chan<I, Value>, topic topicOf: @escaping @Sendable (Value) -> Topic,
            buffer: @escaping @Sendable (Topic) -> BufferPolicy) {
        bufferFor = buffer
        let mults = self.mults
        go {
            while let value = try await source.receive() {
                let topic = topicOf(value)
                // core.async: a value whose topic has no mult is dropped.
                guard let m = mults.withLock({ $0[topic] }) else { continue }
                if try await !m.channel.send(value) {
                    // The topic's channel was closed: forget the topic (if it is still this one).
                    mults.withLock { if $0[topic] === m { $0[topic] = nil } }
                }
            }
            for m in mults.withLock({ Array($0.values) }) { m.channel.close() }
        }
    }

    /// Subscribes `channel` to `topic` (core.async's `sub`): it gets every later source
    /// value whose topic is `topic`. It is closed when the source is, unless `close` is
    /// `false`. The topic's channel and mult are made on its first subscription.
    ///
    /// ```swift
    /// let alerts = p.sub("alert", Channel<String>(buffer: .fixed(32)))
    /// ```
    /// - Returns: `channel`.
    @discardableResult
    public func sub<O>(_ topic: Topic, _ channel: Chan<Value, O>, close: Bool = true) -> Chan<Value, O> {
        // Tapped under the lock, so that an `unsubAll` either sees the tap (and removes it)
        // or has already forgotten the topic (and this makes a new one).
        mults.withLock { ms in
            let m: TopicMult
            if let existing = ms[topic] {
                m = existing
            } else {
                m = TopicMult(bufferFor(topic))
                ms[topic] = m
            }
            m.mult.tap(channel, close: close)
        }
        return channel
    }

    /// Unsubscribes `channel` from `topic` (core.async's `unsub`). The topic itself stays.
    ///
    /// ```swift
    /// p.unsub("alert", alerts)
    /// ```
    public func unsub<O>(_ topic: Topic, _ channel: Chan<Value, O>) {
        mults.withLock { $0[topic] }?.mult.untap(channel)
    }

    /// Unsubscribes every channel from every topic (core.async's `unsub-all`). The topics
    /// are forgotten: their values are dropped until someone subscribes again. Subscribers
    /// are not closed.
    ///
    /// ```swift
    /// p.unsubAll()
    /// ```
    public func unsubAll() {
        let dropped = mults.withLock { ms in
            defer { ms.removeAll() }
            return Array(ms.values)
        }
        for m in dropped { m.retire() }
    }

    /// Unsubscribes every channel from `topic` and forgets the topic (core.async's
    /// `(unsub-all p topic)`). Subscribers are not closed.
    ///
    /// ```swift
    /// p.unsubAll("alert")
    /// ```
    public func unsubAll(_ topic: Topic) {
        mults.withLock { $0.removeValue(forKey: topic) }?.retire()
    }
}

/// Makes a ``Pub`` of `source` (core.async's `pub`): values are sorted into topics by
/// `topic`, and each topic's channel gets the buffer `buffer` gives for it (unbuffered by
/// default, as in core.async).
///
/// ```swift
/// struct Event: Sendable { let kind: String; let body: String }
/// let events = Channel<Event>(buffer: .fixed(64))
/// let p = pub(events, topic: { $0.kind }, buffer: { kind in kind == "metrics" ? .sliding(100) : .fixed(10) })
/// let errors = p.sub("error", Channel<Event>(buffer: .fixed(16)))
/// ```
public func pub<I, T, Topic: Hashable & Sendable>(_ source: Chan<I, T>, topic: @escaping @Sendable (T) -> Topic,
                                                   buffer: @escaping @Sendable (Topic) -> BufferPolicy = { _ in .unbuffered })
    -> Pub<T, Topic> {
    Pub(source, topic: topic, buffer: buffer)
}
