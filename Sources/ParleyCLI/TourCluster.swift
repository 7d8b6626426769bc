import Foundation
import Parley
import ParleyDistribution
import ParleyOTP

// Chapter 12: a cluster with :global. Two visible Parley nodes in this OS process join two
// Erlang nodes (when erl is installed) through one connection each: global meshes them,
// global:sync() returns on the Erlang nodes, and names registered on either side are found
// and called from the other. Everything runs on an EPMD of its own on a free port.

@Sendable func clusterChapter(_ me: Process) async throws {
    let cookie = "tourglobal-\(UInt32.random(in: 0...UInt32.max))"
    let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
    var erlangNodes: [TourNode] = []
    var parleyNodes: [LocalNode] = []
    defer {
        for e in erlangNodes { e.kill() }
        let nodes = parleyNodes
        Task {
            for n in nodes { await n.stopDistribution() }
            await epmd.stop()
        }
    }
    func parley(_ alive: String) async throws -> LocalNode {
        let node = try LocalNode(name: "\(alive)_\(getpid())@127.0.0.1")
        var c = Distribution.Configuration(name: node.name, cookie: cookie)
        c.hidden = false
        c.epmdPort = epmd.boundPort
        c.embeddedEPMD = false
        c.logger.logLevel = .critical
        try await node.startDistribution(c)
        parleyNodes.append(node)
        return node
    }
    let a = try await parley("tour_a"), b = try await parley("tour_b")
    print("  two visible Parley nodes in this OS process (Configuration.hidden = false): \(a.name), \(b.name); EPMD on port \(epmd.boundPort)")

    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/erl") else {
        try await b.connect(a.name)
        try await Global.sync(on: b)
        let jobs = try TourJobs().start(options: GenServerOptions(node: a)).pid!
        _ = try await Global.register("tour_jobs", jobs, on: a)
        print("  Global.register(\"tour_jobs\", pid) on \(a.name)  ->  Global.whereis(\"tour_jobs\") on \(b.name) = \(Global.whereis("tour_jobs", on: b).map { "\($0)" } ?? "nil")")
        print("  (erl is not installed: the Erlang part of this chapter is skipped)")
        return
    }
    func erl(_ alive: String, _ eval: String) throws -> String {
        let name = "\(alive)_\(getpid())@127.0.0.1"
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/erl")
        p.arguments = ["-name", name, "-setcookie", cookie, "-noshell", "-start_epmd", "false", "-eval", eval]
        p.environment = ProcessInfo.processInfo.environment.merging(["ERL_EPMD_PORT": String(epmd.boundPort)]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        erlangNodes.append(TourNode(p))
        return name
    }
    let e1 = try erl("tour_e1", "ok")
    let e2 = try erl("tour_e2", """
        true = net_kernel:connect_node('tour_e1_\(getpid())@127.0.0.1'), \
        P = spawn(fun L() -> receive {From, M} -> From ! {echoed, M}, L() end end), \
        yes = global:register_name(erl_echo, P)
        """)
    // e2 connects to e1 and registers erl_echo; wait until global shows it from e2's side.
    var ready = false
    for _ in 0..<300 where !ready {
        if await a.ping(e2) {
            ready = (try? await rpc(a, e2, "global", "whereis_name", [.atom("erl_echo")]))?.pidValue != nil
        }
        if !ready { try await me.sleep(for: .milliseconds(100)) }
    }
    guard ready else { print("  the Erlang nodes did not come up"); return }
    print("  erl -name \(e1), erl -name \(e2): connected to each other; e2 ran global:register_name(erl_echo, Pid)")

    // One connection each: a to e2, b to a. global's connect_all does the rest.
    let t0 = ContinuousClock.now
    try await a.connect(e2)
    try await b.connect(a.name)
    let everyone = Set([a.name, b.name, e1, e2])
    var meshed = false
    while !meshed, ContinuousClock.now - t0 < .seconds(20) {
        let onE1 = (try? await rpc(a, e1, "erlang", "nodes", []))?.listElements?.compactMap(\.atomName) ?? []
        meshed = Set(onE1) == everyone.subtracting([e1]) && Set(b.connectedNodes) == everyone.subtracting([b.name])
        if !meshed { try await me.sleep(for: .milliseconds(20)) }
    }
    let meshTime = ContinuousClock.now - t0
    print("  a.connect(e2); b.connect(a)  ->  a full mesh of 4 nodes after \(meshTime.formatted(.units(allowed: [.milliseconds])))")
    print("    nodes() on \(e1): \((try? await rpc(a, e1, "erlang", "nodes", [])).map { "\($0)" } ?? "?")")
    let t1 = ContinuousClock.now
    let synced = try await rpc(a, e1, "global", "sync", [])
    print("  global:sync() on \(e1)  ->  \(synced) in \((ContinuousClock.now - t1).formatted(.units(allowed: [.milliseconds])))   (beside a visible node that ignores global it never returns)")
    try await Global.sync(on: b)

    // Erlang registered; Parley finds it and sends.
    let echo = Global.whereis("erl_echo", on: b)
    let echoed = try await b.run { me -> Term in
        try Global.send(Term.tuple([.pid(me.pid), .atom("hi")]), to: "erl_echo", on: me.node)
        return try await me.receive(Term.self)
    }
    print("  Global.whereis(\"erl_echo\") on \(b.name) = \(echo.map { "\($0)" } ?? "nil"); Global.send({self(), hi})  ->  \(echoed)")

    // Parley registers a GenServer; Erlang calls it by its global name.
    let jobs = try TourJobs().start(options: GenServerOptions(node: b)).pid!
    let t2 = ContinuousClock.now
    let ok = try await Global.register("tour_jobs", jobs, on: b)
    print("  Global.register(\"tour_jobs\", pid) on \(b.name)  ->  \(ok) in \((ContinuousClock.now - t2).formatted(.units(allowed: [.milliseconds]))) (locks every node, then registers on each)")
    let called = try await rpc(a, e1, "gen_server", "call", [.tuple([.atom("global"), .atom("tour_jobs")]), .tuple([.atom("add"), 3])])
    print("  on \(e1): gen_server:call({global, tour_jobs}, {add, 3})  ->  \(called)")
    Process.exit(jobs, .kill)
    var gone = false
    for _ in 0..<100 where !gone {
        gone = (try? await rpc(a, e1, "global", "whereis_name", [.atom("tour_jobs")])) == .atom(.undefined)
        if !gone { try await me.sleep(for: .milliseconds(20)) }
    }
    print("  Process.exit(pid, :kill)  ->  global:whereis_name(tour_jobs) on \(e1): \(gone ? "undefined" : "still there")")
}

private func rpc(_ via: LocalNode, _ node: String, _ m: String, _ f: String, _ args: [Term]) async throws -> Term {
    try await via.run { me in
        let call = Term.tuple([.atom("call"), .atom(Atom(m)), .atom(Atom(f)), .list(args), .pid(me.pid)])
        return try await Gen.call("rex", on: Node.named(node), call, timeout: .seconds(10)) as? Term ?? .nil
    }
}

/// The server this chapter registers globally: `{add, N}` returns the new total.
private struct TourJobs: GenServer, Sendable {
    var total = 0
    typealias Call = Term
    typealias Reply = Term
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if case .tuple(let t) = request, t.count == 2, t[0] == .atom("add"), let n = t[1].intValue { total += n }
        return .reply(.integer(total))
    }
}
