// The node the distribution tests start as separate OS processes: a Parley node with the
// fixtures those tests talk to, and nothing from the `parley` command.
//
//   ParleyTestNode --name N --cookie C [--tick-time S] [--connect NODE [--exit-after S]]
//                  [--tls-cert F --tls-key F [--tls-ca F]] [--global-executor yes]
//                  [--epmd-port P] [--events yes] [--clash NAME] [--cluster SPEC [--basename B] [--polling D] [--disconnect-grace D]
//                   [--gossip-port P] [--gossip-address A] [--gossip-broadcast-only yes]]
//
// With --cluster (ClusterSpec's text, as `parley node --cluster`), the node is visible and
// runs that topology. With --cluster or --events yes it prints `nodeup: N`, `suspect: N`,
// `reachable: N` and `nodedown: N` lines (and `nodedown-reason: N REASON`) as connections
// come and go and the failure detector decides.
//
// With --registry NAME it runs a DistributedRegistry of that name (after --connect and
// --cluster), with the worker kind `tally` (calls: `bump` adds one and checkpoints, `get`),
// as a service: SIGTERM hands its names off, prints `registry handed off` and exits.
// `--connect` takes several nodes, comma-separated. With --scenario DIR too, it has the
// worker kind `gcount` and runs the commands the registry scenarios leave in DIR
// (Scenario.swift).
//
// Fixtures: a registered `echo` ({From, Term} sends Term back to From), a `counter` GenServer
// (`get`, `{add, N}`; cast `reset`), and the spawnables `pong` (answers {From, Term} with
// Term) and `forward` (sends everything it gets to the pid it was spawned with).
import Foundation
import ParleyCluster
import ParleyDistribution
import ParleyOTP
import ParleyServiceLifecycle

struct Counter: GenServer, Sendable {
    var value = 0
    typealias Call = Term
    typealias Reply = Term
    typealias Cast = Term
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if case .tuple(let t) = request, t.count == 2, t[0] == .atom("add"), let n = t[1].intValue { value += n }
        return .reply(.integer(value))
    }
    mutating func handleCast(_ request: Term, _ me: CallbackProcess) -> HandleResult {
        if request == .atom("reset") { value = 0 }
        return .noreply
    }
}

/// The registry tests' worker: counts bumps, checkpoints each, hands its count over.
struct TestTally: HandoffServer {
    typealias Call = Term
    typealias Reply = Term
    typealias HandoffState = Int
    let context: WorkerContext
    var count = 0
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        if request == .atom("bump") {
            count += 1
            try context.checkpoint(count, me)
        }
        return .reply(.integer(count))
    }
    func beginHandoff(_ me: CallbackProcess) -> Handoff<Int> { .resume(count) }
    mutating func endHandoff(_ state: Int, _ me: CallbackProcess) { count = state }
    mutating func resolveConflict(_ other: Int, _ me: CallbackProcess) { count = max(count, other) }
}

/// `{From, Term}` → `Term` to `From`.
func echoed(_ message: any Sendable) -> (to: Pid, term: Term)? {
    guard let t = message as? Term, case .tuple(let items) = t, items.count == 2, let from = items[0].pidValue else { return nil }
    return (from, items[1])
}

/// `--clash NAME` (a visible node): once this node has had visible peers and then has none
/// (it is cut off), it registers NAME in global for a process of its own, as the minority
/// side of a partition would; it prints `registered NAME: true|false`, then
/// `global NAME: NODE` whenever the name's holder changes, and `holder of NAME exited: R`
/// if its process dies (killed by global's resolver after the heal).
func clash(_ name: String) throws {
    Process.spawn { me in
        var hadPeers = false, registered = false, last = ""
        while true {
            let peers = LocalNode.default.peers.filter { !$0.isHidden }.count
            if peers > 0 { hadPeers = true }
            if hadPeers, peers == 0, !registered {
                registered = true
                let holder = me.spawn { p in _ = try await p.receive(String.self) }
                let watcher = me.spawn { w in
                    _ = w.monitor(holder)
                    let down = try await w.receive(DownMessage.self)
                    print("holder of \(name) exited: \(down.reason)")
                    fflush(nil)
                }
                _ = watcher
                let ok = try await Global.register(name, holder)
                print("registered \(name): \(ok)")
                fflush(nil)
            }
            let now = Global.whereis(name).map { $0.node?.name ?? Distribution.nodeName } ?? "undefined"
            if now != last {
                print("global \(name): \(now)")
                fflush(nil)
                last = now
            }
            try await me.sleep(for: .milliseconds(50))
        }
    }
}

var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst()
while let key = arguments.popFirst() {
    guard key.hasPrefix("--"), let value = arguments.popFirst() else {
        FileHandle.standardError.write(Data("usage: ParleyTestNode --name N --cookie C [--option value ...]\n".utf8))
        exit(64)
    }
    options[String(key.dropFirst(2))] = value
}
guard let name = options["name"], let cookie = options["cookie"] else {
    FileHandle.standardError.write(Data("ParleyTestNode: --name and --cookie are required\n".utf8))
    exit(64)
}
// Parley's schedulers as Swift's global executor (the opt-in of issue 15): every fixture
// then runs with no task-executor preference, and NIO's threads resume them through the hook.
if options["global-executor"] == "yes" {
    guard Scheduler.unsafeTryInstallAsGlobalExecutor() else {
        FileHandle.standardError.write(Data("ParleyTestNode: the global executor hook is not available\n".utf8))
        exit(70)
    }
    print("global executor: Parley's schedulers")
}
if options["exit-on-eof"] == "yes" {
    // The test process holds our standard input: at its end of file (it exited, or died),
    // so do we.
    Thread.detachNewThread {
        while FileHandle.standardInput.availableData.count > 0 {}
        exit(0)
    }
}
var config = Distribution.Configuration(name: name, cookie: cookie)
config.tickTime = .seconds(Int(options["tick-time"] ?? "60") ?? 60)
config.epmdPort = options["epmd-port"].flatMap(Int.init)
if let cert = options["tls-cert"], let key = options["tls-key"] {
    config.tls = Distribution.TLS(certificateChainFile: cert, privateKeyFile: key, trustRootsFile: options["tls-ca"])
}
do {
    var topologies: [ClusterTopology] = []
    if let spec = options["cluster"] {
        var o = ClusterSpec.Options()
        o.basename = options["basename"]
        if let p = options["polling"] { o.polling = try ClusterSpec.duration(p) }
        if let g = options["disconnect-grace"] { o.disconnect = g == "never" ? .never : .afterGrace(try ClusterSpec.duration(g)) }
        if let p = options["gossip-port"].flatMap(Int.init) { o.gossipPort = p }
        if let a = options["gossip-address"] { o.gossipAddress = a }
        o.gossipBroadcastOnly = options["gossip-broadcast-only"] == "yes"
        topologies.append(try ClusterSpec.topology(spec, nodeName: name, options: o))
        config.hidden = false
    }
    let full = try await Distribution.start(config)
    if !topologies.isEmpty || options["events"] == "yes" {
        // Every connection event, as a line: `nodeup: N`, `suspect: N`, `reachable: N`,
        // `nodedown: N`, then `nodedown-reason: N REASON`.
        let events = Distribution.clusterEvents()
        Task {
            for await event in events {
                switch event {
                case .nodeUp(let n): print("nodeup: \(n)")
                case .suspect(let n, _): print("suspect: \(n)")
                case .reachable(let n): print("reachable: \(n)")
                case .nodeDown(let n, let reason): print("nodedown: \(n)\nnodedown-reason: \(n) \(reason)")
                }
                fflush(nil)
            }
        }
    }
    if !topologies.isEmpty { _ = try Cluster.start(topologies) }
    if let name = options["clash"] { try clash(name) }
    if let spec = options["pg"], let colon = spec.firstIndex(of: ":") {
        // `--pg SCOPE:GROUP`: a pg scope, a member `pg_member` in GROUP (it sends whatever it
        // gets to the sender of `{From, Term}`), and `pg_members`, which answers
        // `{From, Group}` with the group's members as this node sees them.
        let pg = try ProcessGroups.start(scope: String(spec[..<colon]))
        let group = Term.atom(Atom(String(spec[spec.index(after: colon)...])))
        let member = try Process.spawn(SpawnOptions(name: "pg_member"), state: ()) { _, message, me in
            if let (to, term) = echoed(message) { me.send(term, to: to) }
            return .continue
        }
        try await pg.join(group, member)
        try Process.spawn(SpawnOptions(name: "pg_members"), state: ()) { _, message, me in
            if let (to, term) = echoed(message) { me.send(Term.list(pg.members(term).map { .pid($0) }), to: to) }
            return .continue
        }
        print("pg member: \(member)")
    }
    try Process.spawn(SpawnOptions(name: "echo"), state: ()) { _, message, me in
        if let (to, term) = echoed(message) { me.send(term, to: to) }
        return .continue
    }
    _ = try Counter().start(name: .local("counter"))
    Distribution.register(spawnable: "pong") { me, _ in
        while true {
            if let (to, term) = echoed(try await me.receive(Term.self)) { me.send(term, to: to) }
        }
    }
    Distribution.register(spawnable: "forward") { me, args in
        guard case .pid(let to) = args else { return }
        while true { me.send(try await me.receive(), to: to) }
    }
    print("node \(full) ready on port \(Distribution.port ?? 0)")
    fflush(nil)
    if let peers = options["connect"] {
        for peer in peers.split(separator: ",").map(String.init) {
            try await Distribution.connect(peer)
            print("connected to \(peer): Node.ping -> \(await Distribution.ping(peer) ? "pong" : "pang")")
            fflush(nil)
        }
    }
    if let registry = options["registry"] {
        // SIGTERM reaches this process even if its parent started it with the signal blocked.
        var terms = sigset_t()
        sigemptyset(&terms)
        sigaddset(&terms, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &terms, nil)
        DistributedRegistry(registry).define("tally") { TestTally(context: $0) }
        DistributedRegistry(registry).define("gcount") { GCount(context: $0) }
        if options["scenario"] != nil { try startExitTracker() }
        let service = DistributedRegistryService(registry)
        Task {
            try await ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm], logger: Logger(label: "parley.node")).run()
            print("registry handed off")
            fflush(nil)
            exit(0)
        }
        _ = try await service.started()
        if let directory = options["scenario"] { runScenarioCommands(directory: directory, registry: DistributedRegistry(registry)) }
        print("registry \(registry) ready")
        fflush(nil)
    }
    if let seconds = options["exit-after"].flatMap(Int.init) {
        try await Task.sleep(for: .seconds(seconds))
        await Distribution.stop()
        exit(0)
    }
    while true { try await Task.sleep(for: .seconds(3600)) }
} catch {
    FileHandle.standardError.write(Data("ParleyTestNode: \(error)\n".utf8))
    exit(1)
}
