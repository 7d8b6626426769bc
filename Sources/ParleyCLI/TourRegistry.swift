import Foundation
import Logging
import Parley
import ParleyDistribution
import ParleyOTP

// Chapter 13: the seed's Swarm walk-through, on Parley's DistributedRegistry. Four visible
// nodes (two in this OS process, two `parley node --registry` OS processes) run one
// registry; twelve counters are registered by name and spread over them by the ring. One
// OS-process node is SIGKILLed: its counters restart on their new owners, with the counts
// they had checkpointed. Then one node here stops gracefully while calls keep coming: its
// counters move with their state, and no call is lost.

@Sendable func registryChapter(_ me: Process) async throws {
    let cookie = "tourregistry-\(UInt32.random(in: 0...UInt32.max))"
    let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
    let registryName = "tour_workers"
    let pid = getpid()
    let a = try LocalNode(name: "tour_r1_\(pid)@127.0.0.1")
    let b = try LocalNode(name: "tour_r2_\(pid)@127.0.0.1")
    var children: [TourNode] = []
    defer {
        for c in children { c.kill() }
        for n in [a, b] { if let p = n.whereis(registryName) { Process.exit(p, .kill) } }
        Task {
            await a.stopDistribution()
            await b.stopDistribution()
            await epmd.stop()
        }
    }
    for n in [a, b] {
        var config = Distribution.Configuration(name: n.name, cookie: cookie)
        config.hidden = false
        config.epmdPort = epmd.boundPort
        config.embeddedEPMD = false
        config.logger.logLevel = ProcessInfo.processInfo.environment["PARLEY_TOUR_LOG"] == nil ? .critical : .info
        try await n.startDistribution(config)
    }
    _ = await b.ping(a.name)
    let others = (3...4).map { "tour_r\($0)_\(pid)@127.0.0.1" }
    for name in others {
        children.append(try TourNode.launch(CommandLine.arguments[0], [
            "node", "--name", name, "--cookie", cookie, "--epmd-port", String(epmd.boundPort), "--no-observer-agent",
            "--visible", "--connect", a.name, "--registry", registryName,
        ]))
    }
    var logger = Logger(label: "parley.registry")
    logger.logLevel = ProcessInfo.processInfo.environment["PARLEY_TOUR_LOG"] == nil ? .critical : .info
    for n in [a, b] { RegistryCounter.define(in: registryName, on: n) }
    let ra = try await DistributedRegistry.start(registryName, on: a, logger: logger)
    let rb = try await DistributedRegistry.start(registryName, on: b, logger: logger)
    let t0 = ContinuousClock.now
    while ra.members.count < 4 || rb.members.count < 4, ContinuousClock.now - t0 < .seconds(30) {
        try await me.sleep(for: .milliseconds(20))
    }
    guard ra.members.count == 4 else { print("  the four members did not find each other within 30 s (\(ra.members))"); return }
    func short(_ node: String) -> String { String(node.dropFirst("tour_".count).prefix { $0 != "_" }) }
    print("  members: \(ra.members.map(short).joined(separator: ", ")) (two here, \(others.map(short).joined(separator: " and ")) as `parley node --registry \(registryName)`)")

    // Twelve counters, each bumped i times by name from another node.
    let names = (1...12).map { "counter-\($0)" }
    let t1 = ContinuousClock.now
    for n in names { try await ra.registerName(n, start: "counter") }
    let took = ContinuousClock.now - t1
    for (i, n) in names.enumerated() {
        for _ in 0...i { _ = try await rb.call(n, Term.atom("bump")) }
    }
    func placement() -> String {
        let by = Dictionary(grouping: names) { ra.lookup($0)?.nodeName ?? "?" }
        return by.keys.sorted().map { "\(short($0)): \(by[$0]!.count)" }.joined(separator: ", ")
    }
    print("  registerName(\"counter-1\" … \"counter-12\", start: \"counter\") from r1: \(took.formatted(.units(allowed: [.milliseconds]))) for 12, each visible on every node when it returns")
    print("  placed by the ring: \(placement()); counter-i was bumped i times by name from r2")
    // From a process of r2 (a ServerRef calls from its caller's node).
    let via = try await b.run { _ in try? await ServerRef<RegistryCounter>(name: .via(rb, "counter-12")).call(.atom("get")) }
    print("  via naming from r2: ServerRef<RegistryCounter>(name: .via(registry, \"counter-12\")).call(get) = \(via.map { "\($0)" } ?? "no answer") (held on \(short(ra.lookup("counter-12")?.nodeName ?? "?")))")

    // SIGKILL one OS-process node.
    let victim = others[0]
    let onVictim = names.filter { ra.lookup($0)?.nodeName == victim }
    // Its last checkpoints leave it for each name's next owner: wait until they are there.
    let tc = ContinuousClock.now
    while ContinuousClock.now - tc < .seconds(10) {
        var all = true
        for n in onVictim where await ra.lastCheckpoint(of: n) != .integer(names.firstIndex(of: n)! + 1) { all = false }
        if all { break }
        try await me.sleep(for: .milliseconds(1))
    }
    let t2 = ContinuousClock.now
    children[0].signal(SIGKILL)
    var back = false
    while !back, ContinuousClock.now - t2 < .seconds(10) {
        back = onVictim.allSatisfy { n in ra.lookup(n).map { $0.nodeName != victim } ?? false }
        if !back { try await me.sleep(for: .milliseconds(5)) }
    }
    let failover = ContinuousClock.now - t2
    var kept = 0
    for n in onVictim {
        let i = names.firstIndex(of: n)! + 1
        if (try? await ra.call(n, Term.atom("get")) as? Term) == .integer(i) { kept += 1 }
    }
    print("  kill -9 \(short(victim)) (it held \(onVictim.count)): \(back ? "all back on \(Set(onVictim.compactMap { ra.lookup($0).map { short($0.nodeName) } }).sorted().joined(separator: " and ")) after \(failover.formatted(.units(allowed: [.milliseconds])))" : "not back within 10 s"), \(kept) of \(onVictim.count) with the count they had checkpointed")
    print("  placed now: \(placement())")

    // A graceful stop while a caller bumps every counter by name.
    let onB = names.filter { ra.lookup($0)?.nodeName == b.name }
    let caller = Task {
        var answered = 0
        var failures: [String] = []
        for _ in 0..<5 {
            for n in names {
                do {
                    _ = try await ra.call(n, Term.atom("bump"), timeout: .seconds(10))
                    answered += 1
                } catch {
                    failures.append("\(n): \(error)")
                }
            }
        }
        return (answered, failures)
    }
    let t3 = ContinuousClock.now
    await rb.stop()
    let stopped = ContinuousClock.now - t3
    let (answered, failures) = await caller.value
    var total = 0
    for n in names { total += ((try? await ra.call(n, Term.atom("get")) as? Term)?.intValue) ?? 0 }
    print("  r2's registry stops gracefully (it held \(onB.count)): every counter handed over in \(stopped.formatted(.units(allowed: [.milliseconds]))), while r1 made \(answered) of \(names.count * 5) calls by name")
    for f in failures { print("    a call failed: \(f)") }
    print("  placed now: \(placement()); the counts add up to \(total) (78 bumps before, \(names.count * 5) during: \(total == 78 + names.count * 5 ? "nothing lost" : "\(78 + names.count * 5 - total) lost"))")
}
