/// Splits `from` in two by `predicate` (core.async's `split`): the first channel gets the
/// values for which `predicate` is true, the second the others. A `go` block moves the
/// values; both channels are closed once `from` is closed and drained.
///
/// Each value waits until its channel takes it, so an unread side holds the other back;
/// give buffers (or read both sides concurrently) when one side may lag. If the channel a
/// value is for is closed, the split stops.
///
/// ```swift
/// let (evens, odds) = split({ $0 % 2 == 0 }, toChannel(1...6), trueBuffer: .fixed(3), falseBuffer: .fixed(3))
/// print(try await into(evens), try await into(odds))   // [2, 4, 6] [1, 3, 5]
/// ```
public func split<I, T>(_ predicate: @escaping @Sendable (T) -> Bool, _ from: Chan<I, T>,
                        trueBuffer: BufferPolicy = .unbuffered,
                        falseBuffer: BufferPolicy = .unbuffered) -> (Channel<T>, Channel<T>) {
    let matching = Channel<T>(buffer: trueBuffer)
    let rest = Channel<T>(buffer: falseBuffer)
    go {
        while let value = try await from.receive() {
            // core.async: `(when (>! (if (p v) tc fc) v) (recur))`.
            guard try await (predicate(value) ? matching : rest).send(value) else { return }
        }
        matching.close()
        rest.close()
    }
    return (matching, rest)
}
