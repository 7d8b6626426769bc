import ParleyOTP

/// The OTP workloads: genserver-call (bench/peers/README.md) and supervisor-restart.
extension Workloads {
    /// The peers' server: replies to N with N.
    struct Echo: GenServer {
        typealias Call = Int
        typealias Reply = Int
        mutating func handleCall(_ request: Int, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(request) }
    }

    // genserver-call: one client makes n synchronous calls to one server.
    static func genserverCall(_ me: Process, n: Int) async throws -> Result {
        let server = try Echo().startLink(me)
        for i in 0..<1000 { _ = try await server.call(i) }  // warm-up, as the peers' first calls
        let t0 = MonotonicClock.now
        var i = n
        while i > 0 {
            i -= 1
            let r = try await server.call(i)
            precondition(r == i, "genserver-call: wrong reply")
        }
        let ns = Double(MonotonicClock.now - t0) / Double(n)
        try await server.stop()
        return Result(workload: "genserver-call", value: ns, unit: "ns/call")
    }

    /// A child that tells the bench when it has (re)started and crashes on request.
    struct Crasher: GenServer, Sendable {
        let reportTo: Pid
        enum Cast: Sendable { case crash }
        mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
            reportTo.send(me.pid)
            return .ok
        }
        mutating func handleCast(_ request: Cast, _ me: CallbackProcess) throws -> HandleResult {
            throw ProcessExit(.custom("crash"))
        }
    }

    // supervisor-restart: a permanent child crashes; time until its replacement has run init.
    static func supervisorRestart(_ me: Process, n: Int) async throws -> Result {
        let sup = try await Supervisor.startLink(
            me, [Crasher(reportTo: me.pid).childSpec(id: "crasher")], strategy: .oneForOne,
            intensity: n + 10, period: .seconds(3600))
        var pid = try await me.receive(Pid.self)
        let t0 = MonotonicClock.now
        for _ in 0..<n {
            Gen.cast(pid, Crasher.Cast.crash)
            pid = try await me.receive(Pid.self)
        }
        let us = Double(MonotonicClock.now - t0) / Double(n) / 1000
        try await sup.stop()
        return Result(workload: "supervisor-restart", value: us, unit: "us/restart")
    }
}
