import CoreMetrics
import ParleyOTP
import Prometheus

/// The Prometheus side of the observer: a registry that `/metrics` renders in Prometheus's
/// text format, holding the runtime's gauges (read at each scrape) and, once bootstrapped as
/// swift-metrics' backend, what ParleyOTP records (GenServer calls and their latency
/// histogram, supervisor restarts, mailbox samples).
///
/// ```swift
/// let metrics = ObserverMetrics()
/// metrics.bootstrapSwiftMetrics()      // once per OS process, before servers start
/// let text = metrics.scrape()
/// ```
public final class ObserverMetrics: Sendable {
    /// The registry `/metrics` renders; give your own to share it with other exporters.
    public let registry: PrometheusCollectorRegistry
    /// The node given at init; nil: the observer's node (``LocalNode/default`` elsewhere).
    private let node: LocalNode?
    private let sampler = Locked<SystemSampler?>(nil)
    private let lastCounts = Locked<[String: UInt64]>([:])

    /// - Parameter node: the node whose figures are exported; nil exports the node of the
    ///   observer serving `/metrics` (``LocalNode/default`` when scraped directly).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), node: LocalNode? = nil) {
        self.registry = registry
        self.node = node
    }

    /// Makes this registry swift-metrics' backend (`MetricsSystem.bootstrap`), so the
    /// metrics ParleyOTP records appear at `/metrics`. swift-metrics allows one bootstrap per
    /// OS process: call it once, before starting named servers (their call metrics are made
    /// when their reference is), and not if the program bootstraps another backend.
    public func bootstrapSwiftMetrics() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(1), .microseconds(2), .microseconds(5), .microseconds(10), .microseconds(25),
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(5), .milliseconds(25), .milliseconds(100), .seconds(1), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// Reads the runtime's figures into the registry's gauges and renders the registry.
    public func scrape() -> String { scrape(for: .default) }

    /// Renders the registry with `fallback`'s figures unless a node was given at init.
    func scrape(for fallback: LocalNode) -> String {
        let node = self.node ?? fallback
        let s = sampler.withLock { sampler -> SystemSampler in
            if let sampler, sampler.node === node { return sampler }
            let fresh = SystemSampler(node: node)
            sampler = fresh
            return fresh
        }.snapshot()
        for w in s.schedulers {
            let labels = [("scheduler", String(w.index))]
            gauge("parley_scheduler_utilization", labels, "Busy fraction of the scheduler thread since the previous scrape").set(w.utilization)
            gauge("parley_scheduler_run_queue_length", labels, "Jobs queued on the scheduler thread").set(Double(w.runQueueLength))
            count("parley_scheduler_jobs_total", labels, w.jobsRun, help: "Jobs the scheduler thread has run")
            count("parley_scheduler_steals_total", labels, w.steals, help: "Jobs the scheduler thread took from others")
        }
        gauge("parley_global_run_queue_length", [], "Jobs in the global run queue").set(Double(s.globalQueueLength))
        count("parley_long_schedules_total", [], UInt64(s.longSchedulesTotal), help: "Jobs that ran past the long-schedule limit")
        gauge("parley_processes", [], "Live processes").set(Double(s.processCount))
        gauge("parley_registered_names", [], "Registered process names").set(Double(s.registeredNames))
        gauge("parley_timers", [], "Timers in the timer queue").set(Double(s.timers))
        gauge("parley_blocking_threads", [("state", "started")], "Threads of the blocking pool").set(Double(s.blockingThreads))
        gauge("parley_blocking_threads", [("state", "busy")], "Threads of the blocking pool").set(Double(s.blockingBusy))
        gauge("parley_memory_resident_bytes", [], "Resident memory of the OS process").set(Double(s.residentBytes))
        gauge("parley_memory_heap_bytes", [], "Heap in use by the C allocator").set(Double(s.heapBytes))
        gauge("parley_distribution_connections", [], "Connected nodes").set(Double(s.peers.filter { $0.state != "pending" }.count))
        for p in s.peers {
            for (direction, frames, bytes) in [("in", p.framesIn, p.bytesIn), ("out", p.framesOut, p.bytesOut)] {
                let labels = [("node", p.name), ("direction", direction)]
                count("parley_distribution_frames_total", labels, UInt64(frames), help: "Distribution frames (net ticks not counted) per connected node")
                count("parley_distribution_bytes_total", labels, UInt64(bytes), help: "Distribution bytes per connected node")
            }
        }
        return registry.emitToString()
    }

    private func gauge(_ name: String, _ labels: [(String, String)], _ help: String) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Adds to a Prometheus counter what a runtime counter gained since the last scrape.
    private func count(_ name: String, _ labels: [(String, String)], _ value: UInt64, help: String) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = lastCounts.withLock { last -> UInt64 in
            // A runtime counter that went back started over (a node reconnected): all of it is new.
            let d = value >= (last[key] ?? 0) ? value - (last[key] ?? 0) : value
            last[key] = value
            return d
        }
        let counter = registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
        if delta > 0 { counter.increment(by: Int64(clamping: delta)) }
    }
}
