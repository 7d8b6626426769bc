import Logging
import Metrics
import MetricsTestKit
import ParleyOTP
import ParleyServiceLifecycle
import ServiceLifecycle
import Testing

/// swift-metrics can be bootstrapped once per process: one TestMetrics for all tests.
enum TestMetricsOnce {
    static let metrics: TestMetrics = {
        let m = TestMetrics()
        MetricsSystem.bootstrap(m)
        return m
    }()
}

@Suite("Crash reports, metrics, service lifecycle")
struct EcosystemTests {
    init() { TestLogging.installed }

    @Test("a crashed child gives an OTP-style supervisor report: supervisor, child id, pid, reason, restart count")
    func crashReport() async throws {
        let events = Events()
        let sup = try await Supervisor.start([Worker.spec("reported", events)], strategy: .oneForOne, name: .local("report-sup"))
        let old = castExit(events, "reported", .custom("disk_full"))
        #expect(await restarted(events, "reported", from: old))
        let report = TestLogging.records.withLock { r in
            r.last { $0.label == "parley.supervisor" && $0.metadata["child"] == "reported" }
        }
        let r = try #require(report)
        #expect(r.level == .error)
        #expect(r.message.contains("child_terminated"))
        #expect(r.metadata["supervisor"] == "report-sup")
        #expect(r.metadata["pid"] == "\(old!)")
        #expect(r.metadata["reason"] == "disk_full")
        #expect(r.metadata["restarts"] == "0")
        let gen = TestLogging.records.withLock { r in r.last { $0.label == "parley.genserver" && $0.metadata["pid"] == "\(old!)" } }
        #expect(gen?.message.contains("terminating") == true, "the server's own crash log, as gen_server's")
        try await sup.stop()
    }

    @Test("metrics: restarts counted per supervisor and child; calls counted and timed per named server")
    func metrics() async throws {
        let metrics = TestMetricsOnce.metrics
        let events = Events()
        let sup = try await Supervisor.start([Worker.spec("m", events)], strategy: .oneForOne, name: .local("metrics-sup"))
        let old = castExit(events, "m", .custom("crash"))
        #expect(await restarted(events, "m", from: old))
        let restarts = try metrics.expectCounter("parley_supervisor_restarts_total", [("supervisor", "metrics-sup"), ("child", "m")])
        #expect(restarts.totalValue == 1)
        try await sup.stop()

        _ = try Counter().start(name: .local("metrics-counter"))
        let ref = ServerRef<Counter>(name: .local("metrics-counter"))
        for _ in 0..<3 { _ = try await ref.call(.add(1)) }
        #expect(try metrics.expectCounter("parley_genserver_calls_total", [("server", "metrics-counter")]).totalValue == 3)
        #expect(try metrics.expectTimer("parley_genserver_call_duration", [("server", "metrics-counter")]).values.count == 3)
        try await ref.stop()

        let sampler = OTPMetrics.sampleMailboxes(every: .milliseconds(10))
        #expect(await eventually { (try? metrics.expectGauge("parley_processes")) != nil })
        sampler.cancel()
    }

    @Test("SupervisorService: graceful shutdown of the ServiceGroup stops the tree in reverse start order")
    func serviceLifecycle() async throws {
        let events = Events()
        let service = SupervisorService(children: ["1", "2", "3"].map { Worker.spec($0, events) }, strategy: .oneForOne)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [service], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask { try await group.run() }
            #expect(await eventually { events.all.count == 3 })
            await group.triggerGracefulShutdown()
            try await g.waitForAll()
        }
        #expect(events.all == ["start 1", "start 2", "start 3", "stop 3 shutdown", "stop 2 shutdown", "stop 1 shutdown"])
    }

    @Test("SupervisorService: a supervisor that gives up (intensity exceeded) ends run() with an error")
    func serviceGivesUp() async throws {
        let events = Events()
        let service = SupervisorService(children: [Worker.spec("g", events)], strategy: .oneForOne, intensity: 0)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [service], logger: logger)
        await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask { try await group.run() }
            #expect(await eventually { events.all.count == 1 })
            _ = castExit(events, "g", .custom("crash"))
            await #expect(throws: (any Error).self) { try await g.waitForAll() }
        }
    }
}
