import CoreMetrics
import Parley

/// The metrics Parley's behaviours record through swift-metrics, once a backend is
/// bootstrapped (`MetricsSystem.bootstrap(...)`); with none, nothing is recorded and the hot
/// paths pay nothing.
///
/// | metric | kind | dimensions |
/// |---|---|---|
/// | `parley_genserver_calls_total` | counter | `server` |
/// | `parley_genserver_call_duration` | timer (ns) | `server` |
/// | `parley_supervisor_restarts_total` | counter | `supervisor`, `child` |
/// | `parley_process_mailbox_length` | recorder | `name` (registered processes) |
/// | `parley_processes` | gauge | |
///
/// Call metrics are recorded by ``ServerRef/call(_:timeout:)`` for servers started with a
/// name (unnamed servers would make one series per pid).
public enum OTPMetrics {
    /// Whether a metrics backend is bootstrapped.
    public static var enabled: Bool { !(MetricsSystem.factory is NOOPMetricsHandler) }

    /// Samples the mailbox length of every registered process, and the process count, every
    /// `interval`, from a timer on Parley's scheduler. Returns the timer; cancel it to stop.
    ///
    /// ```swift
    /// MetricsSystem.bootstrap(myPrometheusFactory)
    /// let sampler = OTPMetrics.sampleMailboxes(every: .seconds(10))
    /// ```
    @discardableResult
    public static func sampleMailboxes(every interval: Duration) -> MailboxSampler {
        let sampler = MailboxSampler(interval: interval)
        sampler.arm()
        return sampler
    }

    static func restarted(supervisor: String, child: String) {
        guard enabled else { return }
        Counter(label: "parley_supervisor_restarts_total", dimensions: [("supervisor", supervisor), ("child", child)]).increment()
    }
}

/// Per-server call metrics, made once when a named server's reference is created.
@usableFromInline
final class CallMetrics: Sendable {
    let calls: Counter
    let duration: Timer

    @usableFromInline
    func start() -> UInt64 { MonotonicClock.now }

    @usableFromInline
    func record(since start: UInt64) {
        calls.increment()
        duration.recordNanoseconds(Int64(MonotonicClock.now &- start))
    }

    init?(server: String) {
        guard OTPMetrics.enabled else { return nil }
        calls = Counter(label: "parley_genserver_calls_total", dimensions: [("server", server)])
        duration = Timer(label: "parley_genserver_call_duration", dimensions: [("server", server)])
    }
}

/// A periodic sample of mailbox lengths; see ``OTPMetrics/sampleMailboxes(every:)``.
public final class MailboxSampler: Sendable {
    let interval: Duration
    private let timer = Locked<TimerRef?>(nil)
    private let stopped = Locked(false)

    init(interval: Duration) { self.interval = interval }

    func arm() {
        let ref = Process.applyAfter(interval) { [self] in
            sample()
            if !stopped.withLock({ $0 }) { arm() }
        }
        timer.withLock { $0 = ref }
    }

    func sample() {
        for name in Process.registered() {
            guard let pid = Process.whereis(name), let info = Process.info(pid) else { continue }
            Recorder(label: "parley_process_mailbox_length", dimensions: [("name", name)]).record(info.messageQueueLength)
        }
        Gauge(label: "parley_processes").record(Process.count)
    }

    /// Stops sampling.
    public func cancel() {
        stopped.withLock { $0 = true }
        timer.withLock { $0 }?.cancel()
    }
}
