// Code as a user writes it in a package with default settings: async helpers that take a
// `Process` (which such a package makes `@concurrent`), closures that call them, the README's
// supervised tree and servers. This target has none of Parley's own Swift settings; it fails
// to compile if the public API only works under `NonisolatedNonsendingByDefault`.
import ParleyOTP
import Testing

/// A helper in the user's module: `@concurrent` here, since this target runs nonisolated
/// async functions off the caller's executor (Swift 6's default).
func tick(_ p: Process) async throws {
    while let n = try await p.receive(Int.self, after: .milliseconds(20)) {
        if n < 0 { return }
    }
}

func ask(_ p: Process, _ server: Pid) async throws -> String {
    p.send((p.pid, "ping"), to: server)
    return try await p.receive(String.self)
}

struct Counter: GenServer, Sendable {
    var count = 0
    enum Call: Sendable { case get, add(Int) }
    typealias Reply = Int
    enum Cast: Sendable { case reset }

    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .get: return .reply(count)
        case .add(let n): count += n; return .reply(count)
        }
    }
    mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
        count = 0
        return .noreply
    }
}

/// A helper an AsyncGenServer's callbacks call with their `Process`: the callbacks run on
/// the caller's executor (`nonisolated(nonsending)`, as Parley declares them, so a call
/// to them needs no executor hop), and so must a helper they pass their process to. Without
/// the annotation this package would make it `@concurrent` and reject `ask(me, ...)`.
nonisolated(nonsending) func askFromCallback(_ p: Process, _ server: Pid) async throws -> String {
    p.send((p.pid, "ping"), to: server)
    return try await p.receive(String.self)
}

/// An AsyncGenServer whose callbacks call the user's own async helper.
struct Relay: AsyncGenServer, Sendable {
    let echo: Pid
    typealias Call = String
    typealias Reply = String
    mutating func handleCall(_ request: String, from: Gen.From, _ me: Process) async throws -> CallResult {
        .reply(try await askFromCallback(me, echo) + " " + request)
    }
}

@Suite("Parley from a package with default settings")
struct UserCodeTests {
    @Test("The README's shapes compile and run without Parley's Swift settings: helpers taking a Process from spawn, spawnLink and run, a supervised tree with a ticker child, an AsyncGenServer calling a helper")
    func readmeShapes() async throws {
        let echo = Process.spawn { me in
            while true {
                let (from, text) = try await me.receive((Pid, String).self)
                me.send("pong for \(text)", to: from)
            }
        }
        defer { Process.exit(echo, .kill) }

        // spawn, spawnLink and run with a user helper that takes the process.
        let answer = try await Process.run { me in
            let child = me.spawnLink { t in try await tick(t) }
            child.send(-1)
            _ = me.spawn { t in try await tick(t) }
            return try await ask(me, echo)
        }
        #expect(answer == "pong for ping")

        // The README's supervised tree: a GenServer child and a ticker started by a closure.
        let sup = try await Supervisor.start([
            Counter().childSpec(id: "counter", name: .local("user_counter")),
            ChildSpec(id: "ticker", restart: .transient) { me in me.spawnLink { t in try await tick(t) } },
        ], strategy: .oneForOne)
        let counter = ServerRef<Counter>(name: .local("user_counter"))
        try await counter.call(.add(1))               // the README's line: no warning, no `_ =`
        #expect(try await counter.call(.add(1)) == 2)
        counter.cast(.reset)
        #expect(try await counter.call(.get) == 0)
        try await sup.stop()

        // An AsyncGenServer whose callback awaits the user's helper.
        let relay = try await Relay(echo: echo).start()
        #expect(try await relay.call("through relay") == "pong for ping through relay")
        try await relay.stop()
    }
}
