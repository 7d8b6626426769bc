/// Moves every value from `from` to `to` (core.async's `pipe`), in a `go` block.
///
/// When `from` is closed and drained, `to` is closed too, unless `close` is `false`. If `to`
/// closes first, the pipe stops taking from `from` (the value it held is refused by `to`).
///
/// ```swift
/// let source = toChannel([1, 2, 3])
/// let sink = pipe(source, Channel<Int>(buffer: .fixed(8)))
/// print(try await into(sink))          // [1, 2, 3]
/// ```
/// - Returns: `to`.
@discardableResult
public func pipe<A, T, B>(_ from: Chan<A, T>, _ to: Chan<T, B>, close: Bool = true) -> Chan<T, B> {
    go {
        while let value = try await from.receive() {
            // core.async: `(when (>! to v) (recur))`: a closed `to` ends the pipe.
            guard try await to.send(value) else { return }
        }
        if close { to.close() }
    }
    return to
}
