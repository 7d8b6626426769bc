import Logging
import ParleyRuntime
import Synchronization

/// Where errors thrown by ``go(_:)`` and ``thread(_:)`` bodies are reported (core.async hands
/// them to the thread's uncaught-exception handler). By default they are logged at error
/// level on the `parley.channels` logger.
///
/// ```swift
/// ChannelErrors.handler = { error in metrics.increment("go.failed") }
/// ```
public enum ChannelErrors {
    private static let current = Locked<(@Sendable (any Error) -> Void)?>(nil)
    static let logger = Logger(label: "parley.channels")

    /// Replaces the reporter (nil restores logging).
    public static var handler: (@Sendable (any Error) -> Void)? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    private static let warnedBlocking = Atomic<Bool>(false)

    /// A blocking channel operation (`sendBlocking`, `receiveBlocking`, `altsBlocking`) on a
    /// scheduler thread stalls every process queued there (core.async checks for the same
    /// mistake in go blocks). Logged once per OS process, as a warning.
    static func warnBlockingOnScheduler() {
        guard !warnedBlocking.exchange(true, ordering: .relaxed) else { return }
        logger.warning("a blocking channel operation ran on a scheduler thread: use send/receive (which park) in processes and go blocks, and the blocking forms only in thread { } or plain threads")
    }

    static func report(_ error: any Error, in what: String) {
        if let h = handler { h(error); return }
        logger.error("\(what) body threw: \(error)", metadata: ["error": "\(error)"])
    }
}

/// Runs `body` as a lightweight process (core.async's `go`, Go's `go`): a Swift task on
/// Parley's scheduler that parks, never holding an OS thread, whenever it waits on a
/// channel. Returns a channel that receives the body's result and is then closed; if the
/// body throws, the channel is closed without a value and the error is reported to
/// ``ChannelErrors/handler``.
///
/// ```swift
/// let answer = go { 6 * 7 }
/// print(try await answer.receive()!)     // 42
/// ```
@discardableResult
public func go<T: Sendable>(_ body: sending @escaping () async throws -> T) -> Channel<T> {
    let result = Channel<T>(buffer: .fixed(1))
    // Typed as throwing though it never throws: the throwing `Task.detached` takes it as it
    // is, where the non-throwing one wraps it in a reabstraction thunk (an allocation per
    // spawn).
    let run: @isolated(any) () async throws -> Void = {
        let box = RootBox()
        box.address = GoBlock.currentTaskAddress()
        await GoBlock.$root.withValue(box) {
            do {
                let value = try await body()
                _ = result.offer(value)
            } catch {
                ChannelErrors.report(error, in: "go")
            }
        }
        result.close()
    }
    // As SequentialProcess.start: no preference once Parley is the global executor.
    if Scheduler.isGlobalExecutor {
        Task.detached(operation: run)
    } else {
        Task.detached(executorPreference: Scheduler.shared.executor, operation: run)
    }
    return result
}

/// Tells a `go` block's own task from its child tasks (which inherit task-locals but can be
/// cancelled through their handles).
enum GoBlock {
    @TaskLocal static var root: RootBox? = nil

    static var isRoot: Bool {
        guard let r = root else { return false }
        return r.address == currentTaskAddress()
    }

    static func currentTaskAddress() -> UInt {
        // The task pointer is compared, never dereferenced.
        withUnsafeCurrentTask { t in t.map { unsafeBitCast($0, to: UInt.self) } ?? 0 }
    }
}

final class RootBox: @unchecked Sendable {
    // @unchecked Sendable: `address` is written once by the go block's task, before anything
    // it starts can read it.
    var address: UInt = 0
}

/// Runs `body` on the blocking pool (core.async's `thread`), for work that blocks or takes
/// long: blocking channel operations (``Chan/sendBlocking(_:)``), file or socket I/O, heavy
/// computation. Returns a channel that receives the result and is then closed (closed
/// without a value, the error reported, if the body throws).
///
/// ```swift
/// let sum = thread { (1...1_000_000).reduce(0, +) }
/// print(try await sum.receive()!)
/// ```
@discardableResult
public func thread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> Channel<T> {
    let result = Channel<T>(buffer: .fixed(1))
    Scheduler.shared.blocking.submit {
        do {
            let value = try body()
            _ = result.offer(value)
        } catch {
            ChannelErrors.report(error, in: "thread")
        }
        result.close()
    }
    return result
}

/// A channel that closes after `duration` (core.async's `timeout`): put it in a select or
/// `alts` as a deadline. Deadlines that fall in the same 4 ms slot share one channel, as
/// core.async shares them within its 10 ms resolution, so a loop that makes many timeouts
/// makes few timers.
///
/// ```swift
/// let deadline = timeout(.milliseconds(50))
/// let r = try await alts([work, deadline])   // index 1: timed out
/// ```
public func timeout(_ duration: Duration) -> Channel<Void> {
    TimeoutChannels.channel(closingAt: MonotonicClock.deadline(after: duration))
}

enum TimeoutChannels {
    /// The slot width: deadlines within it share a channel (closed at the slot's end, so a
    /// timeout never fires early).
    static let resolution: UInt64 = 4_000_000
    private static let slots = Locked<[UInt64: Channel<Void>]>([:])

    static func channel(closingAt deadline: UInt64) -> Channel<Void> {
        let slot = (deadline + resolution - 1) / resolution
        let (ch, isNew) = slots.withLock { s -> (Channel<Void>, Bool) in
            if let c = s[slot] { return (c, false) }
            let c = Channel<Void>()
            s[slot] = c
            return (c, true)
        }
        if isNew {
            Scheduler.shared.timers.schedule(at: slot * resolution) {
                _ = slots.withLock { $0.removeValue(forKey: slot) }
                ch.close()
            }
        }
        return ch
    }
}
