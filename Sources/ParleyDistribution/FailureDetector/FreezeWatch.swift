import ParleyRuntime
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a clock that should beat every period stood still: the state of ``FreezeWatch``,
/// a pure value (times in monotonic nanoseconds) so its rule is tested on its own.
package struct FreezeClock: Sendable, Equatable {
    /// The last beat, and the beat that came after a gap (0: none yet).
    package private(set) var lastBeat: UInt64
    package private(set) var lastFreeze: UInt64 = 0

    package init(startedAt now: UInt64) { lastBeat = now }

    /// A beat at `now`: a gap of more than `gap` since the last one was a freeze.
    package mutating func beat(at now: UInt64, gap: UInt64) {
        if now &- lastBeat > gap { lastFreeze = now }
        lastBeat = now
    }

    /// Whether the clock stood still for more than `gap` within `window` before `now`. Also
    /// true when it has not beaten for `gap` (it is still standing, or was until a moment
    /// ago: right after a SIGCONT the beating thread may not have run yet).
    package func wasFrozen(at now: UInt64, gap: UInt64, window: UInt64) -> Bool {
        if now &- lastBeat > gap { return true }
        return lastFreeze != 0 && now &- lastFreeze < window
    }
}

/// Tells whether this OS process was frozen (SIGSTOP, a paused VM) long enough for its peers
/// to declare its node down. A thread of its own wakes every 100 ms; a gap of more than a
/// second between two wake-ups means the whole process stood still. Not a Parley process:
/// on a loaded machine a process can wait that long for a scheduler thread (a job holding
/// one) while the node is not frozen at all, and a registry that took that wait for a
/// freeze fenced its own names after the next nodedown, with nobody to restart them.
///
/// ```swift
/// FreezeWatch.start()
/// if FreezeWatch.wasFrozen(within: .seconds(10)) { /* the peers have restarted our work */ }
/// ```
package enum FreezeWatch {
    /// A gap longer than this between beats is a freeze.
    package static let gap: Duration = .seconds(1)
    static let periodMicroseconds: UInt32 = 100_000

    /// Nil until ``start()``: a watch that never beat reports nothing.
    private static let clock = Mutex<FreezeClock?>(nil)

    /// Starts the beating thread once per OS process (later calls do nothing).
    package static func start() {
        let first = clock.withLock { c -> Bool in
            guard c == nil else { return false }
            c = FreezeClock(startedAt: now())
            return true
        }
        guard first else { return }
        startThread(name: "parley-freeze") {
            let gap = MonotonicClock.nanoseconds(Self.gap)
            while true {
                usleep(periodMicroseconds)
                let t = now()
                clock.withLock { $0?.beat(at: t, gap: gap) }
            }
        }
    }

    /// Whether the process was frozen for more than ``gap`` within `window` (false before
    /// ``start()``).
    package static func wasFrozen(within window: Duration) -> Bool {
        let t = now()
        return clock.withLock { c in
            c?.wasFrozen(at: t, gap: MonotonicClock.nanoseconds(gap), window: MonotonicClock.nanoseconds(window)) ?? false
        }
    }

    /// Nanoseconds of a clock that also runs while the machine sleeps (CLOCK_BOOTTIME on
    /// Linux; CLOCK_MONOTONIC counts sleep on Darwin): a suspended laptop or VM stood still
    /// as a stopped process does, and its peers may have declared it down meanwhile.
    static func now() -> UInt64 {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_BOOTTIME, &ts)
        #else
        clock_gettime(CLOCK_MONOTONIC, &ts)
        #endif
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
