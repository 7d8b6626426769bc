import CParleyTestWatchdog
import Foundation
import ParleyRuntime
import Synchronization

/// Finds what stalls a test process: with `PARLEY_STALL_DUMP=1`, a thread of its own watches
/// two heartbeats, a task on Swift's cooperative pool (where the tests' own code runs: two
/// threads on two cores) and a timer on Parley's scheduler (whose workers fire timers
/// between jobs), and when either has been silent for a second it writes
/// every thread's stack (`gdb -batch -ex "thread apply all bt"`) to
/// `$PARLEY_STALL_DIR` (default `/tmp/parley-stalls`) and says so on stderr. At most five
/// dumps, ten seconds apart. Started before any test by a C constructor
/// (`Tests/CParleyTestWatchdog`).
public enum StallWatchdog {
    /// The heartbeat's last beat, nanoseconds of the monotonic clock (relaxed: a single
    /// value read as a heuristic, publishing nothing else).
    static let lastBeat = Atomic<UInt64>(0)
    /// The same for the scheduler's timer heartbeat.
    static let lastTimerBeat = Atomic<UInt64>(0)
    static let started = Atomic<Bool>(false)

    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Starts the watchdog once (the constructor calls this when the variable is set).
    public static func start() {
        guard parley_test_watchdog_linked() == 1,
              started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let thread = Thread { watch() }
        thread.name = "parley-stall-watchdog"
        thread.start()
    }

    static func watch() {
        let env = ProcessInfo.processInfo.environment
        let dir = env["PARLEY_STALL_DIR"] ?? "/tmp/parley-stalls"
        let threshold = UInt64(Double(env["PARLEY_STALL_MS"] ?? "1000") ?? 1000) * 1_000_000
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        lastBeat.store(now(), ordering: .relaxed)
        Task.detached {
            while true {
                lastBeat.store(now(), ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        lastTimerBeat.store(now(), ordering: .relaxed)
        timerBeat()
        var dumps = 0, lastDump: UInt64 = 0
        while dumps < 5 {
            usleep(100_000)
            let t = now()
            let silent = t &- lastBeat.load(ordering: .relaxed), timerSilent = t &- lastTimerBeat.load(ordering: .relaxed)
            guard silent > threshold || timerSilent > threshold, t &- lastDump > 10_000_000_000 else { continue }
            dumps += 1
            lastDump = t
            let file = "\(dir)/stall-\(getpid())-\(dumps).txt"
            let what = silent > threshold ? "the cooperative pool has been silent for \(silent / 1_000_000) ms"
                : "Parley's scheduler has fired no timer for \(timerSilent / 1_000_000) ms"
            FileHandle.standardError.write(Data("parley stall watchdog: \(what); stacks in \(file)\n".utf8))
            dump(to: file)
        }
    }

    /// A timer every 50 ms on the shared scheduler, each scheduling the next.
    static func timerBeat() {
        Scheduler.shared.timers.schedule(after: .milliseconds(50)) {
            lastTimerBeat.store(now(), ordering: .relaxed)
            timerBeat()
        }
    }

    /// gdb attached to this process, every thread's backtrace into `file`.
    static func dump(to file: String) {
        let args = ["/usr/bin/gdb", "-q", "-p", "\(getpid())", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set complaints 0", "-ex", "thread apply all bt 30"]
        guard let pid = try? spawnChild(args, output: file) else { return }
        reap(pid)
    }
}

/// Called by the C constructor (a stable C name for a Swift function).
@_cdecl("parley_test_watchdog_start")
public func parleyTestWatchdogStart() { StallWatchdog.start() }
