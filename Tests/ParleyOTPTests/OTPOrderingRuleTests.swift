import ParleyOTP
import Testing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A server that stops with a reply and whose `terminate` takes a while and logs when it ends.
struct SlowTerminate: GenServer {
    typealias Call = String
    typealias Reply = String
    /// Milliseconds to hold the server before it takes its next message.
    typealias Cast = Int
    let events: Events
    mutating func handleCast(_ ms: Int, _ me: CallbackProcess) -> HandleResult {
        usleep(UInt32(ms) * 1000)
        return .noreply
    }
    mutating func handleCall(_ request: String, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        .stop(.normal, reply: "bye")
    }
    mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess) {
        usleep(100_000)
        events.add("terminated")
    }
}

/// A server whose init asks for a continue that holds its thread until the test opens the
/// gate (or 10 s pass), and records whether the gate opened while it held it.
struct SlowContinue: GenServer {
    typealias Call = String
    typealias Reply = [String]
    typealias Continue = String
    let release: Gate
    var log: [String] = []
    mutating func initialize(_ me: CallbackProcess) throws -> InitResult { .ok(continue: "slow") }
    mutating func handleContinue(_ value: String, _ me: CallbackProcess) -> HandleResult {
        let t0 = ContinuousClock.now
        while !release.isOpen && ContinuousClock.now - t0 < .seconds(10) { usleep(1000) }
        release.noteSeenWhileBusy()
        log.append("continued")
        return .noreply
    }
    mutating func handleCall(_ request: String, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(log) }
}

/// A server whose `handleCall(.slow)` holds its thread until the test releases it (or 10 s
/// pass), as a `handle_call` busy with blocking work would, and records whether it was
/// released while it held the thread. A callback cannot wait: it can only hold its
/// scheduler thread, so the test holds it no longer than it must.
struct SlowHandler: GenServer {
    enum Call: Sendable { case slow, ping }
    typealias Reply = String
    let release: Gate
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .slow:
            let t0 = ContinuousClock.now
            while !release.isOpen && ContinuousClock.now - t0 < .seconds(10) { usleep(1000) }
            release.noteSeenWhileBusy()
            return .reply("late")
        case .ping:
            return .reply("pong")
        }
    }
}

/// A flag the test opens once its call has timed out; the server notes whether it was open
/// when its handler let go of the thread.
final class Gate: Sendable {
    private let open = Atomic<Bool>(false)
    private let seen = Atomic<Int>(0)
    var isOpen: Bool { open.load(ordering: .acquiring) }
    func openIt() { open.store(true, ordering: .releasing) }
    func close() { open.store(false, ordering: .releasing) }
    func noteSeenWhileBusy() { if isOpen { seen.add(1, ordering: .relaxed) } }
    /// How many slow handlers saw the gate open before they returned.
    var seenWhileBusy: Int { seen.load(ordering: .relaxed) }
}

/// Rules of OTP and Elixir that concern a call's timeout and the order of a stop's and a
/// task's steps. Each was checked against Erlang/OTP 25 and Elixir 1.14 (snippets in the
/// comments). Serialized: some hold a scheduler thread on purpose (a slow handler, a slow
/// terminate), and at most one at a time may, so that suites running alongside keep a
/// scheduler for their timers.
@Suite("Call timeouts, stop and task ordering (gen.erl, gen_server.erl, Elixir Task)", .serialized)
struct OTPOrderingRuleTests {
    init() { TestLogging.installed }

    // gen.erl's do_call waits in `receive ... after Timeout`, whatever the server does. On
    // OTP 25, gen_server:call(P, slow, 100) to an idle server whose handle_call sleeps
    // 500 ms exits with timeout after 102 ms; the next call returns pong after the slow
    // handler ends (502 ms), and no late reply reaches the caller (a receive after 100 ms
    // finds nothing): `erl -noshell` with a module whose handle_call(slow, ...) does
    // timer:sleep(500).
    @Test("A call's timeout holds while the server is busy with it: the caller times out while the handler still runs, the next call works, no late reply")
    func callTimeoutHoldsWhileServerIsBusy() async throws {
        // The handler holds the server's thread until the caller, having timed out, opens
        // the gate. With the hand-off this replaced (the handler ran on the caller's thread),
        // the caller could not time out before the handler returned: the handler would wait
        // its 10 s and see the gate shut. No bound on the time is needed, so a loaded
        // machine cannot fail the test.
        let gate = Gate()
        let server = try SlowHandler(release: gate).start()
        let (first, elapsed, second, stray) = try await Process.run { me -> (String, Duration, String, Bool) in
            let t0 = ContinuousClock.now
            var first = "replied"
            do {
                _ = try await server.call(.slow, timeout: .milliseconds(50))
            } catch Gen.CallError.timeout {
                first = "timeout"
            } catch {
                first = "\(error)"
            }
            let elapsed = ContinuousClock.now - t0
            gate.openIt()
            let second = try await server.call(.ping, timeout: .seconds(20))
            let stray = try await me.receive(after: .milliseconds(100)) != nil
            return (first, elapsed, second, stray)
        }
        #expect(first == "timeout")
        #expect(elapsed >= .milliseconds(50), "never early")
        #expect(gate.seenWhileBusy == 1, "the caller timed out while the handler still held the server")
        #expect(second == "pong")
        #expect(!stray, "the late reply is dropped")
        // From outside any process too (a stand-in mailbox waits for the reply).
        gate.close()
        await #expect(throws: Gen.CallError.self) { try await server.call(.slow, timeout: .milliseconds(50)) }
        gate.openIt()
        #expect(try await server.call(.ping, timeout: .seconds(20)) == "pong")
        #expect(gate.seenWhileBusy == 2, "from outside a process too")
        try await server.stop()
    }

    // Elixir's GenServer docs (handle_call/3): "Returning {:stop, reason, reply, new_state}
    // stops the loop and terminate/2 is called with reason reason and state new_state.
    // Then, the reply is sent as the response to call". gen_server.erl sends the reply in
    // the `after` of its terminate. On Elixir 1.14, a terminate that sleeps 300 ms and then
    // messages the test: that message is already there when the reply arrives.
    @Test("{stop, Reason, Reply, State}: terminate runs first, then the reply is sent")
    func stopWithReplyRunsTerminateFirst() async throws {
        // An idle server and a busy one (the call waits in its mailbox behind a cast).
        for busy in [false, true] {
            let events = Events()
            let server = try SlowTerminate(events: events).start()
            if busy { server.cast(50) }
            let reply = try await server.call("stop", timeout: .seconds(10))
            events.add("replied \(reply)")
            #expect(events.all == ["terminated", "replied bye"], "busy: \(busy)")
            #expect(await eventually { server.pid?.isAlive == false })
        }
    }

    // gen_server.erl acks init (start returns), then runs handle_continue before any
    // message. Elixir 1.14, init returning {:ok, [], {:continue, :slow}} and a
    // handle_continue that sleeps 300 ms: start_link returns after 0 ms, and the first call
    // sees [:continued]. Here the continue waits for a gate the test opens only once start
    // has returned: start returned while the continue still ran, with no bound on time.
    @Test("{ok, State, {continue, C}}: start returns at once; handle_continue runs before the first message")
    func continueAfterInitRunsAfterStart() async throws {
        let gate = Gate()
        let server = try SlowContinue(release: gate).start()
        gate.openIt()
        #expect(try await server.call("get", timeout: .seconds(20)) == ["continued"])
        #expect(gate.seenWhileBusy == 1, "start returned only after the continue (which waited 10 s for the gate)")
        try await server.stop()
    }

    // Elixir 1.14: Task.Supervisor.async_nolink(sup, fn -> exit(:boom) end) followed by
    // Task.yield(task, 1000) gives {:exit, :boom} in 2000 of 2000 runs (and {:exit, {error,
    // stack}} for a raise): the task waits for its owner's `{owner, ref, reply_to, ...}`,
    // sent after the owner's monitor exists, before it runs (Task.Supervised.reply/4).
    @Test("Task.Supervisor.async_nolink: a task that fails at once still reports its real reason, never noproc")
    func asyncNolinkFailingAtOnceKeepsReason() async throws {
        let tasks = try await TaskSupervisor.start()
        // Eight owners at once, so the supervisor is often busy and its tasks start on
        // whichever scheduler thread is free, as in a real application.
        let owners = 8
        let runs = scaled(8000) / owners
        let outcomes = Locked<[String: Int]>([:])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<owners {
                group.addTask {
                    try await Process.run { _ in
                        for i in 0..<runs {
                            let t = try await tasks.asyncNolink { _ -> Int in
                                if i % 2 == 0 { throw TaskBoom() }
                                throw ProcessExit(.custom("boom"))
                            }
                            let key: String
                            switch try await t.yield(timeout: .seconds(10)) {
                            case .exit(.error)? where i % 2 == 0: key = "real reason"
                            case .exit(.custom(let v))? where i % 2 == 1 && v as? String == "boom": key = "real reason"
                            case let other: key = "\(String(describing: other))"
                            }
                            outcomes.withLock { $0[key, default: 0] += 1 }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let seen = outcomes.withLock { $0 }
        #expect(seen == ["real reason": runs * owners])
        try await tasks.supervisor.stop()
    }

    // Elixir 1.14: Task.async(fn -> exit(:boom) end) in a process trapping exits, then
    // Task.yield: {:exit, :boom} in 2000 of 2000 runs.
    @Test("Task.async: a linked task that fails at once reports its real reason to a trapping owner, never noproc")
    func asyncFailingAtOnceKeepsReason() async throws {
        let runs = scaled(2000)
        let (exits, others) = try await Process.run(SpawnOptions(trapExit: true)) { me -> (Int, [String]) in
            var exits = 0
            var others: [String] = []
            for _ in 0..<runs {
                let t = me.async { _ -> Int in throw ProcessExit(.custom("boom")) }
                switch try await t.yield(timeout: .seconds(10)) {
                case .exit(.custom(let v))? where v as? String == "boom": exits += 1
                case let other: others.append("\(String(describing: other))")
                }
                _ = try await me.receive(ExitMessage.self, after: .seconds(10), where: { $0.from == t.pid })
            }
            return (exits, others)
        }
        #expect(exits == runs, "other outcomes: \(Set(others))")
    }
}
