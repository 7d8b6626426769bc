import Foundation
import Parley
import ParleyDistribution
import Synchronization

/// remote-pp and remote-tput (bench/peers/README.md): two nodes on this host, two OS
/// processes over loopback TCP. The other node is a `parley node` process (Parley↔Parley) or
/// an Erlang node (Parley↔Erlang, when `erl` is installed).
enum RemoteWorkloads {
    static let names = ["remote-pp", "remote-tput", "remote-pp-erlang", "remote-tput-erlang", "remote-pp-callback", "remote-pp-callback-erlang"]
    static let cookie = "bench-\(UInt64.random(in: 0...UInt64.max))"
    private static let started = Locked(false)
    /// `parley bench --run-woken`: for this node and the Parley peer.
    static let runWoken = Locked(64)
    /// `parley bench --busy-wait` (µs): for this node and the Parley peer.
    static let busyWait = Locked(500)

    static func ensureNode() async throws {
        if started.withLock({ $0 }) { return }
        var c = Distribution.Configuration(name: "parley_bench_\(getpid())@127.0.0.1", cookie: cookie)
        c.logger.logLevel = .critical
        c.runWokenOnIOThread = runWoken.withLock { $0 }
        let spin = busyWait.withLock { $0 }
        c.busyWait = spin > 0 ? .microseconds(spin) : nil
        try await Distribution.start(c)
        started.withLock { $0 = true }
    }

    static func run(_ name: String, me: Process) async throws -> [Workloads.Result] {
        try await ensureNode()
        let erlang = name.hasSuffix("-erlang")
        let peer = erlang ? try await Peer.erlang() : try await Peer.parley()

        defer { peer.stop() }
        let suffix = erlang ? ".parley-erlang" : ""
        if name.hasPrefix("remote-pp-callback") {
            let pong = try await peer.spawn(me, parley: "pong-callback", erlang: ("remote_peer", "pong", []))
            return [Workloads.Result(workload: "remote-pp-callback" + suffix, value: try await pingPongCallback(me, pong), unit: "ns/roundtrip")]
        } else if name.hasPrefix("remote-pp") {
            let pong = try await peer.spawn(me, parley: "pong", erlang: ("remote_peer", "pong", []))

            return [Workloads.Result(workload: "remote-pp" + suffix, value: try await pingPong(me, pong), unit: "ns/roundtrip")]
        } else {
            let n = 1_000_000
            let args: Term = .tuple([.integer(n), .pid(me.pid)])
            let sink = try await peer.spawn(me, parley: "sink", erlang: ("remote_peer", "sink", [.integer(n), .pid(me.pid)]), args: args)
            return [Workloads.Result(workload: "remote-tput" + suffix, value: try await throughput(me, sink, n: n), unit: "M msg/s")]
        }
    }

    /// 100,000 round trips of `{From, I}` → `I`, after 1000 to warm up.
    static func pingPong(_ me: Process, _ pong: Pid) async throws -> Double {
        func rounds(_ k: Int) async throws {
            for i in 0..<k {
                me.send(Term.tuple([.pid(me.pid), .integer(i)]), to: pong)
                _ = try await me.receive(Term.self)
            }
        }
        try await rounds(1000)
        let n = 100_000
        let t0 = MonotonicClock.now
        try await rounds(n)
        let ns = Double(MonotonicClock.now - t0) / Double(n)
        me.send(Term.atom("stop"), to: pong)
        return ns
    }

    /// remote-pp with a callback process pinging: each reply is handled where it arrives
    /// (on the connection's I/O thread), which sends the next ping at once.
    static func pingPongCallback(_ me: Process, _ pong: Pid) async throws -> Double {
        struct Run { var i = 0; var t0: UInt64 = 0 }
        let warm = 1000, n = 100_000
        let reporter = me.pid
        let ping = try Process.spawn(state: Run()) { run, message, p in
            if case .pid? = message as? Term {
                p.send(Term.tuple([.pid(p.pid), .integer(0)]), to: pong)
                return .continue
            }
            run.i += 1
            if run.i == warm { run.t0 = MonotonicClock.now }
            if run.i == warm + n {
                p.send(Double(MonotonicClock.now - run.t0) / Double(n), to: reporter)
                p.send(Term.atom("stop"), to: pong)
                return .stop(.normal)
            }
            p.send(Term.tuple([.pid(p.pid), .integer(run.i)]), to: pong)
            return .continue
        }
        ping.send(Term.pid(pong))
        return try await me.receive(Double.self)
    }

    /// 1,000,000 messages `{msg, <<64 bytes>>}`; the sink answers `done` when it has them all.
    /// The sender suspends while the connection is busy, as Erlang's `!` does
    /// (`sendSuspending`): woken on the connection's I/O thread by the spawn's reply, it
    /// would otherwise queue the whole burst in memory before the connection writes again.
    static func throughput(_ me: Process, _ sink: Pid, n: Int) async throws -> Double {
        let message = Term.tuple([.atom("msg"), .binary(Array(repeating: UInt8(ascii: "x"), count: 64))])
        let t0 = MonotonicClock.now
        for _ in 0..<n { await me.sendSuspending(message, to: sink) }
        _ = try await me.receive(Term.self) { $0 == .atom("done") }
        return Double(n) / (Double(MonotonicClock.now - t0) / 1e9) / 1e6
    }

    /// The other node, as an OS process.
    final class Peer: Sendable {
        let name: String
        let process: Foundation.Process
        let isErlang: Bool

        init(name: String, process: Foundation.Process, isErlang: Bool) {
            self.name = name
            self.process = process
            self.isErlang = isErlang
        }

        static func launch(_ executable: String, _ arguments: [String]) throws -> Foundation.Process {
            let p = Foundation.Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }

        static func parley() async throws -> Peer {
            let peer = try launchParley()
            try await peer.waitUntilUp()
            return peer
        }

        /// A `parley node` process, not yet up (``waitUntilUp()``); `visible` for the cluster
        /// workloads.
        static func launchParley(visible: Bool = false, extra: [String] = []) throws -> Peer {
            let name = "parley_peer_\(getpid())_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1"
            let exe = URL(fileURLWithPath: CommandLine.arguments[0]).path
            let p = try launch(exe, ["node", "--name", name, "--cookie", cookie, "--run-woken", "\(runWoken.withLock { $0 })",
                                     "--busy-wait", "\(busyWait.withLock { $0 })"] + (visible ? ["--visible", "--no-observer-agent"] : []) + extra)
            return Peer(name: name, process: p, isErlang: false)
        }

        static func erlang() async throws -> Peer {
            let peer = try launchErlang()
            try await peer.waitUntilUp()
            return peer
        }

        /// The helper module, compiled once per run.
        private static let compiled = Locked<String?>(nil)

        /// An Erlang node with OTP's defaults (visible, global, net_ticktime 60), not yet up.
        static func launchErlang() throws -> Peer {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/erl") else {
                throw ValidationErrorText("erl is not installed: the Parley↔Erlang workloads need Erlang/OTP")
            }
            let dir = try compiled.withLock { dir -> String in
                if let dir { return dir }
                let d = NSTemporaryDirectory() + "parley-bench-erl-\(getpid())"
                try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
                // The Erlang peers load the module from it while they run: it goes when the
                // bench exits (a C callback, so it names the folder again rather than capture it).
                atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "parley-bench-erl-\(getpid())") }
                try erlangSource.write(toFile: d + "/remote_peer.erl", atomically: true, encoding: .utf8)
                let erlc = try launch("/usr/bin/erlc", ["-o", d, d + "/remote_peer.erl"])
                erlc.waitUntilExit()
                guard erlc.terminationStatus == 0 else { throw ValidationErrorText("erlc failed on the bench's remote_peer.erl") }
                dir = d
                return d
            }
            let name = "erl_peer_\(getpid())_\(UInt32.random(in: 0...UInt32.max))@127.0.0.1"
            // The same emulator flags as bench/peers/erlang/run-erlang uses for its second node.
            let p = try launch("/usr/bin/erl", ["-name", name, "-setcookie", cookie, "-noshell", "-pa", dir,
                                                "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"])
            return Peer(name: name, process: p, isErlang: true)
        }

        func waitUntilUp() async throws {
            for _ in 0..<200 {
                if await Distribution.ping(name, timeout: .seconds(2)) { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw ValidationErrorText("the peer node \(name) did not come up")
        }

        /// Starts the workload's far end: a spawnable on a Parley node, `erlang:spawn(M, F, A)`
        /// through rex on an Erlang node.
        func spawn(_ me: Process, parley fn: String, erlang mfa: (String, String, [Term]), args: Term = .nil) async throws -> Pid {
            if !isErlang { return try await Distribution.spawn(on: name, fn, args: args) }
            let gl = me.spawn { io in
                while true {
                    if case .tuple(let t) = try await io.receive(Term.self), t.count == 4, case .pid(let from) = t[1] {
                        io.send(Term.tuple([.atom("io_reply"), t[2], .ok]), to: from)
                    }
                }
            }
            let call: Term = .tuple([.atom("call"), .atom("erlang"), .atom("spawn"),
                                     .list([.atom(Atom(mfa.0)), .atom(Atom(mfa.1)), .list(mfa.2)]), .pid(gl)])
            guard let pid = (try await Gen.call("rex", on: Node.named(name), call) as? Term)?.pidValue else {
                throw ValidationErrorText("erlang:spawn on \(name) did not return a pid")
            }
            return pid
        }

        func stop() {
            // SIGKILL: a child started from a Swift task inherits a signal mask that blocks SIGTERM.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            Distribution.disconnect(name)
        }
    }

    static let erlangSource = """
    %% The far end of remote-pp and remote-tput on an Erlang node (as bench/peers/erlang/peers.erl),
    %% and of the cluster workloads.
    -module(remote_peer).
    -export([pong/0, sink/2, mesh_watch/2, down_watch/2, global_bench/3, global_scale/3]).
    pong() -> receive {From, V} -> From ! V, pong(); stop -> ok end.
    sink(0, From) -> From ! done;
    sink(N, From) -> receive {msg, _} -> sink(N - 1, From) end.
    """ + "\n" + ClusterWorkloads.erlangSource
}

