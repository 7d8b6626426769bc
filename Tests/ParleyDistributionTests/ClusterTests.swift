import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyCluster
@testable import ParleyDistribution
import ParleyRuntime

/// A strategy the test steers: it lists whatever `nodes` holds, every 50 ms.
struct ScriptedStrategy: ClusterStrategy {
    let nodes: Locked<Set<String>>
    func run(_ cluster: ClusterStrategyContext) async throws {
        while true {
            cluster.listed(nodes.withLock { $0 })
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Throws on its first run, then lists `node`.
struct FlakyStrategy: ClusterStrategy {
    let runs = Locked(0)
    let node: String
    struct Failed: Error {}
    func run(_ cluster: ClusterStrategyContext) async throws {
        let n = runs.withLock { $0 += 1; return $0 }
        if n == 1 { throw Failed() }
        cluster.listed([node])
        try await Task.sleep(for: .seconds(3600))
    }
}

/// A free port on loopback (bound, read, released), for UDP (gossip) or TCP (an EPMD).
func freePort(_ type: __socket_type) -> Int {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

extension DistributionTests {
@Suite("Clusters that form themselves (libcluster's strategies)", .serialized)
struct ClusterTests {
    static let haveErl = FileManager.default.isExecutableFile(atPath: "/usr/bin/erl")

    @Test("Gossip heartbeats: OTP 25's bytes for %{node: :\"a@127.0.0.1\"} (ATOM_EXT atoms) are read; ours round-trip plain and encrypted; anything else is dropped (libcluster gossip.ex)")
    func gossipPackets() throws {
        // Captured from a real Elixir 1.14 / OTP 25 node (clusters-research.md §1.1).
        let otp25: [UInt8] = Array("heartbeat::".utf8) + [0x83, 0x74, 0, 0, 0, 1, 0x64, 0, 4] + Array("node".utf8)
            + [0x64, 0, 11] + Array("a@127.0.0.1".utf8)
        #expect(otp25.count == 38)
        #expect(GossipHeartbeat.decode(otp25, secret: nil) == "a@127.0.0.1")
        #expect(GossipHeartbeat.decode(try GossipHeartbeat.encode(node: "p@10.0.0.1", secret: nil), secret: nil) == "p@10.0.0.1")
        let sealed = try GossipHeartbeat.encode(node: "p@10.0.0.1", secret: "s3cret")
        #expect((sealed.count - 16) % 16 == 0)
        #expect(GossipHeartbeat.decode(sealed, secret: "s3cret") == "p@10.0.0.1")
        // A wrong secret, a plaintext heartbeat to a node with a secret, junk: all dropped.
        #expect(GossipHeartbeat.decode(sealed, secret: "other") == nil)
        #expect(GossipHeartbeat.decode(otp25, secret: "s3cret") == nil)
        #expect(GossipHeartbeat.decode([1, 2, 3], secret: nil) == nil)
        #expect(GossipHeartbeat.decode((0..<48).map { _ in UInt8.random(in: 0...255) }, secret: "s3cret") == nil)
        #expect(GossipHeartbeat.decode(Array("heartbeat::".utf8) + [0x83, 0x64, 0, 1, 0x61], secret: nil) == nil)
        #expect(GossipHeartbeat.decode(Array("heartbeat::".utf8) + [0x83, 0x74, 0, 0, 0, 1, 0x64, 0, 4] + Array("node".utf8) + [0x61, 7], secret: nil) == nil)
    }

    @Test("DNS answers: A, AAAA and SRV records, with name compression, are read; a truncated answer is refused")
    func dnsAnswers() {
        var m: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]
        // Question: svc.ns (offset 12), type SRV, class IN.
        m += [3] + Array("svc".utf8) + [2] + Array("ns".utf8) + [0, 0, 33, 0, 1]
        // A 10.1.0.95 for the question's name (pointer to 12).
        m += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 1, 0, 95]
        // AAAA fd00::1.
        m += [0xC0, 12, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        // SRV 10 50 4369 pod-0.svc.ns (target "pod-0" then a pointer to 12).
        let target: [UInt8] = [5] + Array("pod-0".utf8) + [0xC0, 12]
        m += [0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 30, 0, UInt8(6 + target.count), 0, 10, 0, 50, 0x11, 0x11] + target
        let records = DNSMessage.parse(m)
        #expect(records == [.a("10.1.0.95"), .aaaa("fd00::1"), .srv(SRVRecord(priority: 10, weight: 50, port: 4369, target: "pod-0.svc.ns"))])
        #expect(DNSMessage.parse(Array(m.dropLast(3))) == nil)
        #expect(DNSMessage.parse([1, 2, 3]) == nil)
    }

    @Test(".hosts.erlang: one quoted or bare atom per line, comments skipped (net_adm:host_file/0)")
    func hostsFile() {
        #expect(ErlangHostsStrategy.hosts(in: "'h1.example.com'.\n% a comment\nh2.\n\n  'h3' .\nbad line\n") == ["h1.example.com", "h2", "h3"])
    }

    @Test("DNS strategies name nodes as libcluster does: basename@ip for A and AAAA, app@target for SRV (service.namespace.svc.cluster.local.)")
    func dnsStrategyNames() async throws {
        let resolver = DNSResolver(a: { _ in ["10.0.0.5", "10.0.0.6"] }, aaaa: { _ in ["fd00::7"] },
                                   srv: { _ in [SRVRecord(priority: 10, weight: 50, port: 0, target: "myapp-0.myapp.default.svc.cluster.local.")] })
        let strategies: [any ClusterStrategy] = [
            DNSPollStrategy(query: "q", basename: "app", resolver: resolver),
            KubernetesDNSStrategy(service: "s", applicationName: "app", resolver: resolver),
            KubernetesDNSSRVStrategy(service: "myapp", namespace: "default", applicationName: "myapp", clusterDomain: "cluster.local.", resolver: resolver),
        ]
        var lists: [Set<String>] = []
        for s in strategies {
            let reports = Locked<[ClusterReport]>([])
            let context = ClusterStrategyContext(nodeName: "app@10.0.0.5", topology: "t", logger: .init(label: "test")) { r in reports.withLock { $0.append(r) } }
            let task = Task { try await s.run(context) }
            #expect(await eventually { reports.withLock { $0.count } >= 1 })
            task.cancel()
            _ = try? await task.value
            if case .listed(let l, _)? = reports.withLock({ $0.first }) { lists.append(l) }
        }
        // This node (app@10.0.0.5) is left out.
        #expect(lists == [["app@10.0.0.6", "app@fd00::7"], ["app@10.0.0.6"], ["myapp@myapp-0.myapp.default.svc.cluster.local"]])
        #expect(KubernetesDNSSRVStrategy(service: "myapp", namespace: "default", applicationName: "myapp", clusterDomain: "cluster.local.").query == "myapp.default.svc.cluster.local.")
    }

    @Test("A topology connects what its strategy lists, dials a listed node again when it drops, disconnects a node that left the list only after its grace, and restarts a strategy that threw",
          .timeLimit(.minutes(2)))
    func topologyPolicies() async throws {
        try await GlobalCluster.run { cluster in
            let p1 = try await cluster.hidden("tpa"), p2 = try await cluster.hidden("tpb"), p3 = try await cluster.hidden("tpc")
            let list = Locked<Set<String>>([p2.name, p3.name])
            var topology = ClusterTopology(name: "scripted", strategy: ScriptedStrategy(nodes: list))
            topology.disconnect = .afterGrace(.seconds(2))
            topology.departureAllowance = .zero
            topology.reconnectDelay = .milliseconds(50)
            let running = try ParleyCluster.Cluster.start([topology], on: p1)
            defer { running.stop() }
            #expect(await eventually { Set(p1.connectedNodes) == [p2.name, p3.name] })

            // Dropped while listed: dialled again (libcluster #145/#146/#148 did not).
            let events = Locked<[Term]>([])
            let watcher = try p1.spawn(SpawnOptions()) { me in
                while true { let t = try await me.receive(Term.self); events.withLock { $0.append(t) } }
            }
            p1.monitorNodes(watcher)
            defer { Process.exit(watcher, .kill) }
            p1.disconnect(p2.name)
            let down = Term.tuple([.atom("nodedown"), .atom(Atom(p2.name))]), up = Term.tuple([.atom("nodeup"), .atom(Atom(p2.name))])
            #expect(await eventually { events.withLock { e in e.firstIndex(of: down).map { e[$0...].contains(up) } ?? false } })
            #expect(p1.connectedNodes.contains(p2.name))

            // Left the list: still connected while its grace runs (libcluster #86 cut it at once), then gone.
            list.withLock { $0 = [p3.name] }
            #expect(await eventually { (try? await running.snapshot())?.first?.leaving == [p2.name] })
            #expect(p1.connectedNodes.contains(p2.name))
            #expect(await eventually { !p1.connectedNodes.contains(p2.name) })
            #expect(p1.connectedNodes.contains(p3.name))

            // A strategy that throws is started again, as a supervisor restarts a child.
            var flaky = ClusterTopology(name: "flaky", strategy: FlakyStrategy(node: p2.name))
            flaky.restartDelay = .milliseconds(100)
            let second = try ParleyCluster.Cluster.start([flaky], on: p1)
            defer { second.stop() }
            #expect(await eventually { p1.connectedNodes.contains(p2.name) })
            #expect(try await second.snapshot().first?.strategyStarts == 2)
        }
    }

    @Test("On visible nodes (global meshes them), a node connected before it was listed still leaves after its grace when it drops off the list",
          .timeLimit(.minutes(2)))
    func graceOnVisibleNodes() async throws {
        try await GlobalCluster.run { cluster in
            let p1 = try await cluster.parley("vga"), p2 = try await cluster.parley("vgb"), p3 = try await cluster.parley("vgc")
            let list = Locked<Set<String>>([p1.name, p2.name])
            var t = ClusterTopology(name: "scripted", strategy: ScriptedStrategy(nodes: list))
            t.disconnect = .afterGrace(.milliseconds(500))
            t.departureAllowance = .zero
            let a = try ParleyCluster.Cluster.start([t], on: p1)
            defer { a.stop() }
            #expect(await eventually { p1.connectedNodes.contains(p2.name) })
            try await p3.connect(p1.name)
            #expect(await eventually { p2.connectedNodes.contains(p3.name) })
            list.withLock { $0 = [p1.name, p2.name, p3.name] }
            #expect(await eventually { (try? await a.snapshot())?.first?.listed.contains(p3.name) == true })
            list.withLock { $0 = [p1.name, p2.name] }
            #expect(await eventually { (try? await a.snapshot())?.first?.leaving == [p3.name] })
            #expect(await eventually { !p1.connectedNodes.contains(p3.name) })
        }
    }

    @Test("The immediate policy disconnects at once (libcluster's), and never leaves the node alone until its connection dies",
          .timeLimit(.minutes(2)))
    func immediateAndNever() async throws {
        try await GlobalCluster.run { cluster in
            let p1 = try await cluster.hidden("ipa"), p2 = try await cluster.hidden("ipb")
            let list = Locked<Set<String>>([p2.name])
            var now = ClusterTopology(name: "now", strategy: ScriptedStrategy(nodes: list))
            now.disconnect = .immediately
            let a = try ParleyCluster.Cluster.start([now], on: p1)
            #expect(await eventually { p1.connectedNodes.contains(p2.name) })
            list.withLock { $0 = [] }
            #expect(await eventually { !p1.connectedNodes.contains(p2.name) })
            a.stop()

            list.withLock { $0 = [p2.name] }
            var never = ClusterTopology(name: "never", strategy: ScriptedStrategy(nodes: list))
            never.disconnect = .never
            let b = try ParleyCluster.Cluster.start([never], on: p1)
            defer { b.stop() }
            #expect(await eventually { p1.connectedNodes.contains(p2.name) })
            list.withLock { $0 = [] }
            #expect(await eventually { (try? await b.snapshot())?.first?.listed == [] })
            // Several more polls with the empty list: still connected, nothing leaving.
            let starts = try await b.snapshot().first?.strategyStarts
            #expect(await eventually { (try? await b.snapshot())?.first?.leaving == [] })
            #expect(p1.connectedNodes.contains(p2.name))
            #expect(starts == 1)
        }
    }

    @Test("LocalEPMD: every node registered with this host's EPMD is found, also nodes started later (libcluster's looks once)",
          .timeLimit(.minutes(2)))
    func localEPMD() async throws {
        try await GlobalCluster.run { cluster in
            let p1 = try await cluster.hidden("lea")
            let running = try ParleyCluster.Cluster.start([ClusterTopology(name: "local", strategy: LocalEPMDStrategy(interval: .milliseconds(100), epmdPort: cluster.epmd.boundPort))], on: p1)
            defer { running.stop() }
            let p2 = try await cluster.hidden("leb")
            #expect(await eventually { p1.connectedNodes.contains(p2.name) })
        }
    }

    @Test("EPMD that cannot strand a node: Erlang's epmd killed under two running Parley nodes; each registers again (with an EPMD one of them starts) and stays reachable by name",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/epmd")), .timeLimit(.minutes(2)))
    func epmdDies() async throws {
        let port = freePort(SOCK_STREAM)
        let folder = NSTemporaryDirectory() + "parley-epmd-\(getpid())-\(port)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let epmd = try NetnsChild(name: "epmd", arguments: ["/usr/bin/epmd", "-port", "\(port)"], log: folder + "/epmd.log")
        defer { epmd.kill() }
        #expect(await eventually { (try? await EPMDClient.names(epmdPort: port)) != nil })
        let names = [ExternalNode.uniqueName("strand"), ExternalNode.uniqueName("strand")]
        let nodes = try names.enumerated().map { i, name in
            try NetnsChild(name: name, arguments: [Cluster.parleyExecutable, "--name", name, "--cookie", Cluster.cookie, "--epmd-port", "\(port)"],
                           log: folder + "/\(i).log")
        }
        defer { nodes.forEach { $0.kill() } }
        func allRegistered() async -> Bool {
            for n in names where (try? await EPMDClient.lookup(name: String(n.prefix { $0 != "@" }), epmdPort: port)) == nil { return false }
            return true
        }
        #expect(await eventually(within: .seconds(30)) { await allRegistered() })

        epmd.kill()
        #expect(await eventually(within: .seconds(30)) { await allRegistered() })
        // Reachable by name: a node that never met them finds them through the EPMD now on the port.
        let observer = try LocalNode(name: ExternalNode.uniqueName("strandobs"))
        var c = Distribution.Configuration(name: observer.name, cookie: Cluster.cookie)
        c.epmdPort = port
        c.embeddedEPMD = false
        try await observer.startDistribution(c)
        defer { Task { await observer.stopDistribution() } }
        for n in names { #expect(await observer.ping(n)) }
        #expect(nodes.allSatisfy { $0.output.contains("registered again") })
    }

    @Test("Gossip between two Parley nodes (broadcast on loopback, no secret): each finds the other",
          .timeLimit(.minutes(2)))
    func gossipParley() async throws {
        try await GlobalCluster.run { cluster in
            let port = freePort(SOCK_DGRAM)
            let gossip = GossipStrategy(port: port, address: "127.255.255.255", broadcastOnly: true, intervalMilliseconds: 1...200)
            let p1 = try await cluster.parley("gpa"), p2 = try await cluster.parley("gpb")
            let a = try ParleyCluster.Cluster.start([ClusterTopology(name: "gossip", strategy: gossip)], on: p1)
            let b = try ParleyCluster.Cluster.start([ClusterTopology(name: "gossip", strategy: gossip)], on: p2)
            defer { a.stop(); b.stop() }
            #expect(await eventually { p1.connectedNodes.contains(p2.name) })
        }
    }

    @Test("Gossip with a secret between a Parley node and an Erlang node speaking libcluster's wire format: each decrypts the other's heartbeats and they connect; a Parley node with the wrong secret never joins",
          .enabled(if: haveErl), .timeLimit(.minutes(2)))
    func gossipWithErlang() async throws {
        try await GlobalCluster.run { cluster in
            let port = freePort(SOCK_DGRAM)
            let e1 = try await cluster.erlang("erlg", eval: "{ok, _} = gossip_peer:start(\(port), {127,255,255,255}, <<\"s3cret\">>), receive never -> ok end")
            let p1 = try await cluster.parley("gsa")
            let gossip = GossipStrategy(port: port, address: "127.255.255.255", broadcastOnly: true, secret: "s3cret", intervalMilliseconds: 1...200)
            let a = try ParleyCluster.Cluster.start([ClusterTopology(name: "gossip", strategy: gossip)], on: p1)
            defer { a.stop() }
            #expect(await eventually { p1.connectedNodes.contains(e1.name) })
            // The Erlang side decrypted Parley's heartbeat (its own list of what it heard).
            #expect(await eventually { (try? await cluster.rpc(e1.name, "gossip_peer", "heard", []))?.listElements?.contains(.atom(Atom(p1.name))) == true })

            let dropped = { (try? await cluster.rpc(e1.name, "gossip_peer", "dropped", []))?.intValue ?? 0 }
            let before = await dropped()
            let p2 = try await cluster.parley("gsb")
            var wrong = gossip
            wrong.secret = "not the secret"
            let b = try ParleyCluster.Cluster.start([ClusterTopology(name: "gossip", strategy: wrong)], on: p2)
            defer { b.stop() }
            // The Erlang node has dropped several of p2's heartbeats...
            #expect(await eventually { await dropped() >= before + 3 })
            // ...and p2 joined nobody.
            #expect(p2.connectedNodes.isEmpty)
            #expect(try await cluster.rpc(e1.name, "gossip_peer", "heard", []).listElements?.contains(.atom(Atom(p2.name))) == false)
        }
    }
}
}
