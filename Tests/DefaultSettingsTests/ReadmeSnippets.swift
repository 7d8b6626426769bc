// Every Swift block of README.md, compiled as a user's code: this target has Swift 6's
// default settings and depends on Parley's products by name, as an app's target does.
// `ReadmeSnippetTests` fails when a README block is not found here line for line (leading
// spaces, blank lines and imports aside), so a README example can never again fail to
// compile unnoticed. The functions are compiled, not run; `UserCodeTests` runs the shapes.
// What a block uses but does not declare comes in as a parameter or a declaration here.
import ParleyCluster
import ParleyDistribution
import ParleyOTP
import ParleyObserver
import Tracing

// README block 1 ("`Process` and `Channel` beside Foundation and NIO"), at file scope as the
// README says to write it.
typealias Process = Parley.Process
typealias Channel = Parley.Channel

/// What README block 5's `Cache` calls.
struct Backend: GenServer, Sendable {
    typealias Call = String
    typealias Reply = Int
    mutating func handleCall(_ request: String, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(request.count) }
}

// README block 2.
func readme2() async throws {

    // Bridge from ordinary async code into the process world; returns the body's result.
    let reply = try await Process.run { me in
        // A sequential process: an async body that calls receive.
        let echo = me.spawn { p in
            let (from, text) = try await p.receive((Pid, String).self)   // selective, by type
            p.send("echo: \(text)", to: from)
        }
        me.send((me.pid, "hi"), to: echo)                                  // never blocks
        return try await me.receive(String.self, after: .seconds(1))     // receive ... after
    }

    // A callback process: no Swift task while idle (under 200 bytes); its handler runs per message.
    // `me` is a CallbackProcess: it sends, spawns, links and monitors, but cannot wait.
    let counter = try Process.spawn(state: 0) { count, message, me in
        switch message {
        case let n as Int: count += n
        case let from as Pid: me.send(count, to: from)
        default: return .stop(.custom("unexpected \(message)"))
        }
        return .continue
    }
    counter.send(5)
}

// README block 3.
func readme3() async throws {
    struct MyError: Error {}

    try await Process.run { me in
        me.trapExit = true                                // exit signals become ExitMessage values
        let worker = me.spawnLink { _ in throw MyError() } // crashes: reason .error(MyError())
        let exit = try await me.receive(ExitMessage.self) // {'EXIT', worker, error}

        let (pid, ref) = me.spawnMonitor { p in _ = try await p.receive() }
        Process.exit(pid, .kill)                          // untrappable; reason becomes .killed
        let down = try await me.receive(DownMessage.self, where: { $0.ref == ref })
        print(exit.from == worker, exit.reason, down.reason)     // true error: MyError() killed
    }
}

// README block 4.
func readme4() async throws {

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

    // A supervised tree: children start in order and stop in reverse order.
    let sup = try await Supervisor.start([
        Counter().childSpec(id: "counter", name: .local("counter")),
        ChildSpec(id: "ticker", restart: .transient) { me in me.spawnLink { t in try await tick(t) } },
    ], strategy: .oneForOne)                      // 3 restarts in 5 s, as Elixir's default

    let counter = ServerRef<Counter>(name: .local("counter"))
    try await counter.call(.add(2))               // 2; from a process or any Swift task
    counter.cast(.reset)
    do {
        _ = try await counter.call(.get, timeout: .milliseconds(100))
    } catch .timeout {                            // Gen.CallError: timeout, exited(reason), noproc...
    }
}

// README block 5.
func readme5(backend: ServerRef<Backend>) async throws {
    struct Cache: AsyncGenServer {
        var values: [String: Int] = [:]
        let backend: ServerRef<Backend>
        typealias Call = String
        typealias Reply = Int

        mutating func handleCall(_ key: String, from: Gen.From, _ me: Process) async throws -> CallResult {
            if let v = values[key] { return .reply(v) }
            let v = try await backend.call(key)    // waits; later messages queue meanwhile
            values[key] = v
            return .reply(v)
        }
    }
    let cache = try await Cache(backend: backend).start()
}

// README block 6.
func readme6() {
    struct Room: GenServer {
        var members: [String] = []
        var password = ""
        func formatStatus(_ status: ServerStatus) -> ServerStatus {
            var s = status
            s.state = "Room(\(members.count) members, password: <redacted>)"
            return s
        }
    }
}

// README block 7.
func readme7() async throws {

    let ch = Channel<String>()                       // unbuffered: a send waits for a receiver
    go { try await ch.send("hi") }                   // a lightweight process: parks, never blocks a thread
    print(try await ch.receive() ?? "closed")        // "hi"

    let jobs = Channel<Int>(buffer: .fixed(100))     // also .sliding(n), .dropping(n), .promise
    for i in 0..<10 { try await jobs.send(i) }
    jobs.close()                                     // later sends return false; values still drain
    while let job = try await jobs.receive() { print(job) }

    // select: exactly one case completes; fair by default, `order: .priority` for the first ready.
    let quit = Channel<Void>()
    let what = try await select {
        jobs.onReceive { v in "job \(v as Any)" }
        quit.onReceive { _ in "quit" }
        SelectCase.timeout(.seconds(1)) { "idle" }    // or SelectCase.default { ... }: never wait
    }

    // core.async's alts over an array, and transducers on a channel.
    let chans = (0..<1000).map { _ in Channel<String>() }
    for c in chans { go { try await c.send("hi") } }
    for _ in chans { let (v, i) = try await alts(chans)!; _ = (v, i) }
    let evens = Chan(buffer: .fixed(8), transform: Transducer<Int, Int>.filter { $0 % 2 == 0 }.then(.map { $0 * 10 }))
}

// README block 8.
func readme8(jobs: Channel<Int>) async throws {
    try await Process.run { me in
        let stop = try await me.select {
            me.onMessage(String.self, where: { $0 == "stop" }) { _ in true }
            me.onMessage(Int.self) { n in print("number \(n)"); return false }
            jobs.onReceive { _ in false }
            SelectCase.timeout(.seconds(5)) { true }
        }
    }
}

// README block 9.
func readme9(someRemotePid: Pid) async throws {

    try await Distribution.start(.init(name: "swift@127.0.0.1", cookie: "secret"))
    let pong = await Distribution.ping("erl@127.0.0.1")            // Node.ping: true for :pong

    try await Process.run { me in
        // {echo, 'erl@127.0.0.1'} ! {self(), hello}
        me.send(Term.tuple([.pid(me.pid), .atom("hello")]), to: "echo", on: Node.named("erl@127.0.0.1"))
        let reply = try await me.receive(Term.self)
        // gen_server:call({counter, 'erl@127.0.0.1'}, {add, 5})
        let n = try await Gen.call("counter", on: Node.named("erl@127.0.0.1"), Term.tuple([.atom("add"), 5]))
        // Pids from other nodes work like local ones: link, monitor, exit, send, GenServer calls.
        let ref = me.monitor(someRemotePid)          // DOWN with noconnection if the node goes away
    }
}

// README block 10.
func readme10() async throws {
    let b = try LocalNode(name: "b@127.0.0.1")             // its own processes and names
    try await b.startDistribution(.init(name: "b@127.0.0.1", cookie: "secret"))
    try await Distribution.start(.init(name: "a@127.0.0.1", cookie: "secret"))

    // {From, Msg} -> From ! Msg. What crosses a connection arrives as a Term.
    let echo = try b.spawn(SpawnOptions(name: "echo"), state: ()) { _, message, me in
        if case .tuple(let t)? = message as? Term, t.count == 2, case .pid(let from) = t[0] { me.send(t[1], to: from) }
        return .continue
    }
    print(Process.whereis("echo") as Any)                    // nil: the default node has no such name
    print(b.whereis("echo") == echo)                         // true
    let reply = try await Process.run { me in                // a process of the default node
        me.send(Term.tuple([.pid(me.pid), .atom("hi")]), to: "echo", on: Node.named(b.name))
        return try await me.receive(Term.self)               // hi, over the connection
    }
    let names = try await b.run { me in Process.registered() } // code in b's process sees b's names
}

// README block 11 ("The observer").
func readme11() async throws {
    let observer = try Observer(.init(port: 4040))
    Task { try await observer.run() }               // cancel the task to stop it
}

// README block 12 ("The observer": tracing from code).
func readme12(server: Pid) async throws {
    let session = try Process.trace(server, [.receive, .send], limit: .total(100))
    try await Task.sleep(for: .seconds(1))
    for event in session.events { print(event) }   // {trace, <0.62.0>, 'receive', ...}
    session.stop()                                  // or let the limit or the exit stop it
}

// README block 13 ("Spans for GenServer calls").
func checkout(_ backend: ServerRef<Backend>) async throws -> Int {
    // Once, at startup: InstrumentationSystem.bootstrap(yourTracer), then
    Gen.propagatesContext = true
    return try await withSpan("checkout") { _ in
        try await backend.call("cart-42")   // GenServer.call Backend → GenServer.handleCall Backend
    }
}

// README block 14 ("Another node's pages").
func readme14() throws {
    let agent = try Observer(.init(allowActions: false))   // this node's settings, for other observers too
    try agent.startAgent()
}

// README: ":global on visible nodes".
func readmeGlobal(jobs: Pid, cache: Pid) async throws {
    var config = Distribution.Configuration(name: "swift@127.0.0.1", cookie: "secret")
    config.hidden = false
    try await Distribution.start(config)
    try await Distribution.connect("erl@127.0.0.1")      // and so to every node erl knows
    try await Global.sync()                                // global:sync()

    let ok = try await Global.register("jobs", jobs)       // erl: global:whereis_name(jobs)
    try Global.send(Term.atom("flush"), to: "logger")      // a name an Erlang node registered
    let erlPid = Global.whereis("logger")                  // read locally, no message
    try await Global.register("cache", cache, resolve: .custom { _, a, b in min(a, b) })
    _ = (ok, erlPid)
}

// README: "Process groups: Erlang's pg".
func readmeProcessGroups(me: Process) async throws {
    let pg = try ProcessGroups.start(scope: "chat")        // pg:start_link(chat)
    try await pg.join("lobby", me.pid)                     // pg:join(chat, lobby, self())
    for member in pg.members("lobby") {                    // pg:get_members(chat, lobby), no call
        member.send(Term.tuple([.atom("said"), .binary(Array("hi".utf8))]))
    }
    let (ref, groups) = try await pg.monitorScope(for: me.pid)   // {Ref, join | leave, Group, Pids}
    try await pg.leave("lobby", me.pid)                    // false: not_joined
    _ = (ref, groups)
}

// README: "Phoenix.PubSub".
func readmePhoenixPubSub(me: Process) async throws {
    let pubsub = try await PhoenixPubSub.start(name: "MyApp.PubSub", poolSize: 1)  // the app's name: and pool_size:
    try pubsub.subscribe(me, to: "room:1")                  // Phoenix.PubSub.subscribe(MyApp.PubSub, "room:1")
    pubsub.broadcast(.tuple([.atom("new_msg"), .string("hi")]), to: "room:1")
    pubsub.broadcastToChannels(topic: "room:1", event: "new_msg", payload: .map([.string("body"): .string("hi")]))
    let got = try await me.receive(Term.self)              // what the app broadcast
    if let b = PhoenixPubSub.ChannelBroadcast(got) { print(b.event, b.payload) }   // %Phoenix.Socket.Broadcast{}
}

// README: "Named work that survives node loss".
struct Cart: HandoffServer {
    typealias Call = Term
    typealias Reply = Term
    typealias HandoffState = [String]
    let context: WorkerContext
    var items: [String] = []
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        if let item = request.stringValue {
            items.append(item)
            try context.checkpoint(items, me)            // kept if this node dies
        }
        return .reply(.list(items.map { .string($0) }))
    }
    func beginHandoff(_ me: CallbackProcess) -> Handoff<[String]> { .resume(items) }     // or .restart, .ignore
    mutating func endHandoff(_ state: [String], _ me: CallbackProcess) { items = state }  // before any message
    mutating func resolveConflict(_ other: [String], _ me: CallbackProcess) { items += other }
}

func readmeDistributedRegistry(me: Process) async throws {
    DistributedRegistry("carts").define("cart") { context in Cart(context: context) }   // on every node
    let carts = try await DistributedRegistry.start("carts")
    let pid = try await carts.registerName("cart:42", start: "cart")   // placed on its owner
    _ = try await carts.call("cart:42", Term.string("apple"))          // from any node, a local lookup
    await carts.cast("cart:42", Term.atom("noop"))
    try await carts.send(Term.atom("hello"), to: "cart:42")
    try await carts.register("session:7", me.pid)                      // a running process: it never moves
    print(carts.registered(), carts.members, carts.entry("cart:42")?.epoch ?? 0, pid)
}

/// The README's via-named server: an AsyncGenServer with Codable calls.
struct Ledger: AsyncGenServer, Sendable {
    enum Call: Sendable, Codable { case total, add(Int) }
    typealias Reply = Int
    var sum = 0
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: Process) async throws -> CallResult {
        if case .add(let n) = request { sum += n }
        return .reply(sum)
    }
}

func readmeRegistryVia(carts: DistributedRegistry) async throws {
    let ledger = try await Ledger().start(name: .via(carts, "ledger"))              // registered cluster-wide
    let total = try await ServerRef<Ledger>(name: .via(carts, "ledger")).call(.total)   // from any member
    print(ledger, total)
}

func readmeRegistryGroups(carts: DistributedRegistry, me: Process) async throws {
    try await carts.join("audit", me.pid)                 // returns once every member has it
    try await carts.join("audit", name: "cart:42")        // whichever process holds the name
    carts.publish(Term.atom("flush"), to: "audit")
    let replies = await carts.multicall("audit", Term.atom("stats"), timeout: .seconds(1))   // late ones left out
    print(carts.members("audit"), replies.count)
}

func readmeDistributedSupervisor() async throws {
    DistributedSupervisor("jobs").define("cart") { context in Cart(context: context) }   // on every node
    let jobs = try await DistributedSupervisor.start("jobs")
    try await jobs.startChild("cart:7", start: "cart", restart: .transient)
    print(jobs.whichChildren().map { "\($0.id) on \($0.node)" }, jobs.countChildren().active)
    try await jobs.terminateChild("cart:7")                        // wherever it runs
}

// README: "Clusters that form themselves".
func readmeCluster() async throws {
    struct NodesFile: ClusterStrategy {
        var path: String
        func run(_ cluster: ClusterStrategyContext) async throws {
            while true {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                cluster.listed(text.split(separator: "\n").map(String.init))
                try await Task.sleep(for: .seconds(5))
            }
        }
    }

    var config = Distribution.Configuration(name: "app@10.1.0.95", cookie: "secret")
    config.hidden = false                                   // Erlang nodes mesh with it through global
    try await Distribution.start(config)
    var k8s = ClusterTopology(name: "k8s", strategy: KubernetesDNSStrategy(service: "myapp-headless", applicationName: "app"))
    k8s.disconnect = .afterGrace(.seconds(30))
    let cluster = try Cluster.start([k8s, ClusterTopology(name: "file", strategy: NodesFile(path: "/etc/nodes"))])
    _ = cluster
}

// README: "Failure detection and cluster events".
func readmeClusterEvents(me: Process) async throws {
    for await event in Distribution.clusterEvents() {
        switch event {
        case .nodeUp(let node): print("up", node)
        case .suspect(let node, let silent): print(node, "silent for", silent)
        case .reachable(let node): print(node, "answers again")
        case .nodeDown(let node, let reason): print("down", node, reason)   // .unresponsive(silentFor:), .connectionClosed, .netTickTimeout, ...
        }
    }

    Distribution.monitorNodes(me.pid, options: [.nodedownReason, .suspicion])
    // {nodesuspect,'b@10.0.0.2',[{silent_ms,601}]}
    // {nodedown,'b@10.0.0.2',[{nodedown_reason,{failure_detector,1503}}]}
}
