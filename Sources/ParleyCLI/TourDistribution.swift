import Foundation
import Synchronization
import Parley
import ParleyDistribution
import ParleyOTP

// Chapter 11: distribution. This process becomes a node, starts a second Parley node (and an
// Erlang node when erl is installed) as OS processes, and sends a message, a monitor and
// GenServer calls across; a peer that stops reading shows the busy limit holding a sender; a
// third node runs inside this OS process (`LocalNode`).

@Sendable func distributionChapter(_ me: Process) async throws {
    let cookie = "tour-\(UInt32.random(in: 0...UInt32.max))"
    var config = Distribution.Configuration(name: "tour_\(getpid())@127.0.0.1", cookie: cookie)
    config.logger.logLevel = .error
    let hadEPMD = (try? await EPMDClient.names()) != nil
    let name = try await Distribution.start(config)
    defer { Task { await Distribution.stop() } }
    print("  Distribution.start(name: \"\(name)\", cookie: ...)   # a hidden node on port \(Distribution.port ?? 0); EPMD: \(hadEPMD ? "the one already running" : "embedded, none was running")")
    let counter = try TourCounterServer().start(name: .local("tour_counter"))
    _ = counter

    // A second Parley node: `parley node`, this same executable.
    let peer = "tour_peer_\(getpid())@127.0.0.1"
    let child = try TourNode.launch(CommandLine.arguments[0], ["node", "--name", peer, "--cookie", cookie])
    defer { child.kill() }
    let t0 = MonotonicClock.now
    guard await TourNode.waitForPing(peer) else { print("  the peer node did not come up"); return }
    print("  started `parley node --name \(peer)`: Node.ping -> :pong after \(ms(since: t0)) ms (an OS process: spawn, EPMD, handshake)")

    let t1 = MonotonicClock.now
    me.send(Term.tuple([.pid(me.pid), .atom("hello")]), to: "echo", on: Node.named(peer))
    let back = try await me.receive(Term.self)
    print("  send({:echo, :\"\(peer)\"}, {self(), :hello})  ->  \(back) came back in \(us(since: t1)) µs")
    let added = try await Gen.call("counter", on: Node.named(peer), Term.tuple([.atom("add"), 5]))
    print("  GenServer.call({:counter, :\"\(peer)\"}, {:add, 5})  ->  \(added)")
    let pong = try await Distribution.spawn(on: peer, "pong")
    // Round trips with a process there. Each reply wakes this process on the connection's I/O
    // thread, which runs it at once (Configuration.runWokenOnIOThread), as a BEAM scheduler
    // runs the process its socket poll wakes: no thread hand-off on either node.
    var thread = ""
    let t3 = MonotonicClock.now
    for i in 0..<1000 {
        me.send(Term.tuple([.pid(me.pid), .integer(i)]), to: pong)
        _ = try await me.receive(Term.self)
        if i == 0 { thread = ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines) }
    }
    print("  1000 round trips {self(), I} -> I with a process there: \(us(since: t3) / 1000) µs each; the replies woke this process on thread \(thread) (the connection's I/O thread: no hand-off)")
    if let info = LocalNode.default.nodeInfo(peer) {
        print("  :net_kernel.node_info(:\"\(peer)\") -> state \(info.state), \(info.isHidden ? "hidden" : "normal"), \(info.address ?? "?"), in \(info.framesIn) frames (\(info.bytesIn) B), out \(info.framesOut) frames (\(info.bytesOut) B)")
    }
    try await busyPortDemo(me, peer: peer, child)
    let ref = me.monitor(pong)
    Distribution.monitorNodes(me.pid)
    print("  Node.spawn(:\"\(peer)\", pong) -> \(pong); Process.monitor(it); :net_kernel.monitor_nodes(true)")
    child.kill()
    let down = try await me.receive(DownMessage.self) { $0.ref == ref }
    let nodedown = try await me.receive(Term.self) { ($0.tupleElements?.first) == .atom("nodedown") }
    print("  kill -9 the peer's OS process:  \(down)")
    print("                                  \(nodedown)")

    // A node as a value: a second node in this same OS process, with its own processes and
    // names, reached over a real connection as any other node.
    let inner = try LocalNode(name: "tour_inner_\(getpid())@127.0.0.1")
    var innerConfig = Distribution.Configuration(name: inner.name, cookie: cookie)
    innerConfig.logger.logLevel = .error
    try await inner.startDistribution(innerConfig)
    _ = try TourCounterServer().start(name: .local("tour_counter"), options: GenServerOptions(node: inner))
    let viaWire = try await Gen.call("tour_counter", on: Node.named(inner.name), Term.tuple([.atom("add"), 7]))
    print("  LocalNode(name: \"\(inner.name)\"): a second node in this OS process, its own `tour_counter`")
    print("    GenServer.call({:tour_counter, :\"\(inner.name)\"}, {:add, 7})  ->  \(viaWire)   (over a loopback connection; this node's own tour_counter is another process: \(Process.whereis("tour_counter") != inner.whereis("tour_counter")))")
    await inner.stopDistribution()
    let innerDown = try await me.receive(Term.self) { ($0.tupleElements?.first) == .atom("nodedown") }
    print("    inner.stopDistribution()  ->  \(innerDown)")

    // An Erlang node, when Erlang/OTP is installed.
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/erl") else {
        print("  (erl is not installed: the Erlang part of this chapter is skipped)")
        return
    }
    let erlName = "tour_erl_\(getpid())@127.0.0.1"
    let erl = try TourNode.launch("/usr/bin/erl", ["-name", erlName, "-setcookie", cookie, "-noshell"])
    defer { erl.kill() }
    let t2 = MonotonicClock.now
    guard await TourNode.waitForPing(erlName) else { print("  the Erlang node did not come up"); return }
    let peerInfo = Distribution.peers.first { $0.name == erlName }
    print("  erl -name \(erlName): Node.ping -> :pong after \(ms(since: t2)) ms; flags \(peerInfo.map { "\($0.flags)" } ?? "?") (OTP 25's mandatory set included)")
    if let peerInfo, peerInfo.flags.contains(.distHeaderAtomCache) {
        print("    both nodes offer DFLAG_DIST_HDR_ATOM_CACHE: each frame lists its atoms in the distribution header, and a node name or '$gen_call' crosses as text once, then as a cache index")
    }
    let gl = me.spawn { io in   // a group leader for rpc: answers io requests
        while true {
            if case .tuple(let t) = try await io.receive(Term.self), t.count == 4, let from = t[1].pidValue {
                io.send(Term.tuple([.atom("io_reply"), t[2], .ok]), to: from)
            }
        }
    }
    func rpc(_ m: String, _ f: String, _ args: [Term]) async throws -> any Sendable {
        try await Gen.call("rex", on: Node.named(erlName), Term.tuple([.atom("call"), .atom(Atom(m)), .atom(Atom(f)), .list(args), .pid(gl)]))
    }
    print("  GenServer.call({:rex, :\"\(erlName)\"}, {:call, :erlang, :system_info, [:otp_release], gl})  ->  \(try await rpc("erlang", "system_info", [.atom("otp_release")]))")
    let fromErlang = try await rpc("gen_server", "call", [.tuple([.atom("tour_counter"), .atom(Atom(name))]), .tuple([.atom("add"), 42])])
    print("  and from Erlang: gen_server:call({tour_counter, '\(name)'}, {add, 42})  ->  \(fromErlang)   (a Parley GenServer)")
    // A call's trace context reaches Erlang in the sequential-trace token (rex spawns the
    // worker that runs the rpc, and a spawned process inherits its spawner's token).
    let (label, _) = try await TourTracing.traced("tour rpc") { try await rpc("seq_trace", "get_token", [.atom("label")]) }
    print("  inside withSpan, with Gen.propagatesContext = true: rpc seq_trace:get_token(label) there  ->  \(label)")
    print("    (the trace context, in the token's label: an Erlang handle_call can read it; a label like it from Erlang parents a Parley span)")
    let erlPid = try await rpc("erlang", "whereis", [.atom("rex")])
    if let rex = (erlPid as? Term)?.pidValue {
        let mref = me.monitor(rex)
        _ = try? await rpc("erlang", "halt", [])
        let d = try await me.receive(DownMessage.self, after: .seconds(10)) { $0.ref == mref }
        print("  Process.monitor(rex); erlang:halt() on that node  ->  \(d.map { "\($0)" } ?? "no DOWN within 10 s")")
    }
    gl.send(Term.atom("stop"))
    Process.exit(gl, .kill)
}

/// The counter Erlang calls in the distribution chapter, and the server the cluster chapter
/// registers globally: `{add, N}` returns the new total.
struct TourCounterServer: GenServer, Sendable {
    var total = 0
    typealias Call = Term
    typealias Reply = Term
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if case .tuple(let t) = request, t.count == 2, t[0] == .atom("add"), let n = t[1].intValue { total += n }
        return .reply(.integer(total))
    }
}

private func ms(since t: UInt64) -> Int { Int((MonotonicClock.now - t) / 1_000_000) }
private func us(since t: UInt64) -> Int { Int((MonotonicClock.now - t) / 1_000) }

/// An OS process running a node for the tour.
/// busy_dist_port: the peer stops reading (SIGSTOP); a thread sending 32 MiB to it is held
/// once `bufferBusyLimit` (1 MiB) is queued instead of filling memory; SIGCONT, and every
/// message arrives in order. Then the same burst from a process with `sendSuspending`,
/// which suspends the process rather than holding its thread.
func busyPortDemo(_ me: Process, peer: String, _ child: TourNode) async throws {
    let n = 2000, size = 16 << 10
    let forward = try await Distribution.spawn(on: peer, "forward", args: .pid(me.pid))
    let payload = Term.binary(Array(repeating: 1, count: size))
    child.signal(SIGSTOP)
    let progress = TourProgress()
    Thread {
        for i in 0..<n {
            forward.send(Term.tuple([.integer(i), payload]))
            progress.value.add(1, ordering: .relaxed)
        }
    }.start()
    // The count once it stops moving (-1 if it never does within 5 s).
    func whenStill(_ count: TourProgress) async throws -> Int {
        var last = -1
        for _ in 0..<100 {
            try await me.sleep(for: .milliseconds(50))
            let now = count.value.load(ordering: .relaxed)
            if now == last && now > 0 { return now }
            last = now
        }
        return -1
    }
    let held = try await whenStill(progress)
    child.signal(SIGCONT)
    // Every message comes back through the peer: whether in the order sent.
    func receiveBack() async throws -> Bool {
        var ordered = true
        for i in 0..<n {
            if try await me.receive(Term.self).tupleElements?.first != .integer(i) { ordered = false }
        }
        return ordered
    }
    let ordered = try await receiveBack()
    let heldText = held < 0 ? "never held" : "held after \(held) (\((held * size) >> 20) MiB, most of it in the kernel's socket buffers)"
    print("  kill -STOP the peer; a thread sends \(n) × 16 KiB (32 MiB) to it: \(heldText)")
    print("    (bufferBusyLimit = 1 MiB: busy_dist_port holds the sender rather than queue the backlog)")
    print("  kill -CONT: all \(n) came back through the peer, \(ordered ? "in order" : "OUT OF ORDER")")

    // The same burst from a process, with sendSuspending: the process is suspended, its
    // thread free for other processes, until the connection drains.
    child.signal(SIGSTOP)
    let sent = TourProgress()
    me.spawn { p in
        for i in 0..<n {
            await p.sendSuspending(Term.tuple([.integer(i), payload]), to: forward)
            sent.value.add(1, ordering: .relaxed)
        }
    }
    let suspended = try await whenStill(sent)
    child.signal(SIGCONT)
    let inOrder = try await receiveBack()
    let suspendedText = suspended < 0 ? "never suspended" : "suspended after \(suspended) (\((suspended * size) >> 20) MiB)"
    print("  again from a process, with `await me.sendSuspending(_:to:)`: \(suspendedText)")
    print("    (as `!` suspends an Erlang process on a busy port: the thread goes on with other processes)")
    print("  kill -CONT: all \(n) came back, \(inOrder ? "in order" : "OUT OF ORDER")")
}

/// A counter a plain thread bumps while the tour watches.
final class TourProgress: Sendable {
    let value = Atomic<Int>(0)
}

final class TourNode: Sendable {
    let process: Foundation.Process
    init(_ process: Foundation.Process) { self.process = process }

    static func launch(_ executable: String, _ arguments: [String]) throws -> TourNode {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return TourNode(p)
    }

    static func waitForPing(_ node: String) async -> Bool {
        for _ in 0..<150 {
            if await Distribution.ping(node, timeout: .seconds(2)) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    func signal(_ sig: Int32) {
        if process.isRunning { Foundation.kill(process.processIdentifier, sig) }
    }

    /// SIGKILL (a child started from a Swift task does not see SIGTERM: its mask blocks it).
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
