import ParleyOTP
import Testing

/// Records, for each sender, the numbers it cast, and answers whether every sender's came in
/// the order sent and complete.
struct Tally: GenServer, Sendable {
    var seen: [Int: [Int]] = [:]
    struct Note: Sendable { let sender: Int; let n: Int }
    enum Call: Sendable { case check(senders: Int, each: Int) }
    typealias Reply = Bool
    typealias Cast = Note
    mutating func handleCast(_ note: Note, _ me: CallbackProcess) -> HandleResult {
        seen[note.sender, default: []].append(note.n)
        return .noreply
    }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        guard case .check(let senders, let each) = request else { return .reply(false) }
        return .reply((0..<senders).allSatisfy { seen[$0] == Array(0..<each) })
    }
}

/// The same with callbacks that may wait (AsyncGenServer runs as a sequential process).
struct AsyncTally: AsyncGenServer, Sendable {
    var seen: [Int: [Int]] = [:]
    typealias Call = Tally.Call
    typealias Reply = Bool
    typealias Cast = Tally.Note
    mutating func handleCast(_ note: Tally.Note, _ me: Process) async throws -> HandleResult {
        seen[note.sender, default: []].append(note.n)
        return .noreply
    }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: Process) async throws -> CallResult {
        guard case .check(let senders, let each) = request else { return .reply(false) }
        return .reply((0..<senders).allSatisfy { seen[$0] == Array(0..<each) })
    }
}

/// A server that many processes cast to can ask for parallel sends (the BEAM's parallel
/// signal sending, which it applies to `{message_queue_data, off_heap}` processes): the
/// option reaches the server's process, shows in `Process.info` (as `process_info(Pid,
/// message_queue_data)` shows `off_heap`), and each sender's casts still arrive in the order
/// it sent them (Erlang's one ordering guarantee, between a pair of processes).
@Suite("GenServer with parallel sends", .timeLimit(.minutes(1)))
struct ParallelSendServerTests {
    static let senders = 6

    /// Casts `each` numbered notes from each of `senders` processes at once, then asks (with
    /// 30 s for the answer, not gen_server's 5: the server has 30,000 casts to handle first,
    /// in a debug build, beside the rest of the suite and a browser).
    static func castFromMany(_ cast: @escaping @Sendable (Tally.Note) -> Void, each: Int) async throws {
        let done = try await Process.run { me in
            for s in 0..<senders {
                let parent = me.pid
                me.spawn { p in
                    for n in 0..<each { cast(Tally.Note(sender: s, n: n)) }
                    p.send(s, to: parent)
                }
            }
            for _ in 0..<senders { _ = try await me.receive(Int.self) }
            return true
        }
        #expect(done)
    }

    @Test("GenServerOptions(parallelSend: true): the server has parallel sends and keeps each sender's order")
    func genServer() async throws {
        let each = scaled(5_000)
        let server = try Tally().start(options: GenServerOptions(parallelSend: true))
        #expect(Process.info(server.pid!)?.parallelSend == true)
        try await Self.castFromMany({ server.cast($0) }, each: each)
        #expect(try await server.call(.check(senders: Self.senders, each: each), timeout: .seconds(30)))
        try await server.stop()

        let plain = try Tally().start()
        #expect(Process.info(plain.pid!)?.parallelSend == false, "off by default, as on_heap is the BEAM's default")
        try await plain.stop()
    }

    @Test("AsyncGenServer with GenServerOptions(parallelSend: true): the same")
    func asyncGenServer() async throws {
        let each = scaled(5_000)
        let server = try await AsyncTally().start(options: GenServerOptions(parallelSend: true))
        #expect(Process.info(server.pid!)?.parallelSend == true)
        try await Self.castFromMany({ server.cast($0) }, each: each)
        #expect(try await server.call(.check(senders: Self.senders, each: each), timeout: .seconds(30)))
        try await server.stop()
    }

    @Test("a bounded mailbox keeps one queue (parallel sends are ignored with a bound)")
    func boundedIgnores() async throws {
        let server = try Tally().start(options: GenServerOptions(mailbox: MailboxLimit(capacity: 100), parallelSend: true))
        #expect(Process.info(server.pid!)?.parallelSend == false)
        try await server.stop()
    }
}
