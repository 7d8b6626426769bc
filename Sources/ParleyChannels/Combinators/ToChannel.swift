/// A channel holding the values of `values`, closed after the last one (core.async's
/// `to-chan!`).
///
/// As in core.async, up to 100 values are looked at first to size the buffer: a sequence
/// of at most 100 values is wholly buffered at once (an empty one gives a closed channel);
/// a longer or endless one gets a buffer of 100 and a `go` block feeds it the rest as it is
/// drained. The sequence is read on the caller for those first values, then in the `go`
/// block.
///
/// ```swift
/// let ch = toChannel(1...3)
/// print(try await into(ch))    // [1, 2, 3]
/// ```
public func toChannel<S: Sequence & Sendable>(_ values: S) -> Channel<S.Element> where S.Element: Sendable {
    let limit = 100
    var iterator = values.makeIterator()
    var head: [S.Element] = []
    while head.count < limit, let v = iterator.next() { head.append(v) }
    let channel = Channel<S.Element>(buffer: head.isEmpty ? .unbuffered : .fixed(head.count))
    // Room for all of them: each offer completes.
    for v in head { _ = channel.offer(v) }
    if head.count < limit {
        channel.close()
        return channel
    }
    let rest = FeedingIterator(iterator)
    go {
        while let v = rest.next() {
            guard try await channel.send(v) else { return }
        }
        channel.close()
    }
    return channel
}

/// Sends the values of `values` to `channel`, in order, from a `go` block (core.async's
/// `onto-chan!`), then closes `channel` unless `close` is `false`. Stops early if `channel`
/// is closed meanwhile.
///
/// ```swift
/// let ch = Channel<Int>(buffer: .fixed(10))
/// try await onto(ch, 0..<10).receive()   // nil once all ten were sent
/// print(try await into(ch))               // [0, 1, ..., 9]
/// ```
/// - Returns: a channel that is closed, with no value, once the values were sent.
@discardableResult
public func onto<T, O, S: Sequence & Sendable>(_ channel: Chan<T, O>, _ values: S, close: Bool = true) -> Channel<Void>
where S.Element == T {
    let done = Channel<Void>()
    go {
        defer { done.close() }
        for v in values {
            guard try await channel.send(v) else { break }
        }
        // core.async closes `ch` whether or not a put was refused.
        if close { channel.close() }
    }
    return done
}

/// An iterator handed to the one `go` block that drains it.
final class FeedingIterator<Base: IteratorProtocol>: @unchecked Sendable {
    // @unchecked Sendable: once `toChannel` hands it over, only the one go block draining it touches it.
    private var base: Base
    init(_ base: Base) { self.base = base }
    func next() -> Base.Element? { base.next() }
}
