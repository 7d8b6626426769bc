import ParleyRuntime

/// A channel of `transform` applied to one value from each of `channels` at a time
/// (core.async's `map` over channels): the first values of all of them, then the second
/// values, and so on. The result is closed as soon as a round finds one of the sources
/// closed.
///
/// Each round asks every source for a value at once (callback receives, core.async's
/// `take!`) and waits for all of them, so a round never holds a value of one source back
/// waiting on another. A `go` block runs the rounds. With no sources, the result is
/// closed at once.
///
/// ```swift
/// let sums = map({ $0.reduce(0, +) }, [toChannel([1, 2, 3]), toChannel([10, 20, 30])])
/// print(try await into(sums))   // [11, 22, 33]
/// ```
/// - Parameter buffer: the result's buffer; unbuffered by default, as in core.async.
public func map<I, T, R>(_ transform: @escaping @Sendable ([T]) -> R, _ channels: [Chan<I, T>],
                         buffer: BufferPolicy = .unbuffered) -> Channel<R> {
    let out = Channel<R>(buffer: buffer)
    if channels.isEmpty {
        out.close()
        return out
    }
    let round = MapRound<T>(count: channels.count)
    // One put per round, into a buffer of one: it never waits.
    let complete = Channel<[T?]>(buffer: .fixed(1))
    go {
        while true {
            round.start()
            for (i, channel) in channels.enumerated() {
                do {
                    try channel.take { value in
                        if let all = round.set(i, value) { _ = complete.offer(all) }
                    }
                } catch {
                    // Too many pending receives on this source: count it as closed, which
                    // ends the map (core.async lets the exception end the round instead).
                    if let all = round.set(i, nil) { _ = complete.offer(all) }
                }
            }
            guard let values = try await complete.receive() else { return }
            var args: [T] = []
            args.reserveCapacity(values.count)
            for v in values {
                guard let v else {
                    out.close()
                    return
                }
                args.append(v)
            }
            // core.async ignores whether `out` took it: `(do (>! out (apply f rets)) (recur))`.
            try await out.send(transform(args))
        }
    }
    return out
}

/// One round of `map`: the values taken so far and how many are still awaited.
final class MapRound<T: Sendable>: Sendable {
    private struct State {
        var values: [T?]
        var remaining = 0
    }
    private let state: Locked<State>

    init(count: Int) { state = Locked(State(values: Array(repeating: nil, count: count))) }

    func start() {
        state.withLock { s in
            for i in s.values.indices { s.values[i] = nil }
            s.remaining = s.values.count
        }
    }

    /// Records source `i`'s value; returns all of them when it was the last one awaited.
    func set(_ i: Int, _ value: T?) -> [T?]? {
        state.withLock { s in
            s.values[i] = value
            s.remaining -= 1
            return s.remaining == 0 ? s.values : nil
        }
    }
}
