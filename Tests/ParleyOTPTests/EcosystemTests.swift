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
        #expect(r.metadata["child_restarts"] == "0", "this child had not been restarted before")
        #expect(r.metadata["supervisor_restarts"] == "0")
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
            // The child must be up before it is crashed: a crash sent before it started (a
            // slow start, as under the thread sanitizer when every suite starts at once)
            // reached nobody, and run() then waited for a give-up that never came.
            guard await eventually(within: .seconds(60), { events.all.count == 1 }) else {
                Issue.record("the supervisor's child did not start within 60 s")
                await group.triggerGracefulShutdown()
                _ = try? await g.waitForAll()
                return
            }
            _ = castExit(events, "g", .custom("crash"))
            await #expect(throws: (any Error).self) { try await g.waitForAll() }
        }
    }

    /// OTP's supervisor report names the offender; the restart intensity is counted per
    /// supervisor over all its children (supervisor.erl's `add_restart/1`). Parley's report
    /// gives both counts, each named for what it counts.
    @Test("supervisor reports: child_restarts counts this child's restarts, supervisor_restarts all of the supervisor's")
    func restartCounts() async throws {
        let events = Events()
        let sup = try await Supervisor.start([Worker.spec("ra", events), Worker.spec("rb", events)], strategy: .oneForOne, intensity: 10)
        func crash(_ id: String) async -> [String: String]? {
            let old = castExit(events, id, .custom("crash"))
            guard await restarted(events, id, from: old) else { return nil }
            return TestLogging.records.withLock { r in
                r.last { $0.label == "parley.supervisor" && $0.metadata["pid"] == "\(old!)" }?.metadata
            }
        }
        let first = try #require(await crash("ra"))
        #expect(first["child_restarts"] == "0" && first["supervisor_restarts"] == "0")
        let second = try #require(await crash("rb"))
        #expect(second["child_restarts"] == "0" && second["supervisor_restarts"] == "1")
        let third = try #require(await crash("ra"))
        #expect(third["child_restarts"] == "1" && third["supervisor_restarts"] == "2")
        #expect(third["restarts"] == nil, "no ambiguous count")
        try await sup.stop()
    }

    /// A server that keeps a secret and redacts it from crash reports (Erlang's
    /// `format_status/1`: "the status map ... can be used to hide sensitive data or
    /// summarise large state in logs and sys output").
    struct Vault: GenServer, Sendable {
        var password: String
        var entries: [String]
        enum Cast: Sendable { case crash(String) }
        mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
            if case .crash(let why) = request { return .stop(.custom(why)) }
            return .noreply
        }
        func formatStatus(_ status: ServerStatus) -> ServerStatus {
            var s = status
            s.state = "Vault(password: <redacted>, \(entries.count) entries)"
            return s
        }
    }

    /// Bulky state with no formatStatus of its own: the default report.
    struct Hoard: GenServer, Sendable {
        var items: [Int]
        enum Cast: Sendable { case crash }
        mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult { .stop(.custom("hoard_crash")) }
    }

    @Test("formatStatus: a crash report shows what the server makes of its state (the secret never reaches the log); the default cuts each field to printLimit")
    func formatStatusInCrashReports() async throws {
        func report(_ pid: Pid) async -> [String: String]? {
            let found = await eventually {
                TestLogging.records.withLock { r in r.contains { $0.label == "parley.genserver" && $0.metadata["pid"] == "\(pid)" } }
            }
            guard found else { return nil }
            return TestLogging.records.withLock { r in r.last { $0.label == "parley.genserver" && $0.metadata["pid"] == "\(pid)" }?.metadata }
        }
        let vault = try Vault(password: "hunter2-secret", entries: ["a", "b", "c"]).start()
        vault.cast(.crash("vault_crash"))
        let vaultPid = try #require(vault.pid)
        let v = try #require(await report(vaultPid))
        #expect(v["state"] == "Vault(password: <redacted>, 3 entries)")
        #expect(v["reason"] == "vault_crash")
        let leaked = TestLogging.records.withLock { r in r.contains { $0.message.contains("hunter2") || $0.metadata.values.contains { $0.contains("hunter2") } } }
        #expect(!leaked, "the password is in no log record")

        let hoard = try Hoard(items: Array(0..<10_000)).start()
        hoard.cast(.crash)
        let hoardPid = try #require(hoard.pid)
        let h = try #require(await report(hoardPid))
        let state = try #require(h["state"])
        #expect(state.hasPrefix("Hoard(items: [0, 1, 2"))
        #expect(state.count < ServerStatus.printLimit + 60, "cut to the limit, with a note of what was left out")
        #expect(state.contains("more characters)"))
    }

    @Test("SupervisorService: started() waits until the tree is up; child(_:) reaches a child and, through it, a nested supervisor's children")
    func serviceStartedAndChildren() async throws {
        let events = Events()
        let nested = Supervisor.childSpec(id: "rooms", [Worker.spec("lobby", events)], strategy: .oneForOne)
        let service = SupervisorService(children: [Worker.spec("w", events), nested], strategy: .oneForOne)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [service], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask { try await group.run() }
            let sup = try await service.started()
            #expect(events.all.contains("start w") && events.all.contains("start lobby"), "every child started before started() returned")
            #expect(sup == service.supervisor)
            #expect(try await service.child("w").pid == events.pid("w"))
            let rooms = try #require(try await service.child("rooms").supervisor)
            #expect(try await rooms.child("lobby").pid == events.pid("lobby"))
            await #expect(throws: SupervisorError.self) { _ = try await rooms.child("nowhere") }
            await group.triggerGracefulShutdown()
            try await g.waitForAll()
        }
    }

    /// swift-service-lifecycle: a graceful shutdown ends a service's run() without an error.
    /// A SIGTERM that lands the moment the tree is up (before run() watches the supervisor)
    /// must not read as the supervisor dying (`noproc`).
    @Test("SupervisorService: a graceful shutdown at once after the tree is up ends run() cleanly (20 times)")
    func serviceShutdownAtOnce() async throws {
        for _ in 0..<20 {
            let events = Events()
            let service = SupervisorService(children: [Worker.spec("q", events)], strategy: .oneForOne)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let group = ServiceGroup(services: [service], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { g in
                g.addTask { try await group.run() }
                _ = try await service.started()
                await group.triggerGracefulShutdown()
                try await g.waitForAll()
            }
            #expect(events.all == ["start q", "stop q shutdown"])
        }
    }

    @Test("SupervisorService: started() throws the start error when the tree fails to start")
    func serviceStartFails() async throws {
        let failing = ChildSpec(id: "bad") { _ in throw StartError.failed(.custom("no_db")) }
        let service = SupervisorService(children: [failing], strategy: .oneForOne)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [service], logger: logger)
        await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask { try await group.run() }
            await #expect(throws: StartError.self) { _ = try await service.started() }
            await #expect(throws: (any Error).self) { try await g.waitForAll() }
        }
    }
}
