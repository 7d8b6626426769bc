import ParleyOTP
import Testing

struct Deferred: GenServer {
    typealias Call = Int
    typealias Reply = Int
    var pending: [Gen.From] = []
    let delay: Duration
    struct Fire: Sendable {}
    mutating func handleCall(_ request: Int, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        pending.append(from)
        me.sendAfter(Fire(), after: delay)
        return .noreply
    }
    mutating func handleInfo(_ message: any Sendable, _ me: CallbackProcess) -> HandleResult {
        for f in pending { Gen.reply(f, 42) }
        pending.removeAll()
        return .noreply
    }
}

/// Hands every call's `from` to a helper process, which replies at once.
struct Relay: GenServer {
    typealias Call = Int
    typealias Reply = Int
    let helper: Pid
    mutating func handleCall(_ request: Int, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        helper.send(from)
        return .noreply
    }
}

struct Fragile: GenServer {
    enum Call: Sendable { case crash, stopReply, stopNoReply, ok }
    typealias Reply = String
    struct Boom: Error {}
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        switch request {
        case .crash: throw Boom()
        case .stopReply: return .stop(.normal, reply: "bye")
        case .stopNoReply: return .stop(.shutdownWith("done"))
        case .ok: return .reply("ok")
        }
    }
}

struct Continuing: GenServer, Sendable {
    var log: [String] = []
    enum Call: Sendable { case get, poke }
    typealias Reply = [String]
    typealias Continue = String
    mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        log.append("init")
        return .ok(continue: "after-init")
    }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .get: return .reply(log)
        case .poke:
            log.append("poke")
            return .reply(log, continue: "after-poke")
        }
    }
    mutating func handleContinue(_ value: String, _ me: CallbackProcess) -> HandleResult {
        log.append(value)
        return .noreply
    }
}

struct InitOutcome: GenServer {
    enum Mode: Sendable { case ignore, stop, throwing }
    let mode: Mode
    struct Bad: Error {}
    mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        switch mode {
        case .ignore: return .ignore
        case .stop: return .stop(.custom("no_config"))
        case .throwing: throw Bad()
        }
    }
}

struct Terminating: GenServer {
    let events: Events
    mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        me.trapExit = true
        return .ok
    }
    mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess) { events.add("terminate \(reason)") }
}

struct Ping: Sendable {}

@Suite("GenServer (gen_server semantics)")
struct GenServerTests {
    init() { TestLogging.installed }

    @Test("call replies, cast is asynchronous, state persists between callbacks")
    func callAndCast() async throws {
        let counter = try Counter().start()
        #expect(try await counter.call(.add(2)) == 2)
        #expect(try await counter.call(.add(3)) == 5)
        counter.cast(.reset)
        #expect(try await counter.call(.get) == 0)
        try await counter.stop()
    }

    @Test("calls work from a process and from plain Swift tasks alike")
    func callFromProcessAndTask() async throws {
        let counter = try Counter().start()
        let fromProcess = try await Process.run { _ in try await counter.call(.add(1)) }
        let fromTask = try await Task.detached { try await counter.call(.add(1)) }.value
        #expect(fromProcess == 1 && fromTask == 2)
        try await counter.stop()
    }

    @Test("gen_server wire shapes: a hand-written caller using {'$gen_call', {From, Tag}, Req} gets {Tag, Reply}")
    func wireShapes() async throws {
        let counter = try Counter().start()
        let reply = try await Process.run { me -> Int in
            let tag = me.alias()
            counter.pid!.send(Gen.CallMessage(from: Gen.From(pid: me.pid, tag: tag), request: Counter.Call.add(7)))
            let r = try await me.receive(Gen.ReplyMessage.self, where: { $0.tag == tag })
            me.unalias(tag)
            return r.reply as! Int
        }
        #expect(reply == 7)
        counter.pid!.send(Gen.CastMessage(request: Counter.Cast.reset))
        #expect(try await counter.call(.get) == 0)
        try await counter.stop()
    }

    @Test("gen_server:reply/2: noreply now, reply later from elsewhere with the caller's From")
    func deferredReply() async throws {
        let server = try Deferred(delay: .milliseconds(20)).start()
        #expect(try await server.call(1) == 42)
        try await server.stop()
    }

    @Test("gen_server:reply/2 from another process right after noreply is never lost (hand-off and mailbox paths)")
    func replyFromElsewhereImmediately() async throws {
        let helper = try Process.spawn(state: ()) { _, message, _ in
            if let from = message as? Gen.From { Gen.reply(from, 7) }
            return .continue
        }
        let relay = try Relay(helper: helper).start()
        let replies = try await Process.run { _ -> [Int] in
            var out: [Int] = []
            for _ in 0..<scaled(2000) { out.append(try await relay.call(1, timeout: .seconds(5))) }
            return out
        }
        #expect(replies.allSatisfy { $0 == 7 })
        #expect(try await relay.call(1) == 7)   // from outside a process too
        try await relay.stop()
        Process.exit(helper, .kill)
    }

    @Test("a call that times out raises timeout and leaves no late reply in the mailbox (OTP 24 aliases)")
    func timeoutLeavesNoLateReply() async throws {
        // The reply comes 800 ms after the call, the timeout at 30 ms: room for a busy machine.
        // (gen:call takes a reply that arrives before the caller gets to run its timeout, so
        // a caller held up for the whole 770 ms would see the reply, in OTP too.)
        let server = try Deferred(delay: .milliseconds(800)).start()
        let leftovers = try await Process.run { me -> Int in
            do {
                _ = try await server.call(1, timeout: .milliseconds(30))
                Issue.record("expected a timeout")
            } catch let error as Gen.CallError {
                guard case .timeout = error else { Issue.record("expected timeout, got \(error)"); return -1 }
            }
            try await me.sleep(for: .milliseconds(1000))   // the reply is sent meanwhile
            var n = 0
            while try await me.receive(after: .zero) != nil { n += 1 }
            return n
        }
        #expect(leftovers == 0)
        try await server.stop()
    }

    @Test("a crash in handle_call reaches the caller as an error carrying the reason")
    func crashInCall() async throws {
        let server = try Fragile().start()
        do {
            _ = try await server.call(.crash)
            Issue.record("expected an error")
        } catch {
            guard case .exited(.error(let e)) = error else { Issue.record("got \(error)"); return }
            #expect(e is Fragile.Boom)
        }
        #expect(server.pid?.isAlive == false)
    }

    @Test("{stop, Reason, Reply, State} replies then stops; {stop, Reason, State} gives the caller the reason")
    func stopWithAndWithoutReply() async throws {
        let a = try Fragile().start()
        #expect(try await a.call(.stopReply) == "bye")
        #expect(await eventually { a.pid?.isAlive == false })
        let b = try Fragile().start()
        do {
            _ = try await b.call(.stopNoReply)
            Issue.record("expected an error")
        } catch {
            guard case .exited(.shutdownWith) = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test("calling a dead server gives noproc; a process calling itself gives calling_self")
    func noprocAndCallingSelf() async throws {
        let server = try Fragile().start()
        try await server.stop()
        await #expect(throws: Gen.CallError.self) { _ = try await server.call(.ok) }
        let result = try await Process.run { me -> String in
            do { _ = try await Gen.call(me.pid, "x"); return "no error" } catch { return "\(error)" }
        }
        #expect(result.contains("calling_self"))
    }

    @Test("handle_continue runs after init and after a callback, before the next message")
    func continueAfterInitAndCall() async throws {
        let server = try Continuing().start()
        #expect(try await server.call(.get) == ["init", "after-init"])
        _ = try await server.call(.poke)
        #expect(try await server.call(.get) == ["init", "after-init", "poke", "after-poke"])
        try await server.stop()
    }

    @Test("init returning ignore, stop, or throwing makes start fail with that outcome")
    func initOutcomes() async throws {
        #expect(throws: StartError.self) { _ = try InitOutcome(mode: .ignore).start() }
        do {
            _ = try InitOutcome(mode: .stop).start()
        } catch {
            guard case .failed(.custom) = error else { Issue.record("got \(error)"); return }
        }
        do {
            _ = try InitOutcome(mode: .throwing).start()
        } catch {
            guard case .failed(.error) = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test("start_link whose init fails leaves no EXIT in the parent's mailbox (OTP 26 proc_lib)")
    func startLinkFailureNoExit() async throws {
        let stray = try await Process.run(SpawnOptions(trapExit: true)) { me -> Int in
            _ = try? InitOutcome(mode: .stop).startLink(me)
            var n = 0
            while try await me.receive(after: .milliseconds(50)) != nil { n += 1 }
            return n
        }
        #expect(stray == 0)
    }

    @Test("a taken name gives already_started with the owner's pid")
    func nameTaken() async throws {
        let a = try Counter().start(name: .local("gs-name-taken"))
        do {
            _ = try Counter().start(name: .local("gs-name-taken"))
            Issue.record("expected already_started")
        } catch {
            guard case .alreadyStarted(let owner) = error else { Issue.record("got \(error)"); return }
            #expect(owner == a.pid)
        }
        let byName = ServerRef<Counter>(name: .local("gs-name-taken"))
        #expect(try await byName.call(.add(1)) == 1)
        try await a.stop()
        await #expect(throws: Gen.CallError.self) { _ = try await byName.call(.get) }
    }

    @Test("terminate runs on stop and on a trapped exit from the parent, not on kill")
    func terminateRules() async throws {
        let events = Events()
        let a = try Terminating(events: events).start()
        try await a.stop(.shutdown)
        #expect(events.all == ["terminate shutdown"])

        _ = try? await Process.run { me in
            _ = try Terminating(events: events).startLink(me)
            throw ProcessExit(.shutdown)
        }
        #expect(await eventually { events.all.count == 2 })
        #expect(events.all.last == "terminate shutdown")

        let c = try Terminating(events: events).start()
        Process.exit(c.pid!, .kill)
        try await Task.sleep(for: .milliseconds(50))
        #expect(events.all.count == 2)
    }

    @Test("a call of the wrong type is rejected with a typed error and the server lives on")
    func badRequest() async throws {
        let counter = try Counter().start()
        do {
            _ = try await Gen.call(counter.pid!, "not a Counter.Call")
            Issue.record("expected badRequest")
        } catch {
            guard case .badRequest = error else { Issue.record("got \(error)"); return }
        }
        #expect(try await counter.call(.add(1)) == 1)
        try await counter.stop()
    }

    @Test("a cancelled caller outside any process gets cancelled, and no reply leaks")
    func cancelledCaller() async throws {
        // The reply would come after 2 s; the cancel comes at 30 ms (room for a busy machine).
        let server = try Deferred(delay: .seconds(2)).start()
        let task = Task { try await server.call(1, timeout: nil) }
        try await Task.sleep(for: .milliseconds(30))
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("expected cancellation")
        } catch let e as Gen.CallError {
            guard case .cancelled = e else { Issue.record("got \(e)"); return }
        }
        try await server.stop()
    }

    @Test("handle_info gets plain messages; sys:get_state returns the state")
    func infoAndState() async throws {
        let counter = try Counter().start()
        counter.send(Ping())   // logged as unexpected by the default handleInfo; the server lives
        #expect(try await counter.call(.add(3)) == 3)
        #expect(try await counter.state().count == 3)
        try await counter.stop()
    }

    @Test("an idle GenServer holds no Swift task: it is a callback process")
    func idleIsCallback() async throws {
        let counter = try Counter().start()
        #expect(Process.info(counter.pid!)?.kind == .callback)
        try await counter.stop()
    }

    @Test("many concurrent callers each get their own reply")
    func concurrentCallers() async throws {
        let counter = try Counter().start()
        let n = scaled(2000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await Process.run { _ in
                        for _ in 0..<n { _ = try await counter.call(.add(1)) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await counter.call(.get) == 4 * n)
        try await counter.stop()
    }
}
