import CParleyShims
import Synchronization

/// Keeps a CPU from going idle for a short window after I/O activity, as the BEAM's
/// schedulers busy-wait before they sleep (`erl +sbwt`).
///
/// On a virtual machine, a thread woken on an idle (halted) virtual CPU waits for the
/// hypervisor to bring that CPU back: tens of microseconds, more than a round trip over
/// loopback TCP itself. While I/O was active within `window`, one thread of the idle
/// scheduling class (SCHED_IDLE) spins, so a CPU stays awake: it runs only when nothing else
/// wants the CPU, and a thread that wakes there (an I/O thread whose read completed)
/// preempts it at once. After `window` without activity it parks, costing nothing. Where
/// there is no idle scheduling class (other systems than Linux) it never spins.
///
/// ```swift
/// let busy = BusyWait(window: .microseconds(500))
/// busy.noteActivity()      // after each read and write
/// busy.stop()              // when the connections close
/// ```
package final class BusyWait: Sendable {
    /// How long after the last activity the spinning goes on.
    package let window: Duration
    private let windowNanos: UInt64
    /// Monotonic nanoseconds of the last activity. Written sequentially consistent, so that
    /// it and `parked` form Dekker's pattern; the spinner's own loop reads it relaxed.
    private let last = Atomic<UInt64>(0)
    /// Set by the spinner before it parks, and re-checked against `last` after (Dekker's
    /// pattern, both sides sequentially consistent), so that no activity leaves it parked.
    private let parked = Atomic<Bool>(false)
    /// Set once by `stop()` (sequentially consistent, then an unpark); the loop polls it
    /// relaxed, as a late look only costs one more spin round.
    private let stopped = Atomic<Bool>(false)
    /// Whether the thread is spinning now (for tests and introspection; relaxed).
    let spinning = Atomic<Bool>(false)
    var isSpinning: Bool { spinning.load(ordering: .relaxed) }
    private let parker = Parker()

    /// Starts the spinning thread (parked until the first activity). The thread keeps the
    /// object alive until ``stop()``: call it when the I/O it watches ends.
    package init(window: Duration) {
        self.window = window
        self.windowNanos = MonotonicClock.nanoseconds(window)
        startThread(name: "parley-busywait") { [self] in loop() }
    }

    /// Records I/O activity: the spinner keeps a CPU awake for `window` from now.
    @inline(__always)
    package func noteActivity() {
        last.store(MonotonicClock.now, ordering: .sequentiallyConsistent)
        if parked.load(ordering: .sequentiallyConsistent), parked.exchange(false, ordering: .sequentiallyConsistent) {
            parker.unpark()
        }
    }

    /// Stops the spinning thread (it exits once it sees the flag).
    package func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        parker.unpark()
    }

    private func loop() {
        // Spinning at normal priority would take CPU from real work: without the idle class
        // (not Linux, or refused) this thread does nothing.
        guard parley_set_idle_priority() == 0 else { return }
        while !stopped.load(ordering: .relaxed) {
            if MonotonicClock.now &- last.load(ordering: .relaxed) < windowNanos {
                spinning.store(true, ordering: .relaxed)
                // A few microseconds of arithmetic in registers between looks at shared
                // memory: the cache lines that senders and readers write stay theirs. No
                // PAUSE: a hypervisor may take a PAUSE loop for a spinning lock holder and
                // deschedule this virtual CPU, which is what we try to avoid.
                var x = UInt64(truncatingIfNeeded: windowNanos) | 1
                for _ in 0..<1024 { x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
                if x == 0 { spinning.store(true, ordering: .relaxed) }  // keeps the loop; never true in practice
                continue
            }
            parked.store(true, ordering: .sequentiallyConsistent)
            if MonotonicClock.now &- last.load(ordering: .sequentiallyConsistent) < windowNanos || stopped.load(ordering: .sequentiallyConsistent) {
                parked.store(false, ordering: .sequentiallyConsistent)
                continue
            }
            spinning.store(false, ordering: .relaxed)
            parker.park()
        }
        spinning.store(false, ordering: .relaxed)
    }
}
