import ArgumentParser
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Parley
import ParleyDistribution
import ParleyObserver
import ParleyOTP

/// `parley observer`: the web dashboard for this node, with something to look at.
struct ObserverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observer",
        abstract: "Serve the observer (a live web dashboard of this node) with a demo supervision tree.",
        discussion: """
        Open the printed address in a browser: System (schedulers and their utilization, memory,
        timers, connected nodes), Processes (sort by mailbox, reductions or memory; search; open
        one to see its links, monitors, mailbox and GenServer state, and kill it or send it a
        message), Supervision trees (restart counts, last crash reasons), Channels, Cluster.
        Prometheus scrapes /metrics. Bound to anything but loopback, it needs a token (made and
        printed if none is given). With --name, --cookie and --connect it joins a cluster, and
        the header's picker lists the connected nodes; a node's pages need an observer agent
        there (`parley node` starts one).
        """)

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Address to bind (anything but loopback needs a token).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port).")
    var port = 4040

    @Option(help: "The token requests must carry (made if the host is not loopback and none is given).")
    var token: String?

    @Flag(help: "Switch off kill and send.")
    var readOnly = false

    @Flag(inversion: .prefixedNo, help: "Start the demo tree (a supervisor, a GenServer, workers under a dynamic supervisor, a flooded mailbox, a flaky child).")
    var demo = true

    @Option(help: "Spawn this many idle processes as well (to see a large table).")
    var idle = 0

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var seconds: Double?

    @Option(help: "Start distribution under this node name (name@host), so that the page can show the nodes it connects to (those that run an observer agent: `parley node` does).")
    var name: String?

    @Option(help: "The cookie, with --name.")
    var cookie: String?

    @Option(help: "Nodes to connect to at start, with --name (repeatable); the header's picker lists them.")
    var connect: [String] = []

    func validate() throws {
        if name == nil && (cookie != nil || !connect.isEmpty) { throw ValidationError("--cookie and --connect need --name") }
        if name != nil && cookie == nil { throw ValidationError("--name needs --cookie") }
    }

    func run() async throws {
        try runtime.apply()
        let metrics = ObserverMetrics()
        metrics.bootstrapSwiftMetrics()
        let observer = try Observer(.init(host: host, port: port, token: token, allowActions: !readOnly, metrics: metrics))
        if let name, let cookie {
            let full = try await Distribution.start(.init(name: name, cookie: cookie))
            print("parley observer: node \(full)")
            for peer in connect {
                let up = await Distribution.ping(peer)
                print("  connected to \(peer): \(up ? "pong (pick it in the page's header)" : "pang")")
            }
        }
        if demo { try await ObserverDemo.start() }
        if idle > 0 { for _ in 0..<idle { _ = Process.spawn { me in _ = try await me.receive() } } }
        let server = Task { try await observer.run() }
        print("parley observer: \(await observer.url())")
        print("  metrics: \(await observer.url().split(separator: "?")[0])metrics\(observer.token.map { " (Authorization: Bearer \($0))" } ?? "")")
        if let seconds {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        } else {
            await waitForInterrupt()
        }
        server.cancel()
        _ = try? await server.value
    }

}

/// Waits for SIGINT or SIGTERM (Dispatch signal sources: the signals are ignored by default
/// and seen only by the sources).
func waitForInterrupt() async {
    let got = Channel<Int32>(buffer: .promise)
    let sources = [SIGINT, SIGTERM].map { sig -> any DispatchSourceSignal in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig)
        source.setEventHandler { _ = got.offer(sig) }
        source.resume()
        return source
    }
    _ = try? await got.receive()
    sources.forEach { $0.cancel() }
}

/// A small live system to observe: what `parley observer` and the tour start.
enum ObserverDemo {
    struct Ticker: GenServer, Sendable {
        var ticks = 0
        var lastCaller = "nobody"
        enum Call: Sendable { case tick }
        typealias Reply = Int
        mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
            ticks += 1
            lastCaller = "\(from)"
            return .reply(ticks)
        }
    }

    /// Starts the tree under the name `demo`; returns its supervisor.
    @discardableResult
    static func start() async throws -> Supervisor {
        let ticker = ServerRef<Ticker>(name: .local("demo-ticker"))
        let sup = try await Supervisor.start([
            Ticker().childSpec(id: "ticker", name: .local("demo-ticker")),
            DynamicSupervisor.childSpec(id: "workers", name: .local("demo-workers")),
            ChildSpec(id: "caller") { me in
                try me.spawn(SpawnOptions(link: true, label: "calls the ticker every 100 ms")) { p in
                    while true {
                        _ = try await ticker.call(.tick)
                        try await p.sleep(for: .milliseconds(100))
                    }
                }
            },
            ChildSpec(id: "flaky") { me in
                try me.spawn(SpawnOptions(link: true, label: "crashes every 20 s")) { p in
                    try await p.sleep(for: .seconds(20))
                    throw ProcessExit(.custom("flaky: crashed on purpose"))
                }
            },
            ChildSpec(id: "flooded") { me in
                let sink = try me.spawn(SpawnOptions(link: true, name: "demo-flooded", label: "never reads its mailbox")) { p in
                    try await p.sleep(for: .seconds(1_000_000))
                }
                try me.spawn(SpawnOptions(link: true, label: "floods demo-flooded")) { p in
                    var n = 0
                    while n < 5_000 {
                        sink.send("message \(n) for <demo-flooded>")
                        n += 1
                        if n % 50 == 0 { try await p.sleep(for: .milliseconds(100)) }
                    }
                    try await p.sleep(for: .seconds(1_000_000))
                }
                return sink
            },
            ChildSpec(id: "pipeline") { me in
                // A producer faster than its consumer: `demo-jobs` fills and the producer
                // waits on it; `demo-latest` keeps the newest result, and nobody reads it.
                let jobs = Channel<Int>(buffer: .fixed(64)).observed(as: "demo-jobs")
                let latest = Channel<String>(buffer: .sliding(1)).observed(as: "demo-latest")
                let ready = Channel<Bool>(buffer: .promise).observed(as: "demo-ready")
                let consumer = try me.spawn(SpawnOptions(link: true, label: "consumes demo-jobs every 50 ms")) { p in
                    _ = ready.offer(true)
                    while let job = try await jobs.receive() {
                        _ = latest.offer("job \(job) done")
                        try await p.sleep(for: .milliseconds(50))
                    }
                }
                try me.spawn(SpawnOptions(link: true, label: "produces into demo-jobs every 20 ms")) { p in
                    var n = 0
                    while try await jobs.send(n) {
                        n += 1
                        try await p.sleep(for: .milliseconds(20))
                    }
                }
                return consumer
            },
        ], strategy: .oneForOne, intensity: 10, period: .seconds(60), name: .local("demo"))
        if let workers = try await sup.child("workers").pid {
            for i in 1...3 {
                _ = try await DynamicSupervisor(workers).startChild(ChildSpec(id: "worker-\(i)") { me in
                    try me.spawn(SpawnOptions(link: true, label: "worker \(i)")) { p in
                        while true { _ = try await p.receive() }
                    }
                })
            }
        }
        return sup
    }
}
