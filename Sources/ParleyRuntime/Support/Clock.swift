#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic time in nanoseconds, as the scheduler and timers see it.
///
/// ```swift
/// let t0 = MonotonicClock.now
/// // ... work ...
/// let elapsed = MonotonicClock.now - t0   // nanoseconds
/// ```
@usableFromInline
package enum MonotonicClock {
    /// Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC).
    @inlinable
    package static var now: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// A cheaper, coarse reading (a few milliseconds of resolution), used where
    /// only long intervals matter, such as the long-schedule detector.
    @inlinable
    package static var coarse: UInt64 {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        #else
        clock_gettime(CLOCK_MONOTONIC, &ts)
        #endif
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Converts a Swift `Duration` to whole nanoseconds, clamping negatives to zero
    /// and huge values to `UInt64.max`.
    @inlinable
    package static func nanoseconds(_ d: Duration) -> UInt64 {
        // Up to about 18 s, one 64-bit division (a call's timeout is converted on every
        // call); `components` divides 128-bit integers.
        let attos = d.attoseconds
        if attos >= 0 && attos <= Int128(UInt64.max) { return UInt64(attos) / 1_000_000_000 }
        let (s, atto) = d.components
        if s < 0 { return 0 }
        if s > 9_000_000_000 { return .max }
        return UInt64(s) &* 1_000_000_000 &+ UInt64(atto / 1_000_000_000)
    }

    /// The deadline `d` from now, saturating at `UInt64.max`. From the precise clock: the
    /// coarse one may lag it by more than its stated resolution on a tickless idle CPU, and
    /// a deadline read from it could fire early.
    @inlinable
    package static func deadline(after d: Duration) -> UInt64 {
        let n = nanoseconds(d)
        let t = now
        return n > UInt64.max - t ? .max : t + n
    }
}
