import ArgumentParser
import Foundation
import Logging
import Parley
import ParleyDistribution
import ParleyOTP

/// `parley demo`: longer demonstrations than the tour's chapters.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Demonstrations: `parley demo cluster` replays the seed's Swarm walk-through.",
        subcommands: [ClusterDemo.self]
    )
}

/// `parley demo cluster`: the seed's "Process registration with Swarm", on Parley. Three
/// nodes (this one and two `parley node --registry` OS processes) run a
/// DistributedSupervisor; workers are started by name and spread over the nodes; one node
/// is SIGKILLed and its workers come back on the others, with the counts they
/// checkpointed; then one is stopped with SIGTERM, as a rolling deploy does, and its workers
/// hand their state over before it exits.
struct ClusterDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Three nodes, supervised workers registered by name, a kill -9 and a graceful SIGTERM, with times.")

    @Option(help: "Workers to start.")
    var workers = 12

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        try runtime.apply()
        guard workers > 0 else { throw ValidationError("--workers is 1 or more") }
        let cookie = "demo-\(UInt32.random(in: 0...UInt32.max))"
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        let pid = getpid()
        let supervisorName = "demo_workers"
        let here = try LocalNode(name: "demo_a_\(pid)@127.0.0.1")
        let others = ["b", "c"].map { "demo_\($0)_\(pid)@127.0.0.1" }
        var children: [TourNode] = []
        defer {
            for c in children { c.kill() }
            if let p = here.whereis(supervisorName) { Process.exit(p, .kill) }
        }
        var config = Distribution.Configuration(name: here.name, cookie: cookie)
        config.hidden = false
        config.epmdPort = epmd.boundPort
        config.embeddedEPMD = false
        let verbose = ProcessInfo.processInfo.environment["PARLEY_DEMO_LOG"] != nil
        config.logger.logLevel = verbose ? .info : .critical
        try await here.startDistribution(config)
        func short(_ node: String) -> String { String(node.dropFirst("demo_".count).prefix { $0 != "_" }) }
        func ms(_ d: Duration) -> String { String(format: "%5d ms", Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)) }
        print("parley demo cluster: the seed's Swarm walk-through on Parley's DistributedSupervisor")
        print("  nodes: a (this process) and b, c (`parley node --registry \(supervisorName)`), EPMD on port \(epmd.boundPort)")
        for name in others {
            children.append(try TourNode.launch(CommandLine.arguments[0], [
                "node", "--name", name, "--cookie", cookie, "--epmd-port", String(epmd.boundPort), "--no-observer-agent",
                "--visible", "--connect", here.name, "--registry", supervisorName,
            ]))
        }
        var logger = Logger(label: "parley.supervisor")
        logger.logLevel = verbose ? .info : .critical
        RegistryCounter.define(in: supervisorName, on: here)
        let t0 = ContinuousClock.now
        let sup = try await DistributedSupervisor.start(supervisorName, on: here, logger: logger)
        while sup.registry.members.count < 3, ContinuousClock.now - t0 < .seconds(30) {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard sup.registry.members.count == 3 else { print("  the nodes did not meet within 30 s"); return }
        print("  +\(ms(ContinuousClock.now - t0))  3 members: \(sup.registry.members.map(short).joined(separator: ", "))")

        let names = (1...workers).map { "worker-\($0)" }
        let t1 = ContinuousClock.now
        for n in names { try await sup.startChild(n, start: "counter", restart: .permanent) }
        print("  startChild(\"worker-1\" … \"worker-\(workers)\", start: \"counter\", restart: .permanent): \(workers) in \(ms(ContinuousClock.now - t1)), each known to every node when it returns")
        func layout() {
            let by = Dictionary(grouping: sup.whichChildren()) { short($0.node) }
            for node in by.keys.sorted() {
                let ids: [String] = (by[node] ?? []).map(\.id).sorted { (x: String, y: String) -> Bool in
                    x.count != y.count ? x.count < y.count : x < y
                }
                print("    \(node): \(ids.joined(separator: " "))")
            }
        }
        layout()
        for (i, n) in names.enumerated() {
            for _ in 0...i { _ = try await sup.call(n, Term.atom("bump")) }
        }
        print("  worker-i bumped i times by name from a (every bump checkpointed)")
        func count(_ n: String) async -> Int? { (try? await sup.call(n, Term.atom("get")) as? Term)?.intValue }
        func index(_ n: String) -> Int { Int(n.dropFirst("worker-".count)) ?? 0 }

        // kill -9 b: its workers come back elsewhere.
        let b = others[0], c = others[1]
        let onB = names.filter { sup.registry.lookup($0)?.nodeName == b }
        // A checkpoint leaves b for the name's next owner (a or c) when b's registry runs;
        // a kill -9 loses those still on b. Wait until each is where a restart reads it.
        let tc = ContinuousClock.now
        var replicated = false
        while !replicated, ContinuousClock.now - tc < .seconds(10) {
            replicated = true
            for n in onB where await sup.registry.lastCheckpoint(of: n) != .integer(index(n)) { replicated = false }
            if !replicated { try await Task.sleep(for: .milliseconds(1)) }
        }
        print("  b's last checkpoints \(replicated ? "are on their next owners (lastCheckpoint(of:), after \(ms(ContinuousClock.now - tc).trimmingCharacters(in: .whitespaces)))" : "did not reach their next owners within 10 s")")
        print("  kill -9 b (it runs \(onB.count)):")
        /// Waits until each of `moving` runs off `node`, and prints when, where and with what
        /// count each arrived.
        func report(_ moving: [String], leaving node: String, within limit: Duration, from t: ContinuousClock.Instant, kept: String) async throws {
            var arrived: [String: Duration] = [:]
            while arrived.count < moving.count, ContinuousClock.now - t < limit {
                for n in moving where arrived[n] == nil {
                    if let p = sup.registry.lookup(n), p.nodeName != node { arrived[n] = ContinuousClock.now - t }
                }
                try await Task.sleep(for: .milliseconds(1))
            }
            for n in moving {
                guard let at = arrived[n] else { print("    \(n) did not run elsewhere within \(limit)"); continue }
                let got = await count(n)
                print("    +\(ms(at))  \(n) on \(short(sup.registry.lookup(n)?.nodeName ?? "?")), count \(got.map(String.init) ?? "?") (\(got == index(n) ? kept : "expected \(index(n))"))")
            }
        }
        let t2 = ContinuousClock.now
        children[0].signal(SIGKILL)
        try await report(onB, leaving: b, within: .seconds(10), from: t2, kept: "from its checkpoint")

        // SIGTERM c: a graceful stop hands its workers over.
        let onC = names.filter { sup.registry.lookup($0)?.nodeName == c }
        print("  kill -TERM c (a rolling deploy's stop; it runs \(onC.count)):")
        let t3 = ContinuousClock.now
        children[1].signal(SIGTERM)
        try await report(onC, leaving: c, within: .seconds(30), from: t3, kept: "handed over")
        let leaver = children[1]
        let exited = await Task.detached { () -> Bool in
            let deadline = ContinuousClock.now + .seconds(10)
            while leaver.process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
            return !leaver.process.isRunning
        }.value
        print("  c \(exited ? "exited with status \(leaver.process.terminationStatus)" : "is still running after 10 s") after handing off")
        var total = 0
        for n in names { total += await count(n) ?? 0 }
        let expected = workers * (workers + 1) / 2
        print("  now on a: \(sup.whichChildren().filter { $0.node == here.name }.count) of \(workers); the counts add up to \(total) of \(expected): \(total == expected ? "nothing lost" : "\(expected - total) lost")")
        await here.stopDistribution()
        await epmd.stop()
    }
}
