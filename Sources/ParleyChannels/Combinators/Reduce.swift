/// What a step of ``reduce(_:_:step:)`` returns: go on with the next value, or stop with
/// this result (core.async's `reduced`).
///
/// ```swift
/// // Sums values until the total passes 100.
/// let total = try await reduce(amounts, 0, step: { sum, v in sum + v > 100 ? .reduced(sum + v) : .next(sum + v) })
/// ```
public enum ReduceStep<Result> {
    /// The accumulated result so far; the reduction goes on.
    case next(Result)
    /// The final result; no more values are taken from the channel.
    case reduced(Result)
}

/// Folds the values of `from` into one result, waiting until `from` is closed and drained
/// (core.async's `reduce`, awaited instead of read from a result channel). If the channel
/// closes without a value, the result is `initial` and `combine` is never called.
///
/// ```swift
/// let total = try await reduce(toChannel(1...10), 0, +)   // 55
/// ```
/// - Throws: what `combine` throws, or a ``ChannelError`` from receiving (cancellation).
public func reduce<I, T, R>(_ from: Chan<I, T>, _ initial: R,
                            _ combine: (R, T) throws -> R) async throws -> R {
    var result = initial
    while let value = try await from.receive() {
        result = try combine(result, value)
    }
    return result
}

/// Folds the values of `from` into one result and can stop early: `step` returns
/// ``ReduceStep/reduced(_:)`` to finish without taking more values (core.async's
/// `reduce` with a `reduced` value). Otherwise waits until `from` is closed and drained.
///
/// ```swift
/// // The first value above 100, or 0 if there is none.
/// let found = try await reduce(readings, 0, step: { _, v in v > 100 ? .reduced(v) : .next(0) })
/// ```
/// - Throws: what `step` throws, or a ``ChannelError`` from receiving (cancellation).
public func reduce<I, T, R>(_ from: Chan<I, T>, _ initial: R,
                            step: (R, T) throws -> ReduceStep<R>) async throws -> R {
    var result = initial
    while let value = try await from.receive() {
        switch try step(result, value) {
        case .next(let r): result = r
        case .reduced(let r): return r
        }
    }
    return result
}

/// All values of `from`, in order, once it is closed and drained (core.async's
/// `(into [] ch)`).
///
/// ```swift
/// print(try await into(toChannel(["a", "b"])))   // ["a", "b"]
/// ```
public func into<I, T>(_ from: Chan<I, T>) async throws -> [T] {
    try await into([], from)
}

/// `initial` with every value of `from` appended, once `from` is closed and drained
/// (core.async's `into`).
///
/// ```swift
/// let log = try await into(["start"], toChannel(["a", "b"]))   // ["start", "a", "b"]
/// ```
public func into<I, C: RangeReplaceableCollection>(_ initial: C, _ from: Chan<I, C.Element>) async throws -> C {
    var result = initial
    while let value = try await from.receive() { result.append(value) }
    return result
}
