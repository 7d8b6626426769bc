import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

#if canImport(Glibc)
import Glibc
#endif

/// The failure detector between Parley nodes, with real OS processes: a stopped node (its
/// socket open, nothing answering) is down within the detector's 1.5 s of silence, where
/// the net tick would take four periods; a killed one is down at once (its socket closes);
/// Erlang nodes are not probed. Timing bounds leave room for a busy machine: the targets
/// (2 s) are measured by `parley bench` (cluster-detect rows).
/// The load tests starve every test running beside them, so they run in a step of their own
/// (`.ci/run`: PARLEY_LOAD_TESTS=1) and not in a plain `swift test`.
enum LoadTests {
    static let enabled = ProcessInfo.processInfo.environment["PARLEY_LOAD_TESTS"] == "1"
}

extension DistributionTests {
/// Runs in a CI step of its own (PARLEY_LOAD_TESTS=1 swift test --filter
/// FailureDetectionTests): its five OS-process nodes, started at the crowded start of a full
/// run on two cores (under the thread sanitizer above all), stalled unrelated suites there.
@Suite("Failure detection", .serialized, .enabled(if: LoadTests.enabled, "runs alone: PARLEY_LOAD_TESTS=1 swift test --filter FailureDetectionTests"))
struct FailureDetectionTests {
    /// Collects this node's cluster events, each with when it came.
    final class Recorder: Sendable {
        let events = Locked<[(ContinuousClock.Instant, ClusterEvent)]>([])
        let task: Task<Void, Never>
        init() {
            let stream = Distribution.clusterEvents()
            let events = self.events
            task = Task { for await e in stream { events.withLock { $0.append((.now, e)) } } }
        }
        deinit { task.cancel() }
        func first(_ match: (ClusterEvent) -> Bool) -> (ContinuousClock.Instant, ClusterEvent)? {
            events.withLock { $0.first { match($0.1) } }
        }
        /// The first nodedown of `node`, and the first suspect.
        func firstDown(of node: String) -> (ContinuousClock.Instant, ClusterEvent)? {
            first { if case .nodeDown(node, _) = $0 { return true } else { return false } }
        }
        func firstSuspect(of node: String) -> (ContinuousClock.Instant, ClusterEvent)? {
            first { if case .suspect(node, _) = $0 { return true } else { return false } }
        }
        func all(for node: String) -> [ClusterEvent] { events.withLock { $0.map(\.1).filter { $0.node == node } } }
    }

    @Test("SIGSTOP: a Parley node that stops answering, its socket open, is suspect and then down (reason: the failure detector) in seconds, not four net ticks")
    func stoppedNodeIsDown() async throws {
        _ = try await Cluster.node()
        let peer = try await ExternalNode.parley()
        defer { peer.kill() }
        let recorder = Recorder()
        // Monitored once it has answered a probe.
        #expect(await eventually { Distribution.router(of: .default)!.failureDetector.monitors(peer.name) })
        let stopped = ContinuousClock.now
        Foundation.kill(peer.process.processIdentifier, SIGSTOP)
        defer { Foundation.kill(peer.process.processIdentifier, SIGCONT) }
        #expect(await eventually(within: .seconds(10)) { recorder.firstDown(of: peer.name) != nil })
        let (suspectAt, _) = try #require(recorder.firstSuspect(of: peer.name))
        let (downAt, down) = try #require(recorder.firstDown(of: peer.name))
        guard case .nodeDown(_, .unresponsive(let silent)) = down else { Issue.record("down for another reason: \(down)"); return }
        #expect(silent >= .milliseconds(1500))
        #expect(suspectAt < downAt)
        // The net tick (4 s here, 60 s by default) would take at least 4 s.
        #expect(downAt - stopped < .seconds(3.5), "down after \(downAt - stopped)")
        #expect(recorder.all(for: peer.name).filter { if case .nodeDown = $0 { return true } else { return false } }.count == 1)
        #expect(!Distribution.nodes.contains(peer.name))
    }

    @Test("monitorNodes(options:) sends {nodesuspect, N, [{silent_ms, Ms}]} and {nodedown, N, [{nodedown_reason, {failure_detector, Ms}}]}")
    func monitorNodesMessages() async throws {
        _ = try await Cluster.node()
        let peer = try await ExternalNode.parley()
        defer { peer.kill() }
        let got = Locked<[Term]>([])
        let watcher = Process.spawn { me in
            Distribution.monitorNodes(me.pid, options: [.nodedownReason, .suspicion])
            defer { Distribution.monitorNodes(me.pid, false, options: [.nodedownReason, .suspicion]) }
            while true {
                let t = try await me.receive(Term.self)
                got.withLock { $0.append(t) }
            }
        }
        defer { Process.exit(watcher, .kill) }
        #expect(await eventually { Distribution.router(of: .default)!.failureDetector.monitors(peer.name) })
        Foundation.kill(peer.process.processIdentifier, SIGSTOP)
        defer { Foundation.kill(peer.process.processIdentifier, SIGCONT) }
        let node = Term.atom(Atom(peer.name))
        #expect(await eventually(within: .seconds(10)) { got.withLock { $0.contains { if case .tuple(let t) = $0 { return t.first == .atom("nodedown") && t[1] == node } else { return false } } } })
        let terms = got.withLock { $0.filter { if case .tuple(let t) = $0 { return t.count == 3 && t[1] == node } else { return false } } }
        guard terms.count == 2, case .tuple(let s) = terms[0], case .tuple(let d) = terms[1] else { Issue.record("\(terms)"); return }
        #expect(s[0] == .atom("nodesuspect"))
        guard case .list(let info) = s[2], case .tuple(let kv) = info.first, kv.first == .atom("silent_ms"), let ms = kv.last?.intValue else {
            Issue.record("suspect info \(s[2])"); return
        }
        #expect(ms >= 600)
        guard case .list(let downInfo) = d[2], case .tuple(let reason) = downInfo.first, reason.first == .atom("nodedown_reason"),
              case .tuple(let fd) = reason[1], fd.first == .atom("failure_detector") else {
            Issue.record("nodedown info \(d[2])"); return
        }
    }

    @Test("SIGKILL: the socket closes, so the node is down at once, with connection_closed, before the detector could decide")
    func killedNodeIsDownAtOnce() async throws {
        _ = try await Cluster.node()
        let peer = try await ExternalNode.parley()
        defer { peer.kill() }
        let recorder = Recorder()
        let killed = ContinuousClock.now
        peer.kill()
        #expect(await eventually(within: .seconds(5)) { recorder.firstDown(of: peer.name) != nil })
        let (at, down) = try #require(recorder.firstDown(of: peer.name))
        #expect(down == .nodeDown(peer.name, reason: .connectionClosed))
        #expect(at - killed < .seconds(1), "down after \(at - killed)")
        #expect(recorder.firstSuspect(of: peer.name) == nil)
    }

    @Test("No false downs under load: three Parley nodes (two OS processes and this one) with twice as many CPU hogs as cores for 8 s declare no node down")
    func noFalseDownsUnderLoad() async throws {
        _ = try await Cluster.node()
        let recorder = Recorder()
        let a = try await ExternalNode.parley(["--events", "yes"])
        defer { a.kill() }
        let b = try await ExternalNode.parley(["--events", "yes", "--connect", a.name])
        defer { b.kill() }
        #expect(await eventually { b.output.withLock { $0.contains("connected to \(a.name)") } })
        let fd = Distribution.router(of: .default)!.failureDetector
        #expect(await eventually { fd.monitors(a.name) && fd.monitors(b.name) })
        // posix_spawn'd, reaped with waitpid (Foundation's Process can spin in waitUntilExit
        // on a cooperative thread), killed on every path.
        var hogs: [NetnsChild] = []
        defer { for h in hogs { h.kill() } }
        for i in 0..<(2 * ProcessInfo.processInfo.activeProcessorCount) {
            hogs.append(try NetnsChild(name: "hog\(i)", arguments: ["/usr/bin/yes"], log: "/dev/null"))
        }
        try await Task.sleep(for: .seconds(8))  // the point is what does not happen meanwhile
        let downs = recorder.events.withLock { $0.map(\.1).filter { if case .nodeDown = $0 { return true } else { return false } } }
        #expect(downs.isEmpty, "false downs here: \(downs)")
        for n in [a, b] {
            let out = n.output.withLock { $0 }
            #expect(!out.contains("nodedown: "), "false downs on \(n.name): \(out)")
        }
        #expect(Distribution.nodes.contains(a.name) && Distribution.nodes.contains(b.name))
    }

    @Test("An Erlang node never answers the detector's probes, so it is never monitored or suspected: the net tick covers it", .enabled(if: Cluster.erlInstalled))
    func erlangIsNotProbed() async throws {
        _ = try await Cluster.node()
        let recorder = Recorder()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let peer = try await ExternalNode.parley()
        defer { peer.kill() }
        // The Parley node is monitored within a few rounds; by then the Erlang node has had
        // the same probes and answered none.
        #expect(await eventually { Distribution.router(of: .default)!.failureDetector.monitors(peer.name) })
        try await Task.sleep(for: .seconds(2))  // longer than suspectAfter: a probed silent node would be suspect
        #expect(!Distribution.router(of: .default)!.failureDetector.monitors(erl.name))
        #expect(recorder.all(for: erl.name).allSatisfy { if case .nodeUp = $0 { return true } else { return false } })
        #expect(Distribution.nodes.contains(erl.name))
        // Erlang is still fine with us: the probes it dropped did it no harm.
        #expect(try await erl.rpc("erlang", "node", []) == .atom(Atom(erl.name)))
    }
}
}
