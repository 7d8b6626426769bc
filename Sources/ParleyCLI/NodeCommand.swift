import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Parley
import ParleyCluster
import ParleyDistribution
import ParleyServiceLifecycle
import ParleyOTP
import ParleyObserver

/// `parley node`: a distributed node to talk to from iex or erl.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Start a distributed node running a registered `echo` process and a `counter` GenServer.",
        discussion: """
        From iex (same cookie, long names on both sides or short names on both sides):
          iex --name a@127.0.0.1 --cookie secret
          iex> Node.ping(:"parley@127.0.0.1")                      # :pong
          iex> send({:echo, :"parley@127.0.0.1"}, {self(), :hi}); flush()
          iex> GenServer.call({:counter, :"parley@127.0.0.1"}, {:add, 5})
        """)

    @Option(help: "Node name: name@host (long) or name (short, this host). ${VAR} and $VAR are taken from the environment, as in 'app@${POD_IP}'.")
    var name: String = "parley@127.0.0.1"

    @Option(help: "The cookie shared by the cluster.")
    var cookie: String

    @Flag(help: "Start as a normal (visible) node instead of a hidden one.")
    var visible = false

    @Option(help: "Port for distribution connections (0: any free port).")
    var port = 0

    @Option(help: "EPMD port (default: ERL_EPMD_PORT or 4369). An embedded EPMD starts when none runs.")
    var epmdPort: Int?

    @Option(help: "Address the embedded EPMD listens on (default 0.0.0.0: every interface, as Erlang's epmd; 127.0.0.1: this machine only).")
    var epmdAddress = "0.0.0.0"

    @Option(help: "Net tick time in seconds (net_ticktime).")
    var tickTime = 60

    @Option(help: "Failure detector between Parley nodes: how long a peer may stay silent before it is disconnected (1.5s by default; suspect after 40% of it; 'off': probe nobody, the net tick alone decides).")
    var failureDetection = "1.5s"

    @Flag(help: "Print cluster events as they happen: nodeup, suspect, reachable, nodedown with its reason.")
    var events = false

    @Option(help: "Nodes to connect to at start (repeatable).")
    var connect: [String] = []

    @Option(help: "Exit after this many seconds (default: run until killed).")
    var exitAfter: Int?

    @Option(help: "TLS: this node's certificate chain (PEM). Distribution then runs over TLS, as inet_tls_dist. Needs a build with the TLS trait (swift run -c release --traits TLS parley node ...).")
    var tlsCert: String?

    @Option(help: "TLS: this node's private key (PEM).")
    var tlsKey: String?

    @Option(help: "TLS: the CA certificates (PEM) peers' certificates must chain to; without it any certificate is accepted.")
    var tlsCA: String?

    @Option(help: "Processes a connection's I/O thread runs itself after each read, as a BEAM scheduler runs what its poll wakes (0: hand them all to the scheduler threads).")
    var runWoken = 64

    @Option(help: "Microseconds to keep a CPU awake after each read and write, as the BEAM's schedulers busy-wait (+sbwt); 0: never.")
    var busyWait = 500

    @Option(help: "Distribution buffer busy limit in KiB, as Erlang's +zdbbl: a sender to a node with this much queued is held until it drains to half; 0: never.")
    var busyLimit = 1024

    @Flag(inversion: .prefixedNo, help: "Start an observer agent (parley_observer), so that an observer on a connected node can show this node's pages (read-only unless --observer-actions).")
    var observerAgent = true

    @Flag(help: "Let observers on connected nodes kill, send to and trace this node's processes.")
    var observerActions = false

    @Option(help: "A cluster topology (repeatable; makes the node visible): epmd:a@h1,b@h2 | local-epmd | erlang-hosts | dns:QUERY | kubernetes-dns:SERVICE | kubernetes-dns-srv:SERVICE.NAMESPACE | gossip[:SECRET].")
    var cluster: [String] = []

    @Option(help: "Node basename for the DNS topologies (basename@ip); default: this node's name before '@'.")
    var basename: String?

    @Option(help: "How often DNS and EPMD topologies look again (5s, 500ms, 1m).")
    var polling = "5s"

    @Option(help: "How long a node that left a topology's list stays connected before it is disconnected (30s; 'never': until its connection dies; 0: at once, as libcluster).")
    var disconnectGrace = "30s"

    @Option(help: "Gossip: the UDP port.")
    var gossipPort = 45892

    @Option(help: "Gossip: the multicast group, or the broadcast address with --gossip-broadcast-only (127.255.255.255 on a loopback-only host).")
    var gossipAddress = "233.252.1.32"

    @Flag(help: "Gossip: broadcast to --gossip-address instead of multicast (libcluster's broadcast_only).")
    var gossipBroadcastOnly = false

    @Flag(help: "Check the options (the name with its variables, each --cluster spec) and print what would start, without starting a node.")
    var dryRun = false

    @Option(help: "Run a distributed registry of this name, with the demo worker kind 'counter' (calls: bump, get, node); SIGTERM then hands its names to the other members before the node exits.")
    var registry: String?

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if runWoken < 0 { throw ValidationError("--run-woken is a count of processes, 0 or more") }
        if busyWait < 0 { throw ValidationError("--busy-wait is microseconds, 0 or more") }
        if busyLimit < 0 || busyLimit > 2_097_151 { throw ValidationError("--busy-limit is KiB, 0 (never busy) to 2097151, as +zdbbl") }
    }

    func run() async throws {
        try runtime.apply()
        let name = try ClusterSpec.expand(self.name)
        var options = ClusterSpec.Options()
        options.basename = basename
        options.polling = try ClusterSpec.duration(polling)
        options.gossipPort = gossipPort
        options.gossipAddress = gossipAddress
        options.gossipBroadcastOnly = gossipBroadcastOnly
        options.epmdPort = epmdPort
        switch disconnectGrace {
        case "never": options.disconnect = .never
        case let g:
            let d = try ClusterSpec.duration(g)
            options.disconnect = d == .zero ? .immediately : .afterGrace(d)
        }
        let topologies = try cluster.map { spec in try ClusterSpec.topology(spec, nodeName: name, options: options) }
        if dryRun {
            print("node \(name)\(topologies.isEmpty ? (visible ? ", visible" : ", hidden") : ", visible"), topologies: \(topologies.map { "\($0.name) (\(type(of: $0.strategy)))" }.joined(separator: ", "))")
            return
        }
        var config = Distribution.Configuration(name: name, cookie: cookie)
        config.runWokenOnIOThread = runWoken
        config.busyWait = busyWait > 0 ? .microseconds(busyWait) : nil
        config.bufferBusyLimit = busyLimit > 0 ? busyLimit << 10 : nil
        // A cluster topology makes the node visible: Erlang nodes mesh with it through global.
        config.hidden = !visible && topologies.isEmpty
        config.port = port
        config.epmdPort = epmdPort
        config.embeddedEPMDAddress = epmdAddress
        config.tickTime = .seconds(tickTime)
        config.failureDetection = try Self.failureDetection(failureDetection)
        if let tlsCert, let tlsKey {
            config.tls = Distribution.TLS(certificateChainFile: tlsCert, privateKeyFile: tlsKey, trustRootsFile: tlsCA)
        } else if tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        let full = try await Distribution.start(config)
        if events {
            let stream = Distribution.clusterEvents()
            Task {
                for await event in stream {
                    print(event)
                    fflush(nil)
                }
            }
        }
        try NodeServices.start()
        if observerAgent { try Observer(.init(port: 0, allowActions: observerActions)).startAgent() }
        for peer in connect {
            try await Distribution.connect(peer)
            print("connected to \(peer): Node.ping -> \(await Distribution.ping(peer) ? "pong" : "pang")")
            fflush(nil)
        }
        if !topologies.isEmpty {
            _ = try Cluster.start(topologies)
            print("cluster topologies: \(topologies.map(\.name).joined(separator: ", ")) (a visible node)")
        }
        if let registry {
            // The registry runs as a service: SIGTERM (or SIGINT) hands every name off, then
            // the node stops. (A parent that started this process from a Swift task passed
            // SIGTERM blocked: unblock it.)
            var terms = sigset_t()
            sigemptyset(&terms)
            sigaddset(&terms, SIGTERM)
            sigaddset(&terms, SIGINT)
            pthread_sigmask(SIG_UNBLOCK, &terms, nil)
            RegistryCounter.define(in: registry)
            let service = DistributedRegistryService(registry)
            let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint],
                                     logger: Logger(label: "parley.node"))
            Task {
                _ = try? await service.started()
                print("node \(full) ready on port \(Distribution.port ?? 0): registered \(Process.registered().joined(separator: ", "))")
                fflush(nil)
            }
            try await group.run()
            print("registry \(registry): every name handed off")
            fflush(nil)
            await Distribution.stop()
            return
        }
        print("node \(full) ready on port \(Distribution.port ?? 0): registered \(Process.registered().joined(separator: ", "))")
        fflush(nil)
        if let exitAfter {
            try await Task.sleep(for: .seconds(exitAfter))
            await Distribution.stop()
            return
        }
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

extension NodeCommand {
    /// `--failure-detection`: `off`, or the silence after which a peer is down; the other
    /// timings keep their proportions to the default (probe every 1/15 of it, ask others
    /// after 4/15, suspect after 6/15).
    static func failureDetection(_ text: String) throws -> Distribution.FailureDetection? {
        if text == "off" { return nil }
        let down = try ClusterSpec.duration(text)
        guard down >= .milliseconds(150) else { throw ValidationError("--failure-detection is 'off' or a duration of 150ms or more") }
        var d = Distribution.FailureDetection()
        d.downAfter = down
        d.probeInterval = down / 15
        d.indirectAfter = down * 4 / 15
        d.suspectAfter = down * 6 / 15
        return d
    }
}

/// What `parley node` runs: `echo`, `counter`, and spawnables for the remote workloads.
enum NodeServices {
    static func start() throws {
        // echo: on {From, Term} it sends Term back to From.
        try Process.spawn(SpawnOptions(name: "echo"), state: ()) { _, message, me in
            if let t = message as? Term, case .tuple(let items) = t, items.count == 2, case .pid(let from) = items[0] {
                me.send(items[1], to: from)
            }
            return .continue
        }
        _ = try DemoCounter().start(name: .local("counter"))
        Distribution.register(spawnable: "pong") { me, _ in
            // remote-pp's other end: {From, V} -> From ! V.
            while true {
                let m = try await me.receive(Term.self)
                if case .tuple(let items) = m, items.count == 2, case .pid(let from) = items[0] {
                    me.send(items[1], to: from)
                } else if m == .atom("stop") {
                    return
                }
            }
        }
        Distribution.register(spawnable: "pong-callback", initial: { _ in () }) { _, message, me in
            // The same as pong, as a callback process.
            if let t = message as? Term, case .tuple(let items) = t, items.count == 2, let from = items[0].pidValue {
                me.send(items[1], to: from)
                return .continue
            }
            return message as? Term == .atom("stop") ? .stop(.normal) : .continue
        }
        Distribution.register(spawnable: "forward") { me, args in
            // Forwards everything it receives to the pid in args.
            guard case .pid(let to) = args else { return }
            while true { me.send(try await me.receive(), to: to) }
        }
        ClusterWorkloads.registerSpawnables()
        Distribution.register(spawnable: "sink") { me, args in
            // remote-tput's receiving end: counts N {msg, _} messages, then sends done.
            guard case .tuple(let a) = args, a.count == 2, case .integer(let n) = a[0], case .pid(let from) = a[1] else { return }
            for _ in 0..<n { _ = try await me.receive(Term.self) }
            me.send(Term.atom("done"), to: from)
        }
    }
}

/// The `counter` GenServer: calls `get` and `{add, N}` return the current value; cast
/// `reset` sets it to 0. Requests are terms, so Erlang and Elixir can call it.
struct DemoCounter: GenServer, Sendable {
    var value = 0
    typealias Call = Term
    typealias Reply = Term
    typealias Cast = Term

    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .atom("get"):
            return .reply(.integer(value))
        case .tuple(let t) where t.count == 2 && t[0] == .atom("add") && t[1].intValue != nil:
            value += t[1].intValue!
            return .reply(.integer(value))
        default:
            return .reply(.tuple([.atom(.error), .atom("unknown_call")]))
        }
    }

    mutating func handleCast(_ request: Term, _ me: CallbackProcess) -> HandleResult {
        if request == .atom("reset") { value = 0 }
        return .noreply
    }
}
