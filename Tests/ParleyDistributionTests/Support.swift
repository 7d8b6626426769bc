import Foundation
import Logging
@_exported import ParleyTestSupport
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import Synchronization

/// The suites that share this process's node, the global atom table (the atom-flood tests
/// lower its limit for a moment) and the Erlang nodes they start: one at a time.
@Suite("Distribution", .serialized)
enum DistributionTests {}

/// The Parley node this test process runs (one per OS process, as on the BEAM), and the
/// Erlang nodes the tests start beside it.
enum Cluster {
    static let cookie = "parleytest"
    static let erlInstalled = FileManager.default.isExecutableFile(atPath: "/usr/bin/erl")
    static let logs = LogCapture()

    private static let started = Locked<Task<String, any Error>?>(nil)

    /// Starts this process's node once: `parleytest_<pid>@127.0.0.1`, hidden, tick time 4 s
    /// (so a dead peer is noticed in seconds, not a minute).
    static func node() async throws -> String {
        let task = started.withLock { t -> Task<String, any Error> in
            if let t { return t }
            let fresh = Task<String, any Error> {
                var c = Distribution.Configuration(name: "parleytest_\(getpid())@127.0.0.1", cookie: cookie)
                c.tickTime = .seconds(4)
                c.handshakeTimeout = .seconds(3)
                let capture = logs
                c.logger = Logger(label: "parley.distribution") { label in capture.handler(label) }
                let name = try await Distribution.start(c)
                try startIOSink()
                return name
            }
            t = fresh
            return fresh
        }
        return try await task.value
    }

    /// A group leader for rpc calls: answers every io request with ok.
    static func startIOSink() throws {
        try Process.spawn(SpawnOptions(name: "test_io_sink"), state: ()) { _, message, me in
            if let t = message as? Term, case .tuple(let items) = t, items.count == 4, items[0] == .atom("io_request"),
               case .pid(let from) = items[1] {
                me.send(Term.tuple([.atom("io_reply"), items[2], .ok]), to: from)
            }
            return .continue
        }
    }

    /// The directory holding the compiled Erlang helper modules, compiled once (erlc waited
    /// for off the cooperative pool: a lazy static would hold every thread that reads it
    /// while erlc runs).
    static func beamDirectory() async throws -> String {
        let task = beams.withLock { t -> Task<String, any Error> in
            if let t { return t }
            let fresh = Task<String, any Error> {
                let dir = NSTemporaryDirectory() + "parley-erl-\(getpid())"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                // Every test shares it, so it goes when the test process exits (a C callback:
                // it names the folder again rather than capture it).
                atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "parley-erl-\(getpid())") }
                let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Erlang")
                let sources = ["parley_interop.erl", "gossip_peer.erl", "pubsub_peer.erl"].map { folder.appendingPathComponent($0).path }
                let erlc = try await runChild(["/usr/bin/erlc", "-o", dir] + sources)
                guard erlc.status == 0 else { throw DistributionError.connectFailed(node: "erlc", reason: erlc.output) }
                return dir
            }
            t = fresh
            return fresh
        }
        return try await task.value
    }
    private static let beams = Locked<Task<String, any Error>?>(nil)

    /// The test node (`Tests/ParleyTestNode`), built beside this test bundle: a Parley node
    /// with the fixtures these tests talk to.
    /// The test node built beside this test bundle, or PARLEY_TEST_NODE (a release build of
    /// it, for the registry scenarios at full size: `swift build -c release --product
    /// ParleyTestNode`).
    static var parleyExecutable: String {
        if let path = ProcessInfo.processInfo.environment["PARLEY_TEST_NODE"], !path.isEmpty { return path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ParleyTestNode").path
    }
}

/// An OS process running a node (erl, or the test node), killed when the test is done.
/// Its standard input is a pipe this object holds: erl, elixir and the test node are told
/// to exit at its end of file, so a test process that dies (a crash, a fatal error) takes
/// its nodes with it instead of leaving them running.
final class ExternalNode: Sendable {
    let name: String
    let process: Foundation.Process
    let output = Locked("")
    let input = Pipe()

    private init(name: String, process: Foundation.Process) {
        self.name = name
        self.process = process
    }

    static let counter = Atomic<Int>(0)

    static func uniqueName(_ prefix: String, host: String = "127.0.0.1") -> String {
        "\(prefix)\(getpid())_\(counter.wrappingAdd(1, ordering: .relaxed).oldValue)@\(host)"
    }

    /// Starts an Erlang node running `parley_interop:start()`, and waits until it answers a ping.
    static func erlang(cookie: String = Cluster.cookie, waitForPing: Bool = true, eval: String = "parley_interop:start()") async throws -> ExternalNode {
        let name = uniqueName("erl")
        let beams = try await Cluster.beamDirectory()
        let node = try launch(name: name, executable: "/usr/bin/erl", arguments: [
            "-name", name, "-setcookie", cookie, "-noshell", "-pa", beams,
            "-eval", eval,
        ])
        if waitForPing {
            try await node.waitUntilReachable()
            // Distribution is up before -eval runs: wait until parley_interop:start() registered its processes.
            let started = await eventually(within: .seconds(20)) {
                (try? await node.rpc("erlang", "whereis", [.atom("erl_echo")]))?.pidValue != nil
            }
            if !started { throw DistributionError.connectFailed(node: name, reason: "parley_interop did not start: \(node.output.withLock { $0 })") }
        }
        return node
    }

    /// Starts the test node as its own OS process, named `pn…@host` (any 127.x.y.z address
    /// is this machine's loopback on Linux).
    static func parley(_ extra: [String] = [], host: String = "127.0.0.1") async throws -> ExternalNode {
        let name = uniqueName("pn", host: host)
        let node = try launch(name: name, executable: Cluster.parleyExecutable, arguments: [
            "--name", name, "--cookie", Cluster.cookie, "--tick-time", "4",
        ] + extra)
        try await node.waitUntilReachable()
        return node
    }

    static func launch(name: String, executable: String, arguments: [String], environment: [String: String] = [:]) throws -> ExternalNode {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: executable)
        // Halt at the end of standard input (first, so that an -eval that never returns
        // does not keep it from being set up).
        switch URL(fileURLWithPath: executable).lastPathComponent {
        case "erl": p.arguments = ["-eval", "spawn(fun() -> io:get_line(''), erlang:halt() end)"] + arguments
        case "elixir": p.arguments = ["-e", "spawn(fn -> IO.gets(\"\"); System.halt() end)"] + arguments
        case "ParleyTestNode": p.arguments = arguments + ["--exit-on-eof", "yes"]
        default: p.arguments = arguments
        }
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        let node = ExternalNode(name: name, process: p)
        p.standardInput = node.input
        pipe.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if !data.isEmpty { node.output.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
        try p.run()
        return node
    }

    func waitUntilReachable(within limit: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await Distribution.ping(name, timeout: .seconds(2)) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw DistributionError.connectFailed(node: name, reason: "did not come up; output: \(output.withLock { $0 })")
    }

    /// `rpc:call(Node, M, F, Args)` through the node's rex server.
    func rpc(_ module: String, _ function: String, _ args: [Term], timeout: Duration = .seconds(10)) async throws -> Term {
        let gl = Process.whereis("test_io_sink")!
        let reply = try await Gen.call("rex", on: Node.named(name),
                                       Term.tuple([.atom("call"), .atom(Atom(module)), .atom(Atom(function)), .list(args), .pid(gl)]),
                                       timeout: timeout)
        return reply as! Term
    }

    /// SIGKILL: the node vanishes without closing anything, as a crashed host would.
    func kill() { killAndReap(process) }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
}

/// SIGKILLs `process` (not SIGTERM: a child spawned from a Swift concurrency thread inherits
/// a mask that blocks it) and sleeps until Foundation has reaped it. Not waitUntilExit: it
/// spins a run loop on the calling thread (a cooperative one, in tests) until the reaper
/// runs; two tests killing nodes at once took both cooperative threads of two cores.
/// From a Parley process (a scheduler thread) it only sends the signal: waiting there would
/// hold one of the two scheduler threads, and a test holding the other one until some
/// process runs would stall every suite (a CI run lost 10 s that way).
func killAndReap(_ process: Foundation.Process) {
    if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    if Scheduler.isSchedulerThread { return }
    let deadline = ContinuousClock.now + .seconds(10)
    while process.isRunning, ContinuousClock.now < deadline { usleep(2_000) }
}

/// Log records from the distribution logger, for checking what a refused connection says.
final class LogCapture: Sendable {
    let records = Locked<[String]>([])

    func handler(_ label: String) -> any LogHandler { Handler(capture: self) }

    func contains(_ text: String) -> Bool { records.withLock { $0.contains { $0.contains(text) } } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let line = "\(event.level) \(event.message)"
            capture.records.withLock { $0.append(line) }
        }
    }
}

/// Reads `count` every 50 ms until it is above 0 and has not moved since the last look: then
/// returns it (a sender held or suspended there); nil if it still moved after `looks` looks.
func countOnceStill(looks: Int = 40, _ count: () -> Int) async -> Int? {
    var last = -1
    for _ in 0..<looks {
        try? await Task.sleep(for: .milliseconds(50))
        let now = count()
        if now == last && now > 0 { return now }
        last = now
    }
    return nil
}

/// A plain OS thread that calls `send` with 0, 1, … `count - 1` and counts the calls that
/// returned: a sender that may be held.
final class SenderThread: Sendable {
    let sent = Atomic<Int>(0)
    private let done = Atomic<Bool>(false)

    init(count: Int, _ send: @escaping @Sendable (Int) -> Void) {
        let thread = Thread { [self] in
            for i in 0..<count {
                send(i)
                sent.add(1, ordering: .relaxed)
            }
            done.store(true, ordering: .releasing)
        }
        thread.start()
    }

    /// The count once it has stopped moving for one 50 ms look (the sender is held), or nil
    /// if it still moved after `looks` of them.
    func countOnceStill(looks: Int = 40) async -> Int? {
        await ParleyDistributionTests.countOnceStill(looks: looks) { sent.load(ordering: .relaxed) }
    }

    /// Whether the thread finished within `limit`.
    func waitDone(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if done.load(ordering: .acquiring) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return done.load(ordering: .acquiring)
    }
}
