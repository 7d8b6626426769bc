import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

/// Nanoseconds of CLOCK_MONOTONIC: the clock of the nodes' history lines.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The registry scenarios' history checker. Every worker of every node writes a line when
/// it starts, takes a handed-over or checkpointed state, hands off, or keeps its name after
/// a heal, and the node's tracker writes when it exits (`Tests/ParleyTestNode/Scenario.swift`);
/// the test adds when each node process died or exited. From that it rebuilds, name by name, who held the name when, and checks what
/// the issue asks: at most one live holder per name once converged, a holder for every
/// registered name, how long a name was without one (failover, handoff), and when the last
/// duplicate of a heal went.
struct RegistryHistory {
    enum Kind: String { case start, kept, resumed, handoff, merged, exit, gone }
    struct Event {
        var t: UInt64
        var kind: Kind
        var name: String
        /// "incarnation/pid": a node restarted under the same name is another incarnation.
        var holder: String
        var total: Int?
    }
    var events: [Event] = []

    /// `incarnations`: each node process's output and when it ended (nil: it runs).
    init(_ incarnations: [(text: String, end: UInt64?)]) {
        for (i, inc) in incarnations.enumerated() {
            var held = Set<[String]>()
            for line in inc.text.split(separator: "\n") where line.hasPrefix("H ") {
                let f = line.split(separator: " ").map(String.init)
                guard f.count >= 6, let t = UInt64(f[1]), let kind = Kind(rawValue: f[2]) else { continue }
                let holder = "\(i)/\(f[5])"
                events.append(Event(t: t, kind: kind, name: f[3], holder: holder, total: f.count > 6 ? Int(f[6]) : nil))
                held.insert([f[3], holder])
            }
            // A node that ended took its holders with it (those that handed off had gone).
            if let end = inc.end {
                for h in held { events.append(Event(t: end, kind: .gone, name: h[0], holder: h[1])) }
            }
        }
        events.sort { $0.t < $1.t }
    }

    /// A name's events, for a failure's message.
    func trace(_ name: String) -> String {
        guard let first = events.first?.t else { return "" }
        return events.filter { $0.name == name }.map { "+\(($0.t - first) / 1_000_000)ms \($0.kind) \($0.holder)\($0.total.map { " \($0)" } ?? "")" }.joined(separator: ", ")
    }

    struct Report {
        /// The live holders of each name at the end.
        var live: [String: Set<String>] = [:]
        /// Every interval in the window during which a name that had a holder had none, in ns.
        var gaps: [(name: String, from: UInt64, length: UInt64)] = []
        /// When the last moment with two live holders of one name ended.
        var lastDuplicate: UInt64?
        /// Handoffs (beginHandoff calls) in the window.
        var handoffs = 0
        /// Names with two or more live holders at the end.
        var duplicates: [String] { live.filter { $0.value.count > 1 }.map(\.key).sorted() }
        var longestGap: UInt64 { gaps.map(\.length).max() ?? 0 }
        func describeGaps(_ n: Int = 5) -> String {
            gaps.sorted { $0.length > $1.length }.prefix(n).map { "\($0.name) \(Double($0.length) / 1e6) ms" }.joined(separator: ", ")
        }
    }

    /// The timeline up to `until`, gaps and handoffs counted from `since`.
    func report(since: UInt64 = 0, until: UInt64 = .max) -> Report {
        var r = Report()
        var emptySince: [String: UInt64] = [:]
        for e in events where e.t <= until {
            var holders = r.live[e.name] ?? []
            let before = holders.count
            switch e.kind {
            case .start, .kept: holders.insert(e.holder)
            case .handoff, .exit, .gone:
                holders.remove(e.holder)
                if e.kind == .handoff, e.t >= since { r.handoffs += 1 }
            case .resumed, .merged: break
            }
            if before > 1, holders.count <= 1 { r.lastDuplicate = max(r.lastDuplicate ?? 0, e.t) }
            if before > 0, holders.isEmpty { emptySince[e.name] = e.t }
            if before == 0, !holders.isEmpty, let from = emptySince.removeValue(forKey: e.name), from >= since {
                r.gaps.append((e.name, from, e.t - from))
            }
            r.live[e.name] = holders
        }
        return r
    }
}

/// Nodes of one registry in network namespaces, each its own OS process with its own
/// address, driven by command files (`--scenario`), their histories in their logs.
final class RegistryScenario: @unchecked Sendable {
    // Unchecked: used from one test task at a time.
    let net: PrivateNetwork
    let registry = "scn"
    let directory: String
    var hosts: [Int: (namespace: String, ip: String)] = [:]
    var current: [Int: NetnsChild] = [:]
    var incarnations: [(child: NetnsChild, end: UInt64?)] = []
    var seq = 0

    init(_ net: PrivateNetwork, hosts ks: [Int]) throws {
        self.net = net
        directory = net.folder + "/commands"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for k in ks { hosts[k] = try net.host(k) }
    }

    func name(_ k: Int) -> String { "s\(k)@\(hosts[k]!.ip)" }

    /// Starts host `k`'s node (every host is on its static list, epmd strategy: visible, the
    /// failure detector on) and waits for its registry's first sync.
    @discardableResult
    func start(_ k: Int) async throws -> NetnsChild {
        let list = hosts.keys.sorted().map(name).joined(separator: ",")
        let child = try net.node(in: hosts[k]!.namespace, name: name(k),
                                 ["--cluster", "epmd:\(list)", "--registry", registry, "--scenario", directory])
        current[k] = child
        incarnations.append((child, nil))
        guard await eventually(within: .seconds(60), { child.printed("registry \(self.registry) ready") }) else {
            throw DistributionError.connectFailed(node: name(k), reason: "no ready line: \(child.output.suffix(2000))")
        }
        return child
    }

    func end(_ child: NetnsChild, at t: UInt64) {
        if let i = incarnations.firstIndex(where: { $0.child === child }) { incarnations[i].end = t }
    }

    /// SIGKILL; returns when it happened.
    func kill(_ k: Int) -> UInt64 {
        let t = monotonicNanos()
        current[k]!.kill()
        end(current[k]!, at: t)
        return t
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to host `k`'s node; returns when.
    func freeze(_ k: Int, _ stop: Bool) -> UInt64 {
        let t = monotonicNanos()
        current[k]!.signal(stop ? SIGSTOP : SIGCONT)
        return t
    }

    /// The index of host `k`'s running node among the incarnations (a history holder's
    /// "incarnation/pid" prefix).
    func incarnation(_ k: Int) -> Int { incarnations.firstIndex { $0.child === current[k]! }! }

    /// SIGTERM, and waits for the node to hand its names off and exit (status 0).
    func terminate(_ k: Int) async throws {
        let child = current[k]!
        child.signal(SIGTERM)
        var status: Int32?
        guard await eventually(within: .seconds(90), { status = child.exited(); return status != nil }) else {
            throw DistributionError.connectFailed(node: name(k), reason: "did not exit after SIGTERM: \(child.output.suffix(2000))")
        }
        end(child, at: monotonicNanos())
        #expect(status == 0 && child.printed("registry handed off"), "\(name(k)) exited with status \(status ?? -1)")
    }

    /// Leaves a command for host `k`'s node; returns its file's base path.
    func post(_ k: Int, _ text: String) throws -> String {
        seq += 1
        let base = directory + "/\(name(k)).\(seq)"
        try text.write(toFile: base + ".tmp", atomically: false, encoding: .utf8)
        rename(base + ".tmp", base + ".cmd")
        return base
    }

    /// The output of the command at `base`, once written.
    func answer(_ base: String, within limit: Duration = .seconds(180)) async throws -> [String] {
        guard await eventually(within: limit, { FileManager.default.fileExists(atPath: base + ".out") }) else {
            throw DistributionError.connectFailed(node: base, reason: "no answer in \(limit)")
        }
        return try String(contentsOfFile: base + ".out", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// Runs a command on host `k`'s node and returns its output's lines.
    func command(_ k: Int, _ text: String, within limit: Duration = .seconds(180)) async throws -> [String] {
        try await answer(try post(k, text), within: limit)
    }

    /// `register`: how many were registered, taken, failed.
    func register(on k: Int, _ prefix: String, _ range: Range<Int>) async throws -> (ok: Int, taken: Int, failed: Int, lines: [String]) {
        let lines = try await command(k, "register \(prefix) \(range.lowerBound) \(range.upperBound)")
        func value(_ key: String) -> Int { lines.first { $0.hasPrefix(key + " ") }.flatMap { Int($0.dropFirst(key.count + 1)) } ?? -1 }
        return (value("ok"), value("taken"), value("failed"), lines)
    }

    typealias Sent = [String: (all: Int, to: [String: Int])]

    /// `send` for `seconds`: per name, how many casts in all and how many to each node.
    func send(on k: Int, _ prefix: String, _ range: Range<Int>, seconds: Double) async throws -> Sent {
        Self.sent(try await command(k, "send \(prefix) \(range.lowerBound) \(range.upperBound) \(seconds)"))
    }

    /// `send` until the returned function is called; that returns what was sent.
    func sendUntilStopped(on k: Int, _ prefix: String, _ range: Range<Int>) throws -> @Sendable () async throws -> Sent {
        let base = try post(k, "send \(prefix) \(range.lowerBound) \(range.upperBound) 3600")
        return { [self] in
            _ = FileManager.default.createFile(atPath: base + ".stop", contents: nil)
            return Self.sent(try await answer(base))
        }
    }

    static func sent(_ lines: [String]) -> Sent {
        var sent: Sent = [:]
        for line in lines where line.hasPrefix("sent ") {
            let f = line.split(separator: " ").map(String.init)
            var to: [String: Int] = [:]
            for kv in f.dropFirst(3) {
                let parts = kv.split(separator: "=")
                if parts.count == 2 { to[String(parts[0])] = Int(parts[1]) }
            }
            sent[f[1]] = (Int(f[2]) ?? 0, to)
        }
        return sent
    }

    /// `counts`: each name's total, -1 where no call was answered.
    func counts(on k: Int, _ prefix: String, _ range: Range<Int>) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in try await command(k, "counts \(prefix) \(range.lowerBound) \(range.upperBound)") where line.hasPrefix("count ") {
            let f = line.split(separator: " ")
            counts[String(f[1])] = Int(f[2]) ?? -1
        }
        return counts
    }

    /// `holders`: this node's copy of the registry, name → holder's node.
    func holders(on k: Int) async throws -> [String: String] {
        var h: [String: String] = [:]
        for line in try await command(k, "holders", within: .seconds(30)) where line.hasPrefix("holder ") {
            let f = line.split(separator: " ")
            h[String(f[1])] = String(f[2])
        }
        return h
    }

    /// Each running node's view: how many names it has, on which nodes.
    func describeViews() async -> String {
        var out: [String] = []
        for k in current.keys.sorted() {
            guard let h = try? await holders(on: k) else { out.append("s\(k): no answer"); continue }
            let by = Dictionary(grouping: h.values, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key }.map { "\($0.key.prefix(3))=\($0.value)" }
            out.append("s\(k): \(h.count) [\(by.joined(separator: " "))]")
        }
        return out.joined(separator: "; ")
    }

    var history: RegistryHistory { RegistryHistory(incarnations.map { ($0.child.output, $0.end) }) }

    /// Waits until no worker has written a history line for `quiet` (moves are over).
    func settle(quiet: Duration = .milliseconds(1500), within limit: Duration = .seconds(120)) async -> Bool {
        var count = -1, changed = ContinuousClock.now
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let now = current.values.reduce(0) { $0 + $1.output.split(separator: "\n").filter { $0.hasPrefix("H ") }.count }
            if now != count { count = now; changed = .now }
            if ContinuousClock.now - changed > quiet { return true }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return false
    }
}

/// The scenarios' size: 1,000 names (CI's); `PARLEY_SCENARIO_NAMES=10000` runs the issue's
/// full size (BENCHMARKS.md has what it measured on the project's 2-core machine, with the
/// test node built in release and given as `PARLEY_TEST_NODE`: every check holds there).
let scenarioNames = ProcessInfo.processInfo.environment["PARLEY_SCENARIO_NAMES"].flatMap(Int.init) ?? 1_000

/// Names whose count is not the expected one, as "name: count of expected".
func mismatches(_ counts: [String: Int], _ expected: [String: Int]) -> [String] {
    Set(counts.keys).union(expected.keys).sorted().filter { counts[$0] != expected[$0] }
        .map { "\($0): \(counts[$0].map(String.init) ?? "none") of \(expected[$0].map(String.init) ?? "none")" }
}

/// A node lost under load: each name's count (less `base`) must be what was sent to it,
/// less at most what was sent to the lost node's holder (in flight, or processed after its
/// last checkpoint left). The names outside that, as "name: count of sent"; how many sends
/// are missing in all, of how many, and how many went to the lost node.
func lossCheck(_ counts: [String: Int], since base: [String: Int] = [:], _ sent: RegistryScenario.Sent, lostAt node: String,
               names: [String]) -> (outside: [String], missing: Int, total: Int, toLost: Int) {
    let outside = names.filter { name in
        let c = (counts[name] ?? -1) - (base[name] ?? 0), e = sent[name]?.all ?? 0, toLost = sent[name]?.to[node] ?? 0
        return c > e || c < e - toLost
    }.map { "\($0): \((counts[$0] ?? -1) - (base[$0] ?? 0)) of \(sent[$0]?.all ?? 0)" }
    let missing = sent.reduce(0) { $0 + $1.value.all - max(0, (counts[$1.key] ?? 0) - (base[$1.key] ?? 0)) }
    return (outside, missing, sent.reduce(0) { $0 + $1.value.all }, sent.reduce(0) { $0 + ($1.value.to[node] ?? 0) })
}

func ms(_ ns: UInt64) -> String { String(format: "%.1f ms", Double(ns) / 1e6) }

extension DistributionTests.NetworkNamespaceTests {
    @Test("Registry at scale, 4 nodes and a client node in namespaces, every worker's history checked: a node joins (about 1/N of the names move, their counts with them), a rolling SIGTERM of every node while the client sends to every name (no name without a holder for more than 500 ms, no message lost), then a SIGKILL (its names restart elsewhere within 2 s, no duplicates, only messages sent to the dead node missing)",
          .timeLimit(.minutes(20)))
    func registryAtScale() async throws {
        let net = try PrivateNetwork()
        defer { net.teardown() }
        let s = try RegistryScenario(net, hosts: [1, 2, 3, 4, 5])
        let client = 5, n = scenarioNames, all = 0..<n
        for k in [client, 1, 2, 3] { try await s.start(k) }

        // Registration: every name from the client.
        var t0 = ContinuousClock.now
        let reg = try await s.register(on: client, "w", all)
        #expect(reg.ok == n, "\(reg.lines.prefix(8))")
        print("registry scenario: \(n) names registered on 4 nodes in \(ContinuousClock.now - t0)")
        var expected = [String: Int]()
        func tally(_ sent: RegistryScenario.Sent) { for (k, v) in sent { expected[k, default: 0] += v.all } }
        tally(try await s.send(on: client, "w", all, seconds: 1))

        // Join: s4 starts; the names whose owner is now s4 move to it.
        let joinStart = monotonicNanos()
        t0 = ContinuousClock.now
        try await s.start(4)
        #expect(await s.settle())
        let joined = s.history.report(since: joinStart)
        let onNew = try await s.holders(on: client).values.filter { $0 == s.name(4) }.count
        print("registry scenario: join moved \(joined.handoffs) of \(n) names (\(onNew) now on the new node) in \(ContinuousClock.now - t0), longest gap \(ms(joined.longestGap))")
        #expect(Double(joined.handoffs) > Double(n) / 5 * 0.6 && Double(joined.handoffs) < Double(n) / 5 * 1.5, "about 1/5 move: \(joined.handoffs)")
        #expect(onNew == joined.handoffs, "what moved is what the new node holds")
        var counts = try await s.counts(on: client, "w", all)
        #expect(mismatches(counts, expected).isEmpty, "counts kept through the join: \(mismatches(counts, expected).prefix(5))")

        // Rolling restart: each server node in turn is SIGTERMed, restarted, and let settle,
        // while the client sends to every name all along.
        let rollStart = monotonicNanos()
        let stopLoad = try s.sendUntilStopped(on: client, "w", all)
        for k in [1, 2, 3, 4] {
            let t = ContinuousClock.now, termAt = monotonicNanos()
            try await s.terminate(k)
            let off = ContinuousClock.now - t, backAt = monotonicNanos()
            try await s.start(k)
            #expect(await s.settle())
            print("registry scenario: s\(k) handed off in \(off), back and rebalanced after \(ContinuousClock.now - t) (SIGTERM at +\(ms(termAt - rollStart)), restarted at +\(ms(backAt - rollStart)))")
        }
        let rolled = try await stopLoad()
        tally(rolled)
        let roll = s.history.report(since: rollStart)
        let worst = roll.gaps.max { $0.length < $1.length }
        print("registry scenario: rolling restart: \(roll.handoffs) handoffs, longest gap \(ms(roll.longestGap)) from +\(ms((worst?.from ?? rollStart) - rollStart)) (\(roll.describeGaps()))")
        #expect(roll.longestGap < 500_000_000, "no name without a holder for more than 500 ms: \(roll.describeGaps()); the worst: \(worst.map { s.history.trace($0.name) } ?? "")")
        #expect(roll.live.filter { $0.value.count != 1 }.isEmpty, "one holder per name: \(roll.live.filter { $0.value.count != 1 }.prefix(3).map { "\($0.key): \($0.value) [\(s.history.trace($0.key))]" })")
        counts = try await s.counts(on: client, "w", all)
        let lost = expected.reduce(0) { $0 + $1.value - (counts[$1.key] ?? 0) }
        print("registry scenario: \(expected.values.reduce(0, +)) messages sent, \(lost) lost")
        #expect(mismatches(counts, expected).isEmpty, "no message lost: \(mismatches(counts, expected).prefix(5))")

        // SIGKILL under load: the victim's names restart elsewhere from their checkpoints.
        let victim = 2, base = counts
        let killLoad = Task { [s] in try await s.send(on: client, "w", all, seconds: 6) }
        try await Task.sleep(for: .seconds(2))
        let killedAt = s.kill(victim)
        let sent = try await killLoad.value
        #expect(await s.settle())
        let after = s.history.report(since: killedAt)
        let failover = after.gaps.filter { $0.from == killedAt }.map(\.length)
        print("registry scenario: SIGKILL: \(failover.count) names restarted, slowest after \(ms(failover.max() ?? 0)), median \(ms(failover.sorted().dropFirst(failover.count / 2).first ?? 0))")
        #expect(!failover.isEmpty && failover.max()! < 2_000_000_000, "failover within 2 s of the kill: \(ms(failover.max() ?? 0))")
        #expect(after.live.filter { $0.value.count != 1 }.isEmpty, "one live holder per name: \(after.live.filter { $0.value.count != 1 }.prefix(3).map { "\($0.key): \($0.value) [\(s.history.trace($0.key))]" })")
        let holders = try await s.holders(on: client)
        #expect(holders.count == n && !holders.values.contains(s.name(victim)), "every name held, none by the dead node")
        counts = try await s.counts(on: client, "w", all)
        // Each name's count: everything sent, less at most what was sent to the dead node's
        // holder (in flight, or processed after its last checkpoint left).
        let check = lossCheck(counts, since: base, sent, lostAt: s.name(victim), names: all.map { "w\($0)" })
        print("registry scenario: SIGKILL under load: \(check.missing) of \(check.total) messages missing; \(check.toLost) were sent to the dead node")
        #expect(check.outside.isEmpty, "counts outside [sent - sent to the dead node, sent]: \(check.outside.prefix(5))")
    }

    @Test("Registry netsplit, 2 against 2 in namespaces: each side keeps every name (restarted from checkpoints) and takes registrations of the same new names; healed, every name has exactly one holder, the same on every node, and each G-Counter merged in resolveConflict counts every bump of both sides once",
          .timeLimit(.minutes(15)))
    func registryPartition() async throws {
        let net = try PrivateNetwork()
        defer { net.teardown() }
        let s = try RegistryScenario(net, hosts: [1, 2, 3, 4])
        let n = scenarioNames / 2, m = max(scenarioNames / 10, 10), before = 0..<n, during = 0..<m
        for k in [1, 2, 3, 4] { try await s.start(k) }
        let reg = try await s.register(on: 1, "w", before)
        #expect(reg.ok == n, "\(reg.lines.prefix(8))")
        var expected = [String: Int]()
        func tally(_ sent: RegistryScenario.Sent) { for (k, v) in sent { expected[k, default: 0] += v.all } }
        tally(try await s.send(on: 1, "w", before, seconds: 1))
        // Every cast processed (a call after them from the same node) and its checkpoint out.
        #expect(mismatches(try await s.counts(on: 1, "w", before), expected).isEmpty)
        #expect(await s.settle(quiet: .seconds(1)))

        // Split {1, 2} | {3, 4}; each side restarts the other side's names.
        try net.split([3, 4])
        let splitAt = monotonicNanos()
        let sideA = Set([s.name(1), s.name(2)]), sideB = Set([s.name(3), s.name(4)])
        let separated = await eventually(within: .seconds(30)) {
            let a = (try? await s.holders(on: 1)) ?? [:], b = (try? await s.holders(on: 3)) ?? [:]
            return a.count == n && b.count == n && a.values.allSatisfy(sideA.contains) && b.values.allSatisfy(sideB.contains)
        }
        let splitViews = await s.describeViews()
        #expect(separated, "each side holds every name itself: \(splitViews)")
        print("registry scenario: split: both sides hold all \(n) names after \(ms(monotonicNanos() - splitAt))")
        #expect(await s.settle(quiet: .seconds(1)))

        // Both sides register the same new names and bump old and new ones.
        async let ra = s.register(on: 1, "p", during)
        async let rb = s.register(on: 3, "p", during)
        let (a, b) = try await (ra, rb)
        #expect(a.ok == m && b.ok == m, "each side registers every new name: \(a.lines.prefix(4)) \(b.lines.prefix(4))")
        async let sa = s.send(on: 1, "w", before, seconds: 2)
        async let sb = s.send(on: 3, "w", before, seconds: 2)
        async let pa = s.send(on: 1, "p", during, seconds: 1)
        async let pb = s.send(on: 3, "p", during, seconds: 1)
        let (sentA, sentB, sentPA, sentPB) = try await (sa, sb, pa, pb)
        for sent in [sentA, sentB, sentPA, sentPB] { tally(sent) }
        // Processed on each side before the heal.
        _ = try await (s.counts(on: 1, "w", before), s.counts(on: 3, "w", before), s.counts(on: 1, "p", during), s.counts(on: 3, "p", during))
        let pre = s.history.report()
        #expect(pre.duplicates.count == n + m, "during the split every name has a holder on each side: \(pre.duplicates.count)")

        // Heal: one holder per name, chosen by epoch, the loser's state merged into the winner.
        let healAt = monotonicNanos()
        try net.rejoin([3, 4])
        var views: [[String: String]] = []
        let converged = await eventually(within: .seconds(60)) {
            views = []
            for k in [1, 2, 3, 4] { views.append((try? await s.holders(on: k)) ?? [:]) }
            return views.allSatisfy { $0 == views[0] && $0.count == n + m } && s.history.report().duplicates.isEmpty
        }
        let convergence = monotonicNanos() - healAt
        let healed = s.history.report()
        print("registry scenario: heal: converged in \(ms(convergence)) (last duplicate gone \(ms((healed.lastDuplicate ?? healAt) - healAt)) after the heal)")
        let healedViews = await s.describeViews()
        #expect(converged, "every node sees the same one holder per name: duplicates \(healed.duplicates.prefix(5)); \(healedViews)")
        #expect(healed.live.filter { $0.value.count != 1 }.isEmpty, "one live holder per name: \(healed.live.filter { $0.value.count != 1 }.prefix(3).map { "\($0.key): \($0.value) [\(s.history.trace($0.key))]" })")
        let counts = try await s.counts(on: 2, "w", before).merging(try await s.counts(on: 4, "p", during)) { a, _ in a }
        #expect(mismatches(counts, expected).isEmpty, "every bump of both sides counted once: \(mismatches(counts, expected).prefix(5))")
    }
}

extension DistributionTests.NetworkNamespaceTests {
    @Test("Registry freeze, 4 nodes and a client node in namespaces, under load: a SIGSTOPped node is declared down by the failure detector and its names restart on the others within 2 s of that; woken by SIGCONT, it stops its stale holders (fenced) instead of racing or merging with the new ones: one live holder per name, every name held, each count within [sent - sent to the frozen node, sent]",
          .timeLimit(.minutes(10)))
    func registryFreeze() async throws {
        let net = try PrivateNetwork()
        defer { net.teardown() }
        let s = try RegistryScenario(net, hosts: [1, 2, 3, 4, 5])
        let client = 5, n = scenarioNames, all = 0..<n, frozen = 3
        for k in [client, 1, 2, 3, 4] { try await s.start(k) }
        let reg = try await s.register(on: client, "w", all)
        #expect(reg.ok == n, "\(reg.lines.prefix(8))")
        #expect(await s.settle())
        let frozenName = s.name(frozen), inc = s.incarnation(frozen)
        let stale = Set(try await s.holders(on: client).filter { $0.value == frozenName }.map(\.key))
        #expect(!stale.isEmpty)

        let stopLoad = try s.sendUntilStopped(on: client, "w", all)
        try await Task.sleep(for: .seconds(1))
        let stoppedAt = s.freeze(frozen, true)
        // Declared down: its names restart on the others (the client's copy shows them there).
        let restarted = await eventually(within: .seconds(30)) {
            let h = (try? await s.holders(on: client)) ?? [:]
            return h.count == n && !h.values.contains(frozenName)
        }
        // (The views are asked for only on failure: the frozen node answers nobody.)
        if !restarted { Issue.record("the frozen node's names restarted elsewhere: \(await s.describeViews())") }
        let thawedAt = s.freeze(frozen, false)
        let frozenFor = thawedAt - stoppedAt
        // Woken: its stale holders stop; it rejoins and takes names back by handoff.
        let converged = await eventually(within: .seconds(60)) {
            let h = (try? await s.holders(on: client)) ?? [:]
            return h.count == n && h.values.contains(frozenName) && s.history.report().duplicates.isEmpty
        }
        let sent = try await stopLoad()
        #expect(await s.settle(quiet: .seconds(2)))
        let history = s.history, report = history.report()
        if !converged { Issue.record("the woken node rejoined, one holder per name: duplicates \(report.duplicates.prefix(5)); \(await s.describeViews())") }

        let restarts = history.events.filter { $0.t > stoppedAt && $0.t < thawedAt && $0.kind == .start && stale.contains($0.name) && !$0.holder.hasPrefix("\(inc)/") }
        let first = restarts.map(\.t).min() ?? thawedAt, last = restarts.map(\.t).max() ?? thawedAt
        print("registry scenario: SIGSTOP: \(Set(restarts.map(\.name)).count) of \(stale.count) names restarted elsewhere, the first \(ms(first - stoppedAt)) after the SIGSTOP (the failure detector's verdict), the last \(ms(last - first)) after the first; SIGCONT after \(ms(frozenFor))")
        #expect(Set(restarts.map(\.name)) == stale, "every name of the frozen node restarted while it was frozen")
        #expect(last - first < 2_000_000_000, "restarted within 2 s of the verdict: \(ms(last - first))")

        // Fenced: every stale holder exited after the SIGCONT; none handed off or merged.
        let staleEnds = history.events.filter { $0.t >= thawedAt && $0.holder.hasPrefix("\(inc)/") && stale.contains($0.name) && [.exit, .handoff, .merged].contains($0.kind) }
        let fenced = Set(staleEnds.filter { $0.kind == .exit }.map(\.name))
        let raced = staleEnds.filter { end in end.kind != .exit && history.events.contains { $0.holder == end.holder && $0.kind == .start && $0.t < stoppedAt } }
        print("registry scenario: SIGCONT: \(fenced.count) of \(stale.count) stale holders stopped (fenced), converged \(ms(monotonicNanos() - thawedAt)) after it")
        #expect(fenced.isSuperset(of: stale), "every stale holder stopped when its node woke: \(stale.subtracting(fenced).sorted().prefix(5).map { "\($0) [\(history.trace($0))]" })")
        #expect(raced.isEmpty, "no stale holder handed off or merged: \(raced.prefix(3).map { "\($0.name) \($0.kind)" })")
        #expect(report.live.count == n && report.live.values.allSatisfy { $0.count == 1 }, "one live holder per name: \(report.live.filter { $0.value.count != 1 }.prefix(3).map { "\($0.key): \($0.value) [\(history.trace($0.key))]" })")

        // Counts: everything sent, less at most what was sent to the frozen node's holders.
        let counts = try await s.counts(on: client, "w", all)
        let check = lossCheck(counts, sent, lostAt: frozenName, names: all.map { "w\($0)" })
        print("registry scenario: SIGSTOP under load: \(check.missing) of \(check.total) messages missing; \(check.toLost) were sent to the frozen node")
        #expect(check.outside.isEmpty, "counts outside [sent - sent to the frozen node, sent]: \(check.outside.prefix(5))")
    }
}
