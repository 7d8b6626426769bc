import ParleyOTP
#if canImport(Glibc)
import Glibc
#endif

// Chapter 9: OTP behaviours: a supervised tree, restarts, giving up, a GenServer, a
// Registry dispatching to subscribers, a Task, an Agent and an AsyncGenServer.

/// Works for as many milliseconds as it is asked (holding its thread, as blocking work does).
private struct TourSlowServer: GenServer, Sendable {
    typealias Call = Int
    typealias Reply = String
    mutating func handleCall(_ ms: Int, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if ms > 0 { usleep(UInt32(ms) * 1000) }
        return .reply("done after \(ms) ms")
    }
}

private struct TourCounter: GenServer, Sendable {
    var count = 0
    /// A secret in the state: `formatStatus` keeps it out of crash reports.
    var apiToken = "tok_live_4f9a"
    enum Call: Sendable { case get, add(Int) }
    typealias Reply = Int
    enum Cast: Sendable { case crash }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .get: return .reply(count)
        case .add(let n): count += n; return .reply(count)
        }
    }
    mutating func handleCast(_ request: Cast, _ me: CallbackProcess) throws -> HandleResult {
        throw ProcessExit(.custom("boom"))
    }
    func formatStatus(_ status: ServerStatus) -> ServerStatus {
        var s = status
        s.state = "TourCounter(count: \(count), apiToken: <redacted>)"
        return s
    }
}

/// A cache whose callback waits: it sleeps (a slow lookup) and calls another server before
/// it answers, which a GenServer's synchronous callbacks cannot do.
private struct TourCache: AsyncGenServer {
    var cached: [Int: Int] = [:]
    let backend: ServerRef<TourCounter>
    typealias Call = Int
    typealias Reply = String
    mutating func handleCall(_ key: Int, from: Gen.From, _ me: Process) async throws -> CallResult {
        if let v = cached[key] { return .reply("\(v) (cached)") }
        try await me.sleep(for: .milliseconds(20))
        let v = try await backend.call(.add(key))
        cached[key] = v
        return .reply("\(v) (fetched after 20 ms and a call to the counter)")
    }
}

private struct News: Sendable { let headline: String }
private struct Join: Sendable { let topic: String }

@Sendable func otpChapter(_ me: Process) async throws {
    let names = Registry<String, Void>(keys: .unique)
    let sup = try await Supervisor.start([
        TourCounter().childSpec(id: "counter", name: .via(names, "counter")),
        Agent<[String]>.childSpec(id: "journal", name: .local("tour-journal")) { [] },
    ], strategy: .oneForOne, name: .local("tour-sup"))
    let counter = ServerRef<TourCounter>(name: .via(names, "counter"))
    print("  Supervisor.start([counter, journal], strategy: :one_for_one)  # \(sup.pid)")
    for child in try await sup.whichChildren() { print("    \(child)") }

    _ = try await counter.call(.add(40))
    print("  GenServer.call(counter, {:add, 40}) -> \(try await counter.call(.add(2)) - 2); then {:add, 2} -> \(try await counter.call(.get))")

    let old = counter.pid!
    counter.cast(.crash)
    var fresh = counter.pid
    while fresh == nil || fresh == old {
        try await me.sleep(for: .milliseconds(1))
        fresh = counter.pid
    }
    print("  the counter crashes (reason boom): the supervisor logs a report and restarts it; the server's")
    print("    crash report shows what its formatStatus gives (count, apiToken: <redacted>), never the token")
    print("    old \(old) -> new \(fresh!), state starts again: get -> \(try await counter.call(.get))")

    // Restart intensity: more than 3 restarts in 5 s and the supervisor gives up.
    let ref = me.monitor(sup.pid)
    var crashes = 0
    while true {
        guard let pid = counter.pid else { break }
        counter.cast(.crash)
        crashes += 1
        while counter.pid == pid { try await me.sleep(for: .milliseconds(1)) }
        if let down = try await me.receive(DownMessage.self, after: .milliseconds(20), where: { $0.ref == ref }) {
            print("  \(crashes) more crashes: the 4th restart within 5 s exceeds the intensity (3 in 5 s); the supervisor stops its")
            print("    children and exits with reason \(down.reason), leaving the decision to its own supervisor")
            break
        }
    }

    // Registry dispatch: pub/sub over duplicate keys.
    let topics = Registry<String, Void>(keys: .duplicate)
    let got = Locked<[String]>([])
    var readers: [Pid] = []
    for name in ["ana", "ben", "cy"] {
        readers.append(try Process.spawn(state: ()) { _, message, p in
            if let join = message as? Join { try topics.register(p, key: join.topic, value: ()) }
            if let news = message as? News { got.withLock { $0.append("\(name) got \"\(news.headline)\"") } }
            return .continue
        })
    }
    for r in readers.prefix(2) { r.send(Join(topic: "swift")) }
    readers[2].send(Join(topic: "erlang"))
    while topics.lookup("swift").count < 2 || topics.lookup("erlang").isEmpty { try await me.sleep(for: .milliseconds(1)) }
    topics.dispatch("swift") { entries in for e in entries { e.pid.send(News(headline: "Parley has GenServers")) } }
    while got.withLock({ $0.count }) < 2 { try await me.sleep(for: .milliseconds(1)) }
    print("  Registry.dispatch(topics, \"swift\", ...) reaches the 2 subscribers of \"swift\", not the \"erlang\" one:")
    for line in got.withLock({ $0 }).sorted() { print("    \(line)") }
    for r in readers { Process.exit(r, .kill) }

    // Task and Agent.
    let task = me.async { _ in (1...1000).reduce(0, +) }
    print("  Task.async(fn -> Enum.sum(1..1000) end) |> Task.await() -> \(try await task.await())")
    let agent = try Agent.start { 0 }
    try await agent.update { $0 += 10 }
    agent.cast { $0 *= 2 }
    print("  Agent: update +10, cast *2, get -> \(try await agent.get { $0 })")
    try await agent.stop()

    // AsyncGenServer: callbacks that wait (Supervisor and DynamicSupervisor are built on it).
    let backend = try TourCounter().start()
    let cache = try await TourCache(backend: backend).start()
    print("  AsyncGenServer (a callback may await): call(cache, 5) -> \(try await cache.call(5))")
    print("    call(cache, 5) again -> \(try await cache.call(5))")
    // Spans: with Gen.propagatesContext on, each call carries the caller's trace context
    // (swift-distributed-tracing); the tour's tracer keeps them in memory to print.
    let (_, spans) = try await TourTracing.traced("tour request") { try await cache.call(9) }
    print("  Gen.propagatesContext = true, and call(cache, 9) inside withSpan(\"tour request\"): one trace")
    print("    (the cache's handleCall calls the counter; the tracer could as well be swift-otel's):")
    for line in TourTracing.tree(spans, indent: "      ") { print(line) }
    try await cache.stop()
    try await backend.stop()

    // Calls per second (bench: `parley bench genserver-call`).
    let echo = try TourCounter().start()
    let n = 200_000
    let t0 = MonotonicClock.now
    for _ in 0..<n { _ = try await echo.call(.add(1)) }
    let ns = Double(MonotonicClock.now - t0) / Double(n)
    print("  \(n) GenServer.calls from a process: \(Int(ns)) ns each (the caller parks; the idle server runs next on its thread)")
    try await echo.stop()

    // A call's timeout holds while the server is busy with the request (gen.erl's do_call).
    let slow = try TourSlowServer().start()
    let t1 = ContinuousClock.now
    var outcome = "a reply"
    do {
        _ = try await slow.call(500, timeout: .milliseconds(100))
    } catch .timeout {
        outcome = ".timeout"
    } catch {
        outcome = "\(error)"
    }
    let waited = ContinuousClock.now - t1
    print("  call(slow, 500 ms of work, timeout: 100 ms) -> \(outcome), \(Int(waited / .milliseconds(1))) ms after the call")
    print("    (the handler finishes on its own, its late reply is dropped, and the next call works: \(try await slow.call(0));")
    print("    the scheduler logs the 500 ms handler as long_schedule, as erlang:system_monitor would)")
    try await slow.stop()
}
