import ParleyRuntime

/// Copies every value of a source channel to all channels tapped onto it (core.async's
/// `mult`). Make one with ``mult(_:)``; add channels with ``tap(_:close:)``, remove them
/// with ``untap(_:)`` and ``untapAll()``.
///
/// Delivery is in lock-step, as in core.async: a value is offered to every current tap at
/// once, and the next value is not taken from the source until every tap has accepted it,
/// so a slow tap holds the others back (give taps buffers, or sliding/dropping ones, to
/// decouple them). A value that arrives while there are no taps is dropped. A tap that is
/// found closed when a value is offered to it is untapped. When the source is closed and
/// drained, the taps made with `close: true` are closed.
///
/// ```swift
/// let source = Channel<String>()
/// let m = mult(source)
/// let a = m.tap(Channel<String>(buffer: .fixed(8)))
/// let b = m.tap(Channel<String>(buffer: .fixed(8)))
/// try await source.send("hello")
/// print(try await a.receive()!, try await b.receive()!)   // hello hello
/// ```
public final class Mult<Value: Sendable>: Sendable {
    /// A tap, its channel's type erased.
    struct Tap: Sendable {
        let put: @Sendable (Value, @escaping @Sendable (Bool) -> Void) throws(ChannelError) -> Void
        let close: @Sendable () -> Void
        let closeWithSource: Bool
    }

    private let taps = Locked<[ObjectIdentifier: Tap]>([:])

    init<I>(_ source: Chan<I, Value>) {
        let taps = self.taps
        go {
            // The round's outstanding acceptances; the last one to arrive signals `allAccepted`.
            let outstanding = Locked(0)
            let allAccepted = Channel<Void>(buffer: .fixed(1))
            while let value = try await source.receive() {
                let round = taps.withLock { Array($0) }
                if round.isEmpty { continue }   // core.async: values with no taps are dropped
                outstanding.withLock { $0 = round.count }
                @Sendable func accepted() {
                    if outstanding.withLock({ $0 -= 1; return $0 == 0 }) { _ = allAccepted.offer(()) }
                }
                for (id, tap) in round {
                    do {
                        try tap.put(value) { ok in
                            // core.async: a tap that refuses the value (closed) is untapped.
                            if !ok { _ = taps.withLock { $0.removeValue(forKey: id) } }
                            accepted()
                        }
                    } catch {
                        // Too many pending sends on this tap: it misses this value.
                        ChannelErrors.report(error, in: "mult")
                        accepted()
                    }
                }
                _ = try await allAccepted.receive()
            }
            for tap in taps.withLock({ Array($0.values) }) where tap.closeWithSource { tap.close() }
        }
    }

    /// Adds `channel` as a tap: it gets a copy of every value the source delivers from now
    /// on (core.async's `tap`). It is closed when the source is, unless `close` is `false`.
    /// Tapping a channel again replaces its `close` setting.
    ///
    /// ```swift
    /// let copies = m.tap(Channel<Int>(buffer: .sliding(1)), close: false)
    /// ```
    /// - Returns: `channel`.
    @discardableResult
    public func tap<O>(_ channel: Chan<Value, O>, close: Bool = true) -> Chan<Value, O> {
        let tap = Tap(put: { v, done throws(ChannelError) in try channel.put(v, onComplete: done) },
                      close: { channel.close() },
                      closeWithSource: close)
        taps.withLock { $0[ObjectIdentifier(channel)] = tap }
        return channel
    }

    /// Removes `channel` from the taps (core.async's `untap`). A value already offered to it
    /// may still arrive.
    ///
    /// ```swift
    /// m.untap(copies)
    /// ```
    public func untap<O>(_ channel: Chan<Value, O>) {
        _ = taps.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Removes every tap (core.async's `untap-all`).
    ///
    /// ```swift
    /// m.untapAll()
    /// ```
    public func untapAll() {
        taps.withLock { $0.removeAll() }
    }

    /// The number of channels tapped now.
    ///
    /// ```swift
    /// if m.tapCount == 0 { print("nobody listens: values are dropped") }
    /// ```
    public var tapCount: Int { taps.withLock { $0.count } }
}

/// Makes a ``Mult`` of `source` (core.async's `mult`): from now on a `go` block takes
/// every value of `source` and copies it to the mult's taps.
///
/// ```swift
/// let events = Channel<String>(buffer: .fixed(16))
/// let m = mult(events)
/// let logger = m.tap(Channel<String>(buffer: .fixed(64)))
/// ```
public func mult<I, T>(_ source: Chan<I, T>) -> Mult<T> {
    Mult(source)
}
