/// A channel that receives every value of `channels` (core.async's `merge`), in a `go`
/// block that takes from whichever source is ready (as ``alts(_:order:default:timeout:)``
/// does, in random order). The result is closed once every source is closed and drained.
///
/// Values from one source keep their order; values from different sources interleave in
/// any order. With no sources, the result is closed at once.
///
/// ```swift
/// let all = merge([toChannel([1, 2]), toChannel([10, 20])], buffer: .fixed(4))
/// print(try await into(all).sorted())  // [1, 2, 10, 20]
/// ```
/// - Parameter buffer: the result's buffer; unbuffered by default, as in core.async.
public func merge<I, T>(_ channels: [Chan<I, T>], buffer: BufferPolicy = .unbuffered) -> Channel<T> {
    let out = Channel<T>(buffer: buffer)
    go {
        var sources = channels
        while !sources.isEmpty {
            guard let (value, index) = try await alts(sources) else { break }
            if let value {
                // core.async ignores whether `out` took it: `(do (>! out v) (recur cs))`.
                try await out.send(value)
            } else {
                let closed = sources[index]
                sources.removeAll { $0 === closed }
            }
        }
        out.close()
    }
    return out
}
