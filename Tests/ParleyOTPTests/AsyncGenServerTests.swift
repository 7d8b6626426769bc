import ParleyOTP
import Testing

/// A server whose callbacks wait: a call sleeps as the process (`receive after`), then
/// replies; casts are logged.
struct Waiter: AsyncGenServer, Sendable {
    let events: Events
    var handled: [String] = []
    enum Call: Sendable { case slow(String), stop }
    typealias Reply = String
    typealias Cast = String

    mutating func initialize(_ me: Process) async throws -> InitResult {
        // initialize may wait too: the start returns only after it.
        try await me.sleep(for: .milliseconds(20))
        events.add("initialized")
        return .ok
    }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: Process) async throws -> CallResult {
        switch request {
        case .slow(let text):
            events.add("call \(text) started")
            try await me.sleep(for: .milliseconds(100))
            events.add("call \(text) done")
            handled.append(text)
            return .reply("done \(text)")
        case .stop:
            return .stop(.normal, reply: "bye")
        }
    }
    mutating func handleCast(_ request: String, _ me: Process) async throws -> HandleResult {
        events.add("cast \(request)")
        handled.append(request)
        return .noreply
    }
    mutating func terminate(_ reason: ExitReason, _ me: Process) async {
        try? await me.sleep(for: .milliseconds(100))
        events.add("terminated \(reason)")
    }
}

/// A server whose initialize gives the outcome it was made with.
struct Starting: AsyncGenServer, Sendable {
    enum Outcome: Sendable { case ok, ignore, stop, throwing }
    let outcome: Outcome
    struct Failed: Error {}
    mutating func initialize(_ me: Process) async throws -> InitResult {
        switch outcome {
        case .ok: return .ok
        case .ignore: return .ignore
        case .stop: return .stop(.custom("no"))
        case .throwing: throw ProcessExit(.custom("thrown"))
        }
    }
}

/// A server whose init asks for a continue that waits for a "go" message.
struct SlowAsyncContinue: AsyncGenServer, Sendable {
    typealias Call = String
    typealias Reply = [String]
    typealias Continue = String
    var log: [String] = []
    mutating func initialize(_ me: Process) async throws -> InitResult { .ok(continue: "slow") }
    mutating func handleContinue(_ value: String, _ me: Process) async throws -> HandleResult {
        _ = try await me.receive(String.self, where: { $0 == "go" })
        log.append("continued")
        return .noreply
    }
    mutating func handleCall(_ request: String, from: Gen.From, _ me: Process) async throws -> CallResult { .reply(log) }
}

/// AsyncGenServer speaks gen_server's protocol (gen_server.erl, Elixir's GenServer docs)
/// with callbacks that may wait.
@Suite("AsyncGenServer (gen_server semantics, callbacks that wait)", .timeLimit(.minutes(1)))
struct AsyncGenServerTests {
    init() { TestLogging.installed }

    // gen_server.erl's loop takes one message, runs its callback to the end, then takes the
    // next: a cast sent while a call's callback waits is handled after it.
    @Test("A callback that waits holds the server's next message until it returns; messages are handled one at a time, in order")
    func oneMessageAtATime() async throws {
        let events = Events()
        let server = try await Waiter(events: events).start()
        #expect(events.all == ["initialized"])
        // 30 s, not gen_server's 5: a bound for a busy machine (the callback waits 100 ms).
        async let reply = server.call(.slow("a"), timeout: .seconds(30))
        #expect(await eventually { events.all.contains("call a started") })
        server.cast("b")
        #expect(try await reply == "done a")
        #expect(await eventually { events.all.contains("cast b") })
        #expect(events.all == ["initialized", "call a started", "call a done", "cast b"])
        #expect(try await server.state().handled == ["a", "b"])   // sys:get_state
        try await server.stop()
    }

    // Elixir's GenServer docs, handle_call/3: "Returning {:stop, reason, reply, new_state}
    // stops the loop and terminate/2 is called ... Then, the reply is sent".
    @Test("{stop, Reason, Reply, State}: terminate runs first (and may wait), then the reply is sent")
    func stopWithReply() async throws {
        let events = Events()
        let server = try await Waiter(events: events).start()
        let reply = try await server.call(.stop)
        events.add("replied \(reply)")
        #expect(events.all == ["initialized", "terminated normal", "replied bye"])
        #expect(await eventually { server.pid?.isAlive == false })
    }

    // gen_server:start/3: init returning ignore gives `ignore`, {stop, Reason} and an
    // exception give {error, Reason}; a registered name that is taken gives
    // {error, {already_started, Pid}}.
    @Test("start: ignore, stop and a thrown exit fail the start with their reasons; a taken name gives alreadyStarted")
    func startOutcomes() async throws {
        do {
            _ = try await Starting(outcome: .ignore).start()
            Issue.record("start should be ignored")
        } catch {
            guard case .ignored = error else { Issue.record("got \(error)"); return }
        }
        do {
            _ = try await Starting(outcome: .stop).start()
            Issue.record("start should fail")
        } catch {
            guard case .failed(.custom(let v)) = error else { Issue.record("got \(error)"); return }
            #expect(v as? String == "no")
        }
        do {
            _ = try await Starting(outcome: .throwing).start()
            Issue.record("start should fail")
        } catch {
            guard case .failed(.custom(let v)) = error else { Issue.record("got \(error)"); return }
            #expect(v as? String == "thrown")
        }
        let name = "async-start-\(UInt32.random(in: 0...UInt32.max))"
        let first = try await Starting(outcome: .ok).start(name: .local(name))
        do {
            _ = try await Starting(outcome: .ok).start(name: .local(name))
            Issue.record("a second start under a taken name should fail")
        } catch {
            guard case .alreadyStarted(let owner) = error else { Issue.record("got \(error)"); return }
            #expect(owner == first.pid)
        }
        try await first.stop()
    }

    // OTP 26's proc_lib (the rule the synchronous GenServer follows too): a start_link whose
    // init fails returns the error, and the linked starter gets no exit signal from it.
    @Test("startLink whose initialize fails: the starter gets the error and no exit signal")
    func startLinkFailureSendsNoSignal() async throws {
        let stray = try await Process.run(SpawnOptions(trapExit: true)) { me in
            do {
                _ = try await Starting(outcome: .stop).startLink(me)
            } catch {}
            return try await me.receive(ExitMessage.self, after: .milliseconds(200))
        }
        #expect(stray == nil)
    }

    // gen_server: with trap_exit, an exit signal from the parent runs terminate and ends the
    // server with the same reason.
    @Test("An exit signal from the parent, trapped, runs terminate (which may wait) and ends the server with that reason")
    func parentExit() async throws {
        let events = Events()
        let server = Locked<Pid?>(nil)
        let parent = Process.spawn { me in
            let ref = try await Waiter(events: events).startLink(me, options: GenServerOptions(trapExit: true))
            server.withLock { $0 = ref.pid }
            _ = try await me.receive()
        }
        #expect(await eventually { server.withLock { $0 } != nil })
        let pid = try #require(server.withLock { $0 })
        Process.exit(parent, .shutdown)
        #expect(await eventually { !pid.isAlive })
        #expect(events.all.last == "terminated shutdown")
    }

    // gen_server.erl acks init, then runs handle_continue before any message (Elixir 1.14:
    // start_link returns after 0 ms; the first call sees the continue done).
    @Test("{ok, State, {continue, C}}: start returns before handle_continue has finished; it runs before the first call")
    func continueAfterInit() async throws {
        // The continue waits for "go": start returning at all shows it does not wait for it.
        let server = try await SlowAsyncContinue().start()
        let pid = try #require(server.pid)
        async let state = server.call("get", timeout: .seconds(10))
        pid.send("go")
        #expect(try await state == ["continued"])
        try await server.stop()
    }
}
