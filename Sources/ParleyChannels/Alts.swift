import ParleyRuntime
import Synchronization

/// An `alts` over an array of channels as a ``SelectSource``: no per-case objects, and cells
/// only for the channels it queues on.
@usableFromInline
struct ChannelArray<Input: Sendable, Output: Sendable>: SelectSource {
    @usableFromInline let channels: [Chan<Input, Output>]
    @usableFromInline var cells: [Cell<Output>?] = []
    @usableFromInline var value: Output? = nil

    @inlinable init(_ channels: [Chan<Input, Output>]) { self.channels = channels }

    @inlinable
    var count: Int { channels.count }
    @inlinable
    func caseIndex(_ k: Int) -> Int { k }
    @inlinable
    func mayBeReady(_ k: Int) -> Bool { channels[k].readyHint.load(ordering: .relaxed) > 0 }

    @inlinable
    mutating func attempt(_ k: Int, active: Waiter?) -> SelectAttempt { run(k, cell: nil, active: active) }

    @inlinable
    mutating func register(_ k: Int, owner: Waiter) -> SelectAttempt {
        if cells.isEmpty { cells = Array(repeating: nil, count: channels.count) }
        let c = Cell<Output>(owner: owner, index: k, value: nil)
        cells[k] = c
        return run(k, cell: c, active: owner)
    }

    @inlinable
    mutating func run(_ k: Int, cell: Cell<Output>?, active: Waiter?) -> SelectAttempt {
        let (attempt, result) = channels[k].selectTake(cell: cell, active: active)
        if attempt == .completed { value = result }
        return attempt
    }

    @inlinable
    mutating func collect(caseIndex index: Int) {
        value = cells[index]?.value
        cells[index]?.value = nil
    }
}

/// Receives from whichever of `channels` has a value first (core.async's `alts!` over
/// read ports): returns the value (nil if that channel is closed and drained) and the index
/// of its channel. With `default: true`, returns `nil` at once if none is ready (`:default`).
///
/// Cost: a ready channel is found by random probes and a scan that skips empty channels
/// without locking them; only a wait queues a cell in each channel.
///
/// ```swift
/// let chans = (0..<1000).map { _ in Channel<String>() }
/// for ch in chans { go { try await ch.send("hi") } }
/// for _ in chans { let (v, i) = try await alts(chans)!; print(i, v!) }
/// ```
/// - Throws: ``ChannelError/cancelled``, ``ChannelError/tooManyPending(limit:)``, ``ChannelError/noCases``.
@inlinable
public func alts<Input, Output>(_ channels: [Chan<Input, Output>], order: SelectOrder = .fair, default: Bool = false,
                                timeout: Duration? = nil) async throws(ChannelError) -> (value: Output?, index: Int)? {
    var src = ChannelArray(channels)
    var x = SelectExtras()
    if `default` { x.defaultIndex = channels.count }
    if let timeout { x.deadline = MonotonicClock.deadline(after: timeout); x.timeoutIndex = channels.count + 1 }
    let w = try await SelectEngine.choose(&src, x, order: order)
    return w < channels.count ? (src.value, w) : nil
}

/// The blocking form of ``alts(_:order:default:timeout:)`` for plain threads (core.async's
/// `alts!!`).
///
/// ```swift
/// if let (v, i) = try altsBlocking([a, b], timeout: .seconds(1)) { print("channel \(i): \(v as Any)") }
/// ```
@inlinable
public func altsBlocking<Input, Output>(_ channels: [Chan<Input, Output>], order: SelectOrder = .fair, default: Bool = false,
                                        timeout: Duration? = nil) throws(ChannelError) -> (value: Output?, index: Int)? {
    var src = ChannelArray(channels)
    var x = SelectExtras()
    if `default` { x.defaultIndex = channels.count }
    if let timeout { x.deadline = MonotonicClock.deadline(after: timeout); x.timeoutIndex = channels.count + 1 }
    let w = try SelectEngine.chooseBlocking(&src, x, order: order)
    return w < channels.count ? (src.value, w) : nil
}
