import ParleyOTP
import Testing

/// Waits until `id`'s registered pid differs from `old` (a restart) or `timeout` passes.
// 30 s: under the thread sanitizer, with the crash-storm stress test running beside it, a
// restart has been seen to take over 5 s. A healthy restart returns in milliseconds.
func restarted(_ events: Events, _ id: String, from old: Pid?, within timeout: Duration = .seconds(30)) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let p = events.pid(id), p != old { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return false
}

/// Polls (up to 30 s) until `pid` is no longer alive.
func exited(_ pid: Pid?) async -> Bool {
    guard let pid else { return false }
    for _ in 0..<6000 {  // 30 s, for the same reason
        if Process.info(pid) == nil { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return false
}

func castExit(_ events: Events, _ id: String, _ reason: ExitReason) -> Pid? {
    let pid = events.pid(id)
    if let pid { Gen.cast(pid, Worker.Cast.exit(reason)) }
    return pid
}

@Suite("Supervisor (supervisor.erl semantics)")
struct SupervisorTests {
    init() { TestLogging.installed }

    /// OTP's table: permanent always restarts; transient only after an abnormal exit (not
    /// normal, shutdown or {shutdown, _}); temporary never.
    @Test("restart types × exit reasons follow OTP's table", arguments: [
        (ChildSpec.Restart.permanent, ExitReason.normal, true),
        (.permanent, .shutdown, true),
        (.permanent, .shutdownWith("x"), true),
        (.permanent, .custom("crash"), true),
        (.transient, .normal, false),
        (.transient, .shutdown, false),
        (.transient, .shutdownWith("x"), false),
        (.transient, .custom("crash"), true),
        (.temporary, .normal, false),
        (.temporary, .custom("crash"), false),
    ])
    func restartTable(restart: ChildSpec.Restart, reason: ExitReason, restarts: Bool) async throws {
        let events = Events()
        let sup = try await Supervisor.start([Worker.spec("a", events, restart: restart)], strategy: .oneForOne)
        let old = castExit(events, "a", reason)
        #expect(old != nil)
        #expect(await exited(old))
        // The child is seen dead as soon as it is marked so; its EXIT reaches the supervisor
        // just after (links are signalled outside the child's lock), so wait until the
        // supervisor has acted on it: its child runs again, or its spec is kept or gone.
        let expectedSpecs = restart == .temporary ? 0 : 1
        var counts = try await sup.countChildren()
        for _ in 0..<1000 {
            let settled = counts.specs == expectedSpecs && counts.active == (restarts ? 1 : 0)
                && (events.pid("a").map { $0 != old } ?? false) == restarts
            if settled { break }
            try await Task.sleep(for: .milliseconds(5))
            counts = try await sup.countChildren()
        }
        #expect((events.pid("a").map { $0 != old } ?? false) == restarts)
        #expect(counts.specs == expectedSpecs, "a temporary child's spec is deleted when it exits")
        try await sup.stop()
    }

    // supervisor.erl: more than `intensity` restarts within `period` seconds shut the
    // supervisor down. The period is 60 s here (the default is 5 s) so that the rule is what
    // is tested, not the machine's speed: in a full parallel run the four crashes once took
    // over 5 s, and the supervisor rightly kept going.
    @Test("intensity exceeded (more than 3 restarts in the period): children stop and the supervisor exits with shutdown")
    func intensityExceeded() async throws {
        let events = Events()
        let sup = try await Supervisor.start([Worker.spec("a", events), Worker.spec("b", events)], strategy: .oneForOne,
                                             intensity: 3, period: .seconds(60))
        let reason = try await Process.run { me -> ExitReason in
            let ref = me.monitor(sup.pid)
            for i in 0..<4 {
                let old = castExit(events, "a", .custom("crash"))
                // The first three crashes are restarted; the fourth exceeds the intensity.
                if i < 3 { _ = await restarted(events, "a", from: old, within: .seconds(5)) }
            }
            return try await me.receive(DownMessage.self, after: .seconds(30), where: { $0.ref == ref })?.reason ?? .normal
        }
        #expect(reason.matches(.shutdown))
        #expect(events.pid("b") == nil, "siblings are stopped too")
        #expect(events.all.contains("stop b shutdown"))
    }

    @Test("one_for_all: one child's crash restarts all of them")
    func oneForAll() async throws {
        let events = Events()
        let sup = try await Supervisor.start(["a", "b", "c"].map { Worker.spec($0, events) }, strategy: .oneForAll)
        let olds = ["a", "b", "c"].map { events.pid($0) }
        _ = castExit(events, "b", .custom("crash"))
        for (id, old) in zip(["a", "b", "c"], olds) { #expect(await restarted(events, id, from: old)) }
        #expect(events.all.contains("stop a shutdown") && events.all.contains("stop c shutdown"))
        try await sup.stop()
    }

    @Test("rest_for_one: restarts the crashed child and those started after it, not those before")
    func restForOne() async throws {
        let events = Events()
        let sup = try await Supervisor.start(["a", "b", "c"].map { Worker.spec($0, events) }, strategy: .restForOne)
        let olds = ["a", "b", "c"].map { events.pid($0) }
        _ = castExit(events, "b", .custom("crash"))
        #expect(await restarted(events, "b", from: olds[1]))
        #expect(await restarted(events, "c", from: olds[2]))
        #expect(events.pid("a") == olds[0], "a started before b: untouched")
        // c is stopped before b restarts, and restarted after it, in start order.
        let tail = events.all.suffix(3)
        #expect(Array(tail) == ["stop c shutdown", "start b", "start c"])
        try await sup.stop()
    }

    @Test("temporary children are never restarted, not even when one_for_all takes them down")
    func temporaryUnderOneForAll() async throws {
        let events = Events()
        let sup = try await Supervisor.start(
            [Worker.spec("a", events), Worker.spec("t", events, restart: .temporary)], strategy: .oneForAll)
        let oldA = castExit(events, "a", .custom("crash"))
        #expect(await restarted(events, "a", from: oldA))
        #expect(events.count("start t") == 1)
        #expect(try await sup.whichChildren().map(\.id) == ["a"])
        try await sup.stop()
    }

    @Test("children start in order and stop in reverse order; terminate runs when they trap exits")
    func shutdownOrder() async throws {
        let events = Events()
        let sup = try await Supervisor.start(["1", "2", "3"].map { Worker.spec($0, events) }, strategy: .oneForOne)
        try await sup.stop()
        #expect(events.all == ["start 1", "start 2", "start 3", "stop 3 shutdown", "stop 2 shutdown", "stop 1 shutdown"])
    }

    @Test("shutdown timeout: a child that ignores shutdown is killed after the timeout; brutal_kill skips terminate")
    func shutdownTimeoutAndBrutalKill() async throws {
        let events = Events()
        let stubborn = ChildSpec(id: "stubborn", shutdown: .timeout(.milliseconds(100))) { me in
            try me.spawn(SpawnOptions(link: true, trapExit: true)) { p in
                while true { _ = try await p.receive() }   // traps and ignores the shutdown EXIT
            }
        }
        let sup = try await Supervisor.start([stubborn, Worker.spec("b", events, shutdown: .brutalKill)], strategy: .oneForOne)
        let t0 = ContinuousClock.now
        try await sup.stop()
        let took = ContinuousClock.now - t0
        // Killed after its 100 ms, not left running (10 s: the thread sanitizer on a loaded
        // machine is slow, and "forever" is what this bound rules out).
        #expect(took >= .milliseconds(100) && took < .seconds(10))
        #expect(!events.all.contains { $0.hasPrefix("stop b") }, "brutal_kill: no terminate")
    }

    @Test("which_children, count_children, terminate_child, restart_child, delete_child, start_child")
    func childOperations() async throws {
        let events = Events()
        let sup = try await Supervisor.start([Worker.spec("a", events), Worker.spec("b", events)], strategy: .oneForOne)
        #expect(try await sup.whichChildren().map(\.id) == ["a", "b"])
        #expect(try await sup.countChildren() == ChildCounts(specs: 2, active: 2, supervisors: 0, workers: 2))

        try await sup.terminateChild("a")
        #expect(try await sup.whichChildren().first?.pid == nil)
        await #expect(throws: SupervisorError.self) { try await sup.deleteChild("b") }   // running
        await #expect(throws: SupervisorError.self) { try await sup.restartChild("b") }  // running
        await #expect(throws: SupervisorError.self) { try await sup.terminateChild("zz") } // not found

        let again = try await sup.restartChild("a")
        #expect(again != nil && again == events.pid("a"))
        try await sup.terminateChild("a")
        try await sup.deleteChild("a")
        #expect(try await sup.whichChildren().map(\.id) == ["b"])

        try await sup.startChild(Worker.spec("c", events))
        await #expect(throws: SupervisorError.self) { try await sup.startChild(Worker.spec("c", events)) }
        #expect(try await sup.whichChildren().map(\.id) == ["b", "c"])
        try await sup.stop()
    }

    @Test("a child that fails to start makes the supervisor's start fail, after stopping the ones started")
    func failedStart() async throws {
        let events = Events()
        let bad = ChildSpec(id: "bad") { _ in throw ProcessExit(.custom("no_db")) }
        do {
            _ = try await Supervisor.start([Worker.spec("a", events), bad], strategy: .oneForOne)
            Issue.record("expected a start error")
        } catch {
            guard case .failed(.shutdownWith) = error else { Issue.record("got \(error)"); return }
        }
        #expect(events.all == ["start a", "stop a shutdown"])
    }

    @Test("nested trees: a crash below is handled below; stopping the top stops everything in reverse order")
    func nestedTree() async throws {
        let events = Events()
        let inner = Supervisor.childSpec(id: "inner", [Worker.spec("x", events), Worker.spec("y", events)], strategy: .oneForOne)
        let top = try await Supervisor.start([Worker.spec("a", events), inner, Worker.spec("b", events)], strategy: .oneForOne)
        let innerPid = try await top.whichChildren()[1].pid
        let old = castExit(events, "x", .custom("crash"))
        #expect(await restarted(events, "x", from: old))
        #expect(try await top.whichChildren()[1].pid == innerPid, "the inner supervisor handled it")
        try await top.stop()
        let stops = events.all.filter { $0.hasPrefix("stop") }
        #expect(stops.suffix(4) == ["stop b shutdown", "stop y shutdown", "stop x shutdown", "stop a shutdown"])
    }

    @Test("the supervisor's parent exiting stops the tree (supervisor as a linked child)")
    func parentExit() async throws {
        let events = Events()
        _ = try? await Process.run { me in
            _ = try await Supervisor.startLink(me, [Worker.spec("a", events)], strategy: .oneForOne)
            throw ProcessExit(.shutdown)
        }
        #expect(await eventually { events.all.contains("stop a shutdown") })
    }
}
