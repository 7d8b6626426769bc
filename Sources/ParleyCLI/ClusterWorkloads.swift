import Foundation
import Parley
import ParleyDistribution
import ParleyOTP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The clusters issue's benchmarks, run the same way on `parley node` processes and on Erlang
/// nodes (Debian's OTP with its defaults), one kind after the other, from this (hidden) node:
///
/// - `cluster-mesh.N` (N = 2, 4, 8, 16): N visible nodes are up and know nobody; each but the
///   first is told to connect to the first (`net_kernel:connect_node/1`), and global's
///   connect_all does the rest. Milliseconds until every node sees the N - 1 others.
/// - `cluster-detect.kill` and `cluster-detect.stop`: three meshed nodes; one is SIGKILLed
///   (its sockets close) or SIGSTOPped (they stay open). Milliseconds until another node's
///   nodedown. Erlang's stop figure is its net tick timeout with the default
///   `net_ticktime` (60 s: 45 to 75 s).
/// - `cluster-global.register` and `cluster-global.whereis`, on a mesh of 4: one node
///   registers 500 processes under global names one after the other (each a lock on all
///   nodes and a registration on each), then looks names up 100,000 times.
///
/// Each figure comes out twice, `"peer":"parley"` and `"peer":"erlang"`.
///
/// - `cluster-registry.register`, `.whereis`, `.call`, `.failover`: the same mesh of 4, each
///   running a `DistributedRegistry` (`parley node --registry`): one node registers 500
///   workers by name (`registerName`, each started on its ring owner and acked by every
///   member), looks names up 100,000 times and calls 2,000 of them by name; then a node is
///   SIGKILLed and the milliseconds until every one of its workers runs elsewhere (seen from
///   the first node) are the failover. Erlang has no such registry: its `"peer":"erlang"`
///   figures for `.register` and `.whereis` are `:global`'s on the same mesh of 4 with the
///   same counts (the comparison; `cluster-global.*` measures the same on Erlang),
///   and for `.register-10k` `:global` registering 10,000 names on 3 nodes, one after the
///   other (32 at a time are no faster under its cluster-wide lock).
/// - `cluster-registry.register-10k`, `.join-move-10k`, `.failover-10k`: 10,000 names on three
///   members (registered 32 at a time), then the milliseconds until a joining fourth holds
///   every name the ring now gives it (their state handed over), then until a SIGKILLed
///   member's names all run elsewhere.
enum ClusterWorkloads {
    static let names = ["cluster-mesh", "cluster-detect", "cluster-global", "cluster-registry"]
    static let meshSizes = [2, 4, 8, 16]

    static func run(_ name: String, me: Process) async throws -> [Workloads.Result] {
        try await RemoteWorkloads.ensureNode()
        var out: [Workloads.Result] = []
        let erlang = FileManager.default.isExecutableFile(atPath: "/usr/bin/erl")
        if name == "cluster-registry" { return try await registry(me) }
        for kind in erlang ? [false, true] : [false] {
            let peer = kind ? "erlang" : "parley"
            switch name {
            case "cluster-mesh":
                for n in meshSizes {
                    let ms = try await mesh(me, n: n, erlang: kind)
                    out.append(.init(workload: "cluster-mesh.\(n)", value: ms, unit: "ms", peer: peer))
                }
            case "cluster-detect":
                for how in ["kill", "stop"] {
                    let ms = try await detect(me, signal: how == "kill" ? SIGKILL : SIGSTOP, erlang: kind)
                    out.append(.init(workload: "cluster-detect.\(how)", value: ms, unit: "ms", peer: peer))
                }
            default:
                let (regs, lookup) = try await global(me, erlang: kind)
                out.append(.init(workload: "cluster-global.register", value: regs, unit: "reg/s", peer: peer))
                out.append(.init(workload: "cluster-global.whereis", value: lookup, unit: "ns/lookup", peer: peer))
            }
        }
        return out
    }

    // MARK: The measurements

    /// Starts `n` nodes that know nobody, then connects each to the first; milliseconds to a
    /// full mesh.
    static func mesh(_ me: Process, n: Int, erlang: Bool) async throws -> Double {
        let nodes = try await start(n, erlang: erlang)
        defer { for p in nodes { p.stop() } }
        for p in nodes {
            _ = try await p.spawn(me, parley: "mesh-watch", erlang: ("remote_peer", "mesh_watch", [.integer(n - 1), .pid(me.pid)]),
                                  args: .tuple([.integer(n - 1), .pid(me.pid)]))
        }
        try await expect(me, "ready", count: n)
        let t0 = MonotonicClock.now
        try await connectToFirst(me, nodes)
        try await expect(me, "meshed", count: n, within: .seconds(120))
        return Double(MonotonicClock.now - t0) / 1e6
    }

    /// Three meshed nodes; `signal` to the third; milliseconds until the first sees it go.
    static func detect(_ me: Process, signal: Int32, erlang: Bool) async throws -> Double {
        let nodes = try await start(3, erlang: erlang)
        defer { for p in nodes { p.stop() } }
        try await connectToFirst(me, nodes)
        let args: Term = .tuple([.atom(Atom(nodes[2].name)), .pid(me.pid)])
        // Watching starts once the three are meshed (the watcher says ready then).
        _ = try await nodes[0].spawn(me, parley: "down-watch", erlang: ("remote_peer", "down_watch", [.atom(Atom(nodes[2].name)), .pid(me.pid)]),
                                     args: args)
        try await expect(me, "ready", count: 1, within: .seconds(60))
        // This node's own connection to the victim must not tell anything: drop it first.
        let victim = nodes[2]
        let t0 = MonotonicClock.now
        kill(victim.process.processIdentifier, signal)
        defer { kill(victim.process.processIdentifier, SIGCONT) }
        try await expect(me, "down", count: 1, within: .seconds(120))
        return Double(MonotonicClock.now - t0) / 1e6
    }

    /// A mesh of 4; 500 registrations in a row on one node, then 100,000 lookups there.
    static func global(_ me: Process, erlang: Bool) async throws -> (regsPerSecond: Double, nsPerLookup: Double) {
        let nodes = try await meshed(4, erlang: erlang, me)
        defer { for p in nodes { p.stop() } }
        let k = 500, lookups = 100_000
        _ = try await nodes[0].spawn(me, parley: "global-bench", erlang: ("remote_peer", "global_bench", [.integer(k), .integer(lookups), .pid(me.pid)]),
                                     args: .tuple([.integer(k), .integer(lookups), .pid(me.pid)]))
        let m = try await me.receive(Term.self, after: .seconds(300),
                                     where: { if case .tuple(let t) = $0 { return t.first == .atom("global") } else { return false } })
        guard let m else { throw ValidationErrorText("global-bench did not answer within 300 s") }
        guard case .tuple(let t) = m, t.count == 3, let regNs = t[1].intValue, let lookupNs = t[2].intValue else {
            throw ValidationErrorText("global-bench answered \(m)")
        }
        return (Double(k) / (Double(regNs) / 1e9), Double(lookupNs) / Double(lookups))
    }

    /// Erlang's side of `cluster-registry.register-10k`: a mesh of 3 Erlang nodes, the first
    /// registers 10,000 processes under `:global` names, one after the other (its
    /// cluster-wide lock per name leaves nothing to gain from more registrants at once);
    /// registrations per second.
    static func globalScale(_ me: Process) async throws -> Double {
        let nodes = try await meshed(3, erlang: true, me)
        defer { for p in nodes { p.stop() } }
        let k = 10_000
        // One registrant: global takes a cluster-wide lock per name, so registrants at once
        // gain nothing (32 at a time registered 362 names a second here, one 366).
        _ = try await nodes[0].spawn(me, parley: "", erlang: ("remote_peer", "global_scale", [.integer(k), .integer(1), .pid(me.pid)]))
        let t = try await tagged(me, "global_scale", within: .seconds(600), from: "global_scale")
        guard t.count == 2, let ns = t[1].intValue else { throw ValidationErrorText("global_scale answered \(t)") }
        return Double(k) / (Double(ns) / 1e9)
    }

    static let registryName = "bench_registry"

    /// A mesh of 4 registry members; 500 registrations, 100,000 lookups and 2,000 calls by
    /// name on the first; then a SIGKILL of the last and the failover as the first sees it.
    static func registry(_ me: Process) async throws -> [Workloads.Result] {
        var nodes: [RemoteWorkloads.Peer] = []
        defer { for p in nodes { p.stop() } }
        for _ in 0..<4 { nodes.append(try RemoteWorkloads.Peer.launchParley(visible: true, extra: ["--registry", registryName])) }
        for p in nodes { try await p.waitUntilUp() }
        try await connectToFirst(me, nodes)
        let k = 500, lookups = 100_000, calls = 2_000
        _ = try await nodes[0].spawn(me, parley: "registry-bench", erlang: ("", "", []),
                                     args: .tuple([.integer(k), .integer(lookups), .integer(calls), .atom(Atom(nodes[3].name)), .pid(me.pid)]))
        func reply(_ tag: String, within limit: Duration) async throws -> [Term] { try await tagged(me, tag, within: limit, from: "registry-bench") }
        let r = try await reply("registry", within: .seconds(300))
        guard r.count == 4, let regNs = r[1].intValue, let lookupNs = r[2].intValue, let callNs = r[3].intValue else {
            throw ValidationErrorText("registry-bench answered \(r)")
        }
        _ = try await reply("watching", within: .seconds(30))
        let t0 = MonotonicClock.now
        kill(nodes[3].process.processIdentifier, SIGKILL)
        _ = try await reply("restarted", within: .seconds(60))
        let failover = Double(MonotonicClock.now - t0) / 1e6
        var erlang: [Workloads.Result] = []
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/erl") {
            let (regs, lookup) = try await global(me, erlang: true)
            erlang = [
                .init(workload: "cluster-registry.register", value: regs, unit: "reg/s", peer: "erlang"),
                .init(workload: "cluster-registry.whereis", value: lookup, unit: "ns/lookup", peer: "erlang"),
                .init(workload: "cluster-registry.register-10k", value: try await globalScale(me), unit: "reg/s", peer: "erlang"),
            ]
        }
        return try await registryScale(me) + erlang + [
            .init(workload: "cluster-registry.register", value: Double(k) / (Double(regNs) / 1e9), unit: "reg/s", peer: "parley"),
            .init(workload: "cluster-registry.whereis", value: Double(lookupNs) / Double(lookups), unit: "ns/lookup", peer: "parley"),
            .init(workload: "cluster-registry.call", value: Double(callNs) / Double(calls) / 1000, unit: "us/call", peer: "parley"),
            .init(workload: "cluster-registry.failover", value: failover, unit: "ms", peer: "parley"),
        ]
    }

    /// 10,000 names: three registry members, the first registers them (32 in flight); a
    /// fourth joins and the names it now owns move to it; then a member is SIGKILLed and its
    /// names restart on the others. Each time as the first member sees it.
    static func registryScale(_ me: Process) async throws -> [Workloads.Result] {
        var nodes: [RemoteWorkloads.Peer] = []
        defer { for p in nodes { p.stop() } }
        for _ in 0..<4 { nodes.append(try RemoteWorkloads.Peer.launchParley(visible: true, extra: ["--registry", registryName])) }
        for p in nodes { try await p.waitUntilUp() }
        // Three members first; the fourth connects later.
        try await connectToFirst(me, Array(nodes.prefix(3)))
        let k = 10_000
        let bench = try await nodes[0].spawn(me, parley: "registry-scale", erlang: ("", "", []), args: .tuple([.integer(k), .pid(me.pid)]))
        func reply(_ tag: String, within limit: Duration) async throws -> [Term] { try await tagged(me, tag, within: limit, from: "registry-scale") }
        let registered = try await reply("registered", within: .seconds(300))
        guard registered.count == 2, let regNs = registered[1].intValue else { throw ValidationErrorText("registry-scale: \(registered)") }
        // The join: the fourth is told to connect to the first as the first starts its clock.
        me.send(Term.tuple([.atom("joining"), .atom(Atom(nodes[3].name))]), to: bench)
        _ = try await nodes[3].spawn(me, parley: "connect", erlang: ("", "", []), args: .atom(Atom(nodes[0].name)))
        let moved = try await reply("moved", within: .seconds(300))
        guard moved.count == 3, let moveNs = moved[1].intValue, let count = moved[2].intValue else { throw ValidationErrorText("registry-scale: \(moved)") }
        // The kill: the first starts its clock, then the second dies.
        me.send(Term.tuple([.atom("killing"), .atom(Atom(nodes[1].name))]), to: bench)
        kill(nodes[1].process.processIdentifier, SIGKILL)
        let failed = try await reply("restarted", within: .seconds(300))
        guard failed.count == 3, let failNs = failed[1].intValue, let restarted = failed[2].intValue else { throw ValidationErrorText("registry-scale: \(failed)") }
        FileHandle.standardError.write(Data("registry-scale: \(k) names; \(count) moved to the joiner; \(restarted) restarted after the kill\n".utf8))
        return [
            .init(workload: "cluster-registry.register-10k", value: Double(k) / (Double(regNs) / 1e9), unit: "reg/s", peer: "parley"),
            .init(workload: "cluster-registry.join-move-10k", value: Double(moveNs) / 1e6, unit: "ms", peer: "parley"),
            .init(workload: "cluster-registry.failover-10k", value: Double(failNs) / 1e6, unit: "ms", peer: "parley"),
        ]
    }

    /// The next `{tag, ...}` message's elements, within `limit`.
    static func tagged(_ me: Process, _ tag: String, within limit: Duration, from who: String) async throws -> [Term] {
        let m = try await me.receive(Term.self, after: limit,
                                     where: { if case .tuple(let t) = $0 { return t.first == .atom(Atom(tag)) } else { return false } })
        guard case .tuple(let t)? = m else { throw ValidationErrorText("\(who): no \(tag) within \(limit)") }
        return t
    }

    // MARK: Nodes

    /// `n` visible nodes of one kind, up and answering, connected to nobody but this node
    /// (hidden, so they do not mesh through it).
    static func start(_ n: Int, erlang: Bool) async throws -> [RemoteWorkloads.Peer] {
        var nodes: [RemoteWorkloads.Peer] = []
        do {
            for _ in 0..<n { nodes.append(try erlang ? RemoteWorkloads.Peer.launchErlang() : RemoteWorkloads.Peer.launchParley(visible: true)) }
            for p in nodes { try await p.waitUntilUp() }
        } catch {
            for p in nodes { p.stop() }
            throw error
        }
        return nodes
    }

    /// `n` nodes of one kind, connected to the first and seen meshed by every one of them;
    /// stopped again if they do not mesh within 60 s.
    static func meshed(_ n: Int, erlang: Bool, _ me: Process) async throws -> [RemoteWorkloads.Peer] {
        let nodes = try await start(n, erlang: erlang)
        do {
            try await connectToFirst(me, nodes)
            for p in nodes {
                _ = try await p.spawn(me, parley: "mesh-watch", erlang: ("remote_peer", "mesh_watch", [.integer(n - 1), .pid(me.pid)]),
                                      args: .tuple([.integer(n - 1), .pid(me.pid)]))
            }
            try await expect(me, "meshed", count: n, within: .seconds(60))
        } catch {
            for p in nodes { p.stop() }
            throw error
        }
        return nodes
    }

    /// Tells every node but the first to connect to the first (`net_kernel:connect_node/1`);
    /// global's connect_all meshes the rest.
    static func connectToFirst(_ me: Process, _ nodes: [RemoteWorkloads.Peer]) async throws {
        let seed = Term.atom(Atom(nodes[0].name))
        for p in nodes.dropFirst() {
            _ = try await p.spawn(me, parley: "connect", erlang: ("net_kernel", "connect_node", [seed]), args: seed)
        }
    }

    /// Waits for `count` messages `{tag, ...}`.
    static func expect(_ me: Process, _ tag: String, count: Int, within limit: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + limit
        for _ in 0..<count {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw ValidationErrorText("cluster bench: \(tag) did not come in time") }
            let m = try await me.receive(Term.self, after: left,
                                         where: { if case .tuple(let t) = $0 { return t.first == .atom(Atom(tag)) } else { return false } })
            if m == nil { throw ValidationErrorText("cluster bench: \(count) \(tag) messages did not come within \(limit)") }
        }
    }

    // MARK: The far ends on a Parley node (the Erlang ones are in RemoteWorkloads.erlangSource)

    static func registerSpawnables() {
        Distribution.register(spawnable: "connect") { _, args in
            guard case .atom(let seed) = args else { return }
            try await Distribution.connect(seed.name)
        }
        Distribution.register(spawnable: "mesh-watch") { me, args in
            // {Expected, ReplyTo}: says ready, then meshed once it sees Expected visible nodes.
            guard case .tuple(let a) = args, a.count == 2, let expected = a[0].intValue, case .pid(let to) = a[1] else { return }
            Distribution.monitorNodes(me.pid)
            defer { Distribution.monitorNodes(me.pid, false) }
            me.send(Term.tuple([.atom("ready"), .atom(Atom(Distribution.nodeName))]), to: to)
            while LocalNode.default.peers.filter({ !$0.isHidden }).count < expected { _ = try await me.receive(Term.self) }
            me.send(Term.tuple([.atom("meshed"), .atom(Atom(Distribution.nodeName))]), to: to)
        }
        Distribution.register(spawnable: "down-watch") { me, args in
            // {Victim, ReplyTo}: waits until the victim is connected (meshed), says ready,
            // then down at its nodedown.
            guard case .tuple(let a) = args, a.count == 2, case .atom(let victim) = a[0], case .pid(let to) = a[1] else { return }
            Distribution.monitorNodes(me.pid)
            defer { Distribution.monitorNodes(me.pid, false) }
            while !Distribution.nodes.contains(victim.name) { _ = try await me.receive(Term.self, after: .milliseconds(10)) }
            me.send(Term.tuple([.atom("ready")]), to: to)
            while true {
                let m = try await me.receive(Term.self)
                if case .tuple(let t) = m, t.count == 2, t[0] == .atom("nodedown"), t[1] == .atom(victim) { break }
            }
            me.send(Term.tuple([.atom("down")]), to: to)
        }
        Distribution.register(spawnable: "registry-bench") { me, args in
            // {K, Lookups, Calls, Victim, ReplyTo} on a `parley node --registry`: waits for 4
            // members, registers K counters by name, looks names up, calls some by name;
            // {registry, RegisterNs, LookupNs, CallNs}; then {watching} and, once every
            // worker of Victim runs elsewhere, {restarted}.
            guard case .tuple(let a) = args, a.count == 5, let k = a[0].intValue, let lookups = a[1].intValue,
                  let calls = a[2].intValue, case .atom(let victim) = a[3], case .pid(let to) = a[4] else { return }
            let registry = DistributedRegistry(ClusterWorkloads.registryName)
            while registry.members.count < 4 { try await me.sleep(for: .milliseconds(5)) }
            let names = (0..<k).map { "bench-\($0)" }
            let t0 = MonotonicClock.now
            for n in names { try await registry.registerName(n, start: "counter") }
            let regNs = MonotonicClock.now - t0
            var found = 0
            let t1 = MonotonicClock.now
            for j in 0..<lookups where registry.lookup(names[j % k]) != nil { found += 1 }
            let lookupNs = MonotonicClock.now - t1
            guard found == lookups else { return }
            let t2 = MonotonicClock.now
            for j in 0..<calls { _ = try await registry.call(names[j % k], Term.atom("bump")) }
            let callNs = MonotonicClock.now - t2
            me.send(Term.tuple([.atom("registry"), .integer(Int(regNs)), .integer(Int(lookupNs)), .integer(Int(callNs))]), to: to)
            let onVictim = names.filter { registry.lookup($0)?.nodeName == victim.name }
            me.send(Term.tuple([.atom("watching")]), to: to)
            while !onVictim.allSatisfy({ n in registry.lookup(n).map { $0.nodeName != victim.name } ?? false }) {
                try await me.sleep(for: .milliseconds(1))
            }
            me.send(Term.tuple([.atom("restarted")]), to: to)
        }
        Distribution.register(spawnable: "registry-scale") { me, args in
            // {K, ReplyTo} on a `parley node --registry`: waits for 3 members, registers K
            // counters (32 in flight): {registered, Ns}. On {joining, Node}: once every name
            // the ring gives Node among the 4 members runs there, {moved, Ns, Count}. On
            // {killing, Node}: once none runs there, {restarted, Ns, Count}.
            guard case .tuple(let a) = args, a.count == 2, let k = a[0].intValue, case .pid(let to) = a[1] else { return }
            let registry = DistributedRegistry(ClusterWorkloads.registryName)
            while registry.members.count < 3 { try await me.sleep(for: .milliseconds(5)) }
            let names = (0..<k).map { "scale-\($0)" }
            let t0 = MonotonicClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                var pending = names[...]
                for _ in 0..<32 { if let n = pending.popFirst() { group.addTask { _ = try await registry.registerName(n, start: "counter", timeout: .seconds(60)) } } }
                while try await group.next() != nil {
                    if let n = pending.popFirst() { group.addTask { _ = try await registry.registerName(n, start: "counter", timeout: .seconds(60)) } }
                }
            }
            me.send(Term.tuple([.atom("registered"), .integer(Int(MonotonicClock.now - t0))]), to: to)
            func order(_ tag: String) async throws -> String {
                let m = try await me.receive(Term.self, where: { if case .tuple(let t) = $0 { return t.first == .atom(Atom(tag)) } else { return false } })
                guard case .tuple(let t) = m, t.count == 2, case .atom(let node) = t[1] else { return "" }
                return node.name
            }
            let joiner = try await order("joining")
            let t1 = MonotonicClock.now
            while registry.members.count < 4 { try await me.sleep(for: .milliseconds(1)) }
            let ring = HashRing()
            let members = registry.members
            let moving = names.filter { ring.owner(of: $0, among: members) == joiner }
            while !moving.allSatisfy({ registry.lookup($0)?.nodeName == joiner }) { try await me.sleep(for: .milliseconds(1)) }
            me.send(Term.tuple([.atom("moved"), .integer(Int(MonotonicClock.now - t1)), .integer(moving.count)]), to: to)
            let victim = try await order("killing")
            let t2 = MonotonicClock.now
            let lost = names.filter { registry.lookup($0)?.nodeName == victim }
            while !lost.allSatisfy({ n in registry.lookup(n).map { $0.nodeName != victim } ?? false }) { try await me.sleep(for: .milliseconds(1)) }
            me.send(Term.tuple([.atom("restarted"), .integer(Int(MonotonicClock.now - t2)), .integer(lost.count)]), to: to)
        }
        Distribution.register(spawnable: "global-bench") { me, args in
            // {K, Lookups, ReplyTo}: K processes registered one after the other, then
            // Lookups lookups; {global, RegisterNs, LookupNs}.
            guard case .tuple(let a) = args, a.count == 3, let k = a[0].intValue, let lookups = a[1].intValue, case .pid(let to) = a[2] else { return }
            let holders = (0..<k).map { _ in me.spawn { p in _ = try await p.receive() } }
            defer { for h in holders { Process.exit(h, .kill) } }
            let names = (0..<k).map { Term.atom(Atom("bench_name_\($0)")) }
            let t0 = MonotonicClock.now
            for i in 0..<k where try await !Global.register(names[i], holders[i]) {
                me.send(Term.tuple([.atom("global"), .atom("taken"), .integer(i)]), to: to)
                return
            }
            let regNs = MonotonicClock.now - t0
            var found = 0
            let t1 = MonotonicClock.now
            for j in 0..<lookups where Global.whereis(names[j % k]) != nil { found += 1 }
            let lookupNs = MonotonicClock.now - t1
            guard found == lookups else { return }
            me.send(Term.tuple([.atom("global"), .integer(Int(regNs)), .integer(Int(lookupNs))]), to: to)
        }
    }

    static let erlangSource = """
    %% {Expected, ReplyTo}: ready, then meshed once nodes() has Expected nodes.
    mesh_watch(Expected, To) ->
        ok = net_kernel:monitor_nodes(true),
        To ! {ready, node()},
        mesh_wait(Expected, To).
    mesh_wait(Expected, To) ->
        case length(nodes()) >= Expected of
            true -> To ! {meshed, node()};
            false -> receive _ -> mesh_wait(Expected, To) end
        end.
    %% {Victim, ReplyTo}: ready once the victim is connected, then down at its nodedown.
    down_watch(Victim, To) ->
        ok = net_kernel:monitor_nodes(true),
        down_ready(Victim, To).
    down_ready(Victim, To) ->
        case lists:member(Victim, nodes()) of
            true -> To ! {ready}, down_wait(Victim, To);
            false -> receive _ -> ok after 10 -> ok end, down_ready(Victim, To)
        end.
    down_wait(Victim, To) ->
        receive {nodedown, Victim} -> To ! {down}; _ -> down_wait(Victim, To) end.
    %% {K, Lookups, ReplyTo}: K registrations in a row, then Lookups lookups.
    global_bench(K, Lookups, To) ->
        Holders = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, K)],
        Names = list_to_tuple([list_to_atom("bench_name_" ++ integer_to_list(I)) || I <- lists:seq(0, K - 1)]),
        T0 = erlang:monotonic_time(nanosecond),
        lists:foreach(fun({I, P}) -> yes = global:register_name(element(I, Names), P) end,
                      lists:zip(lists:seq(1, K), Holders)),
        T1 = erlang:monotonic_time(nanosecond),
        Found = lookup(Names, K, 0, Lookups, 0),
        T2 = erlang:monotonic_time(nanosecond),
        Lookups = Found,
        [P ! stop || P <- Holders],
        To ! {global, T1 - T0, T2 - T1}.
    %% {K, Conc, ReplyTo}: K processes registered under global names by Conc registrants at
    %% once (registrant W takes names W, W + Conc, ...); {global_scale, Ns}.
    global_scale(K, Conc, To) ->
        Self = self(),
        T0 = erlang:monotonic_time(nanosecond),
        [spawn_link(fun() -> scale_from(W, Conc, K), Self ! {scale_done, W} end) || W <- lists:seq(0, Conc - 1)],
        [receive {scale_done, W} -> ok end || W <- lists:seq(0, Conc - 1)],
        T1 = erlang:monotonic_time(nanosecond),
        To ! {global_scale, T1 - T0}.
    scale_from(I, _, K) when I >= K -> ok;
    scale_from(I, Conc, K) ->
        P = spawn(fun() -> receive stop -> ok end end),
        yes = global:register_name({scale, I}, P),
        scale_from(I + Conc, Conc, K).
    lookup(_, _, N, N, Found) -> Found;
    lookup(Names, K, J, N, Found) ->
        case global:whereis_name(element(J rem K + 1, Names)) of
            undefined -> lookup(Names, K, J + 1, N, Found);
            _ -> lookup(Names, K, J + 1, N, Found + 1)
        end.
    """
}
