import Foundation
import Parley
import ParleyCluster
import ParleyDistribution
import ParleyOTP

// Chapter 12: a cluster that forms itself. Three `parley node` OS processes on loopback
// addresses 127.0.0.2-4 and a node in this OS process find each other by libcluster's gossip
// (broadcast to 127.255.255.255: loopback has no multicast), as visible nodes; an Erlang
// node (when erl is installed) connects to one of them and global meshes it with all; names
// registered on either side are found and called from the other. One node is SIGSTOPped on
// the way: the failure detector says suspect, then down, in under two seconds. Everything runs on an
// EPMD of its own on a free port.

@Sendable func clusterChapter(_ me: Process) async throws {
    let cookie = "tourcluster-\(UInt32.random(in: 0...UInt32.max))"
    // One EPMD for every loopback address (as a host's epmd listens on all of them): a node
    // named tour_g2@127.0.0.2 is looked up at 127.0.0.2. Its port is this tour's own.
    let epmd = try await EmbeddedEPMD.start(port: 0, host: "0.0.0.0")
    let gossipPort = Int.random(in: 46_000...48_000)
    var children: [TourNode] = []
    let here = try LocalNode(name: "tour_a_\(getpid())@127.0.0.1")
    var handle: ClusterHandle? = nil
    defer {
        handle?.stop()
        for c in children { c.kill() }
        Task {
            await here.stopDistribution()
            await epmd.stop()
        }
    }
    var config = Distribution.Configuration(name: here.name, cookie: cookie)
    config.hidden = false
    config.epmdPort = epmd.boundPort
    config.embeddedEPMD = false
    config.logger.logLevel = ProcessInfo.processInfo.environment["PARLEY_TOUR_LOG"] == nil ? .critical : .info
    try await here.startDistribution(config)

    // Node events as this node sees them, with the time since the gossip started.
    let t0 = ContinuousClock.now
    let events = Locked<[String]>([])
    let watcher = try here.spawn(SpawnOptions()) { w in
        while true {
            let t = try await w.receive(Term.self)
            if case .tuple(let e) = t, e.count == 2, let kind = e[0].atomName, let node = e[1].atomName {
                let ms = (ContinuousClock.now - t0).components
                events.withLock { $0.append(String(format: "    +%5d ms  %@ %@", Int(ms.seconds * 1000 + ms.attoseconds / 1_000_000_000_000_000), kind, node)) }
            }
        }
    }
    defer { Process.exit(watcher, .kill) }
    here.monitorNodes(watcher)

    let peers = (2...4).map { "tour_g\($0)_\(getpid())@127.0.0.\($0)" }
    for name in peers {
        children.append(try TourNode.launch(CommandLine.arguments[0], [
            "node", "--name", name, "--cookie", cookie, "--epmd-port", String(epmd.boundPort), "--no-observer-agent",
            "--cluster", "gossip", "--gossip-port", String(gossipPort), "--gossip-address", "127.255.255.255", "--gossip-broadcast-only",
        ]))
    }
    var gossip = ClusterTopology(name: "gossip", strategy: GossipStrategy(port: gossipPort, address: "127.255.255.255", broadcastOnly: true))
    gossip.disconnect = .never
    handle = try Cluster.start([gossip], on: here)
    print("  parley node --cluster gossip --gossip-address 127.255.255.255 --gossip-broadcast-only: three OS processes on 127.0.0.2-4,")
    print("  and \(here.name) here with GossipStrategy (heartbeats every 1-5000 ms, libcluster's wire format, UDP port \(gossipPort))")
    var meshed = false
    while !meshed, ContinuousClock.now - t0 < .seconds(30) {
        meshed = Set(here.connectedNodes).isSuperset(of: peers)
        if meshed, let info = try? await Global.info(on: here) { meshed = Set(info.known).isSuperset(of: peers) }
        if !meshed { try await me.sleep(for: .milliseconds(20)) }
    }
    for line in events.withLock({ $0 }) { print(line) }
    guard meshed else { print("  the nodes did not find each other within 30 s"); return }
    print("  a full mesh of 4 Parley nodes after \((ContinuousClock.now - t0).formatted(.units(allowed: [.milliseconds]))): each heard the others' heartbeats or was meshed by global")
    try await Global.sync(on: here)
    try await stopOne(me, here: here, peers: peers, children: children)

    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/erl") else {
        print("  (erl is not installed: the Erlang part of this chapter is skipped)")
        return
    }
    let e1 = "tour_e1_\(getpid())@127.0.0.1"
    let p = Foundation.Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/erl")
    p.arguments = ["-name", e1, "-setcookie", cookie, "-noshell", "-start_epmd", "false", "-eval", """
        P = spawn(fun L() -> receive {From, M} -> From ! {echoed, M}, L() end end), \
        yes = global:register_name(erl_echo, P), \
        true = net_kernel:connect_node('\(peers[0])')
        """]
    p.environment = ProcessInfo.processInfo.environment.merging(["ERL_EPMD_PORT": String(epmd.boundPort)]) { $1 }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    children.append(TourNode(p))
    let t1 = ContinuousClock.now
    var joined = false
    while !joined, ContinuousClock.now - t1 < .seconds(30) {
        joined = here.connectedNodes.contains(e1) && Global.whereis("erl_echo", on: here) != nil
        if !joined { try await me.sleep(for: .milliseconds(20)) }
    }
    guard joined else { print("  the Erlang node did not join within 30 s"); return }
    print("  erl -name \(e1), which connects only to \(peers[0]): meshed with this node by global after \((ContinuousClock.now - t1).formatted(.units(allowed: [.milliseconds])))")
    let nodesOnE1 = (try? await rpc(here, e1, "erlang", "nodes", []))?.listElements?.compactMap(\.atomName).sorted() ?? []
    print("    nodes() on \(e1): \(nodesOnE1.count) nodes, \(Set(nodesOnE1) == Set(peers + [here.name]) ? "every Parley node" : "\(nodesOnE1)")")
    let t2 = ContinuousClock.now
    let synced = try await rpc(here, e1, "global", "sync", [])
    print("  global:sync() on \(e1)  ->  \(synced) in \((ContinuousClock.now - t2).formatted(.units(allowed: [.milliseconds])))   (beside a visible node that ignores global it never returns)")

    // Erlang registered; Parley finds it and sends.
    let echoed = try await here.run { me -> Term in
        try Global.send(Term.tuple([.pid(me.pid), .atom("hi")]), to: "erl_echo", on: me.node)
        return try await me.receive(Term.self)
    }
    print("  Global.whereis(\"erl_echo\") = \(Global.whereis("erl_echo", on: here).map { "\($0)" } ?? "nil") on \(e1); Global.send({self(), hi})  ->  \(echoed)")

    // Parley registers a GenServer; Erlang calls it by its global name.
    let jobs = try TourCounterServer().start(options: GenServerOptions(node: here)).pid!
    let t3 = ContinuousClock.now
    let ok = try await Global.register("tour_jobs", jobs, on: here)
    print("  Global.register(\"tour_jobs\", pid)  ->  \(ok) in \((ContinuousClock.now - t3).formatted(.units(allowed: [.milliseconds]))) (locks all 5 nodes, then registers on each)")
    let called = try await rpc(here, e1, "gen_server", "call", [.tuple([.atom("global"), .atom("tour_jobs")]), .tuple([.atom("add"), 3])])
    print("  on \(e1): gen_server:call({global, tour_jobs}, {add, 3})  ->  \(called)")
    Process.exit(jobs, .kill)
    var gone = false
    for _ in 0..<100 where !gone {
        gone = (try? await rpc(here, e1, "global", "whereis_name", [.atom("tour_jobs")])) == .atom(.undefined)
        if !gone { try await me.sleep(for: .milliseconds(20)) }
    }
    print("  Process.exit(pid, :kill)  ->  global:whereis_name(tour_jobs) on \(e1): \(gone ? "undefined" : "still there")")
    try await processGroups(me, here: here, e1: e1)
}

/// pg: the same scope on the Erlang node and here; members of one group on both sides, a
/// message to every member, and an exit that leaves.
private func processGroups(_ me: Process, here: LocalNode, e1: String) async throws {
    let lobby = Term.atom("lobby")
    _ = try await rpc(here, e1, "pg", "start", [.atom("tour_pg")])
    let erlMember = try await rpc(here, e1, "erlang", "spawn", [.atom("timer"), .atom("sleep"), .list([.atom("infinity")])])
    _ = try await rpc(here, e1, "pg", "join", [.atom("tour_pg"), lobby, erlMember])
    let pg = try ProcessGroups.start(scope: "tour_pg", on: here)
    defer { pg.stop() }
    let t0 = ContinuousClock.now
    let got = Locked<[Term]>([])
    let mine = try here.spawn(SpawnOptions(label: "tour pg member")) { me in
        while true { let t = try await me.receive(Term.self); got.withLock { $0.append(t) } }
    }
    try await pg.join(lobby, mine)
    var both = false
    while !both, ContinuousClock.now - t0 < .seconds(10) {
        let onErlang = (try? await rpc(here, e1, "pg", "get_members", [.atom("tour_pg"), lobby]))?.listElements?.count ?? 0
        both = pg.members(lobby).count == 2 && onErlang == 2
        if !both { try await me.sleep(for: .milliseconds(10)) }
    }
    print("  pg: ProcessGroups.start(scope: \"tour_pg\") here and pg:start(tour_pg) on \(e1); a member of lobby on each side")
    print("    pg.members(lobby) here: \(pg.members(lobby).map { "\($0)" }.joined(separator: ", "))   (both sides agree after \((ContinuousClock.now - t0).formatted(.units(allowed: [.milliseconds]))))")
    _ = try await rpc(here, e1, "erlang", "send", [.pid(mine), .atom("hello_from_erlang")])
    let t1 = ContinuousClock.now
    while got.withLock({ $0.isEmpty }), ContinuousClock.now - t1 < .seconds(5) { try await me.sleep(for: .milliseconds(5)) }
    print("    on \(e1): erlang:send(P, hello_from_erlang) for our member P of pg:get_members(tour_pg, lobby)  ->  our member got \(got.withLock { $0.first.map { "\($0)" } ?? "nothing" })")
    Process.exit(mine, .kill)
    var left = false
    let t2 = ContinuousClock.now
    while !left, ContinuousClock.now - t2 < .seconds(5) {
        left = (try? await rpc(here, e1, "pg", "get_members", [.atom("tour_pg"), lobby]))?.listElements?.count == 1
        if !left { try await me.sleep(for: .milliseconds(10)) }
    }
    print("    Process.exit(member, :kill)  ->  pg:get_members(tour_pg, lobby) on \(e1) has \(left ? "only its own member" : "ours still") after \((ContinuousClock.now - t2).formatted(.units(allowed: [.milliseconds])))")
    try await pubSub(me, here: here, e1: e1)
}

/// Phoenix.PubSub's wire: on the Erlang node, a process in the adapter's pg group stands in
/// for an Elixir app's worker (its mailbox shows what a broadcast from here sends it); from
/// the Erlang node, a `forward_to_local` to our worker's name reaches our subscriber.
private func pubSub(_ me: Process, here: LocalNode, e1: String) async throws {
    let scope = Term.atom(Atom(PhoenixPubSub.scope)), group = Term.atom("Elixir.Tour.PubSub.Adapter")
    _ = try await rpc(here, e1, "pg", "start", [scope])
    let worker = try await rpc(here, e1, "erlang", "spawn", [.atom("timer"), .atom("sleep"), .list([.atom("infinity")])])
    _ = try await rpc(here, e1, "pg", "join", [scope, group, worker])
    let pubsub = try await PhoenixPubSub.start(name: "Tour.PubSub", on: here)
    defer { pubsub.stop() }
    let got = Locked<[Term]>([])
    let subscriber = try here.spawn(SpawnOptions(label: "tour subscriber")) { me in
        try pubsub.subscribe(me, to: "room:lobby")
        while true { let t = try await me.receive(Term.self); got.withLock { $0.append(t) } }
    }
    _ = subscriber
    let t0 = ContinuousClock.now
    while !pubsub.scopeMembers(of: 0).contains(where: { $0.nodeName == e1 }) || pubsub.subscribers(of: "room:lobby").isEmpty,
          ContinuousClock.now - t0 < .seconds(10) {
        try await me.sleep(for: .milliseconds(10))
    }
    print("  Phoenix.PubSub: PhoenixPubSub.start(name: \"Tour.PubSub\") joins pg scope Elixir.Phoenix.PubSub, group Elixir.Tour.PubSub.Adapter,")
    print("  where a process on \(e1) stands in for an Elixir app's worker")
    pubsub.broadcast(.tuple([.atom("new_msg"), .string("hi from Swift")]), to: "room:lobby")
    var mailbox = Term.nil
    let t1 = ContinuousClock.now
    while ContinuousClock.now - t1 < .seconds(5) {
        mailbox = (try? await rpc(here, e1, "erlang", "process_info", [worker, .atom("messages")])) ?? .nil
        if case .tuple(let t) = mailbox, t.count == 2, t[1].listElements?.isEmpty == false { break }
        try await me.sleep(for: .milliseconds(10))
    }
    print("    pubsub.broadcast({new_msg, \"hi from Swift\"}, to: \"room:lobby\")  ->  its mailbox on \(e1): \(mailbox)")
    let forward = Term.tuple([.atom("forward_to_local"), .string("room:lobby"), .tuple([.atom("from_elixir"), 1]), .atom(Atom(PhoenixPubSub.defaultDispatcher))])
    _ = try await rpc(here, e1, "erlang", "send", [.tuple([group, .atom(Atom(here.name))]), forward])
    let t2 = ContinuousClock.now
    func fromErlang() -> Term? { got.withLock { $0.first { if case .tuple(let t) = $0 { return t.first == .atom("from_elixir") } else { return false } } } }
    while fromErlang() == nil, ContinuousClock.now - t2 < .seconds(5) { try await me.sleep(for: .milliseconds(5)) }
    print("    on \(e1): {'Elixir.Tour.PubSub.Adapter', node} ! {forward_to_local, <<\"room:lobby\">>, {from_elixir, 1}, 'Elixir.Phoenix.PubSub'}")
    print("      ->  our subscriber got \(fromErlang().map { "\($0)" } ?? "nothing")   (Phoenix.PubSub.direct_broadcast's message)")
}

/// The failure detector: SIGSTOP one node (its sockets stay open; Erlang's net tick would
/// take 45-75 s to notice), show suspect and down as this node sees them, then SIGCONT it
/// and wait for the mesh to form again.
private func stopOne(_ me: Process, here: LocalNode, peers: [String], children: [TourNode]) async throws {
    let victim = peers[2], child = children[2]
    let events = here.clusterEvents()
    let seen = Locked<[(Duration, ClusterEvent)]>([])
    let t0 = ContinuousClock.now
    let reader = Task { for await e in events where e.node == victim { seen.withLock { $0.append((ContinuousClock.now - t0, e)) } } }
    defer { reader.cancel() }
    child.signal(SIGSTOP)
    print("  kill -STOP \(victim): its sockets stay open, so only the failure detector can tell (Erlang's net tick: 45-75 s)")
    var down = false
    while !down, ContinuousClock.now - t0 < .seconds(10) {
        down = seen.withLock { $0.contains { if case .nodeDown = $0.1 { return true } else { return false } } }
        if !down { try await me.sleep(for: .milliseconds(10)) }
    }
    child.signal(SIGCONT)
    for (t, e) in seen.withLock({ $0 }) {
        print(String(format: "    +%5d ms  %@", Int(t.components.seconds * 1000 + t.components.attoseconds / 1_000_000_000_000_000), e.description))
    }
    guard down else { print("  not declared down within 10 s"); return }
    let t1 = ContinuousClock.now
    var back = false
    while !back, ContinuousClock.now - t1 < .seconds(30) {
        back = here.connectedNodes.contains(victim)
        if back, let info = try? await Global.info(on: here) { back = info.known.contains(victim) }
        if !back { try await me.sleep(for: .milliseconds(20)) }
    }
    print("  kill -CONT: \(victim) \(back ? "is back in the mesh after \((ContinuousClock.now - t1).formatted(.units(allowed: [.milliseconds])))" : "did not come back within 30 s")")
    if back { try await Global.sync(on: here) }
}

private func rpc(_ via: LocalNode, _ node: String, _ m: String, _ f: String, _ args: [Term]) async throws -> Term {
    try await via.run { me in
        let call = Term.tuple([.atom("call"), .atom(Atom(m)), .atom(Atom(f)), .list(args), .pid(me.pid)])
        return try await Gen.call("rex", on: Node.named(node), call, timeout: .seconds(10)) as? Term ?? .nil
    }
}
