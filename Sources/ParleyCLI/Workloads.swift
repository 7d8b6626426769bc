import ParleyOTP

/// The workloads of bench/peers/README.md, written with Parley processes. Each returns
/// its result lines; the driver prints them as JSON.
enum Workloads {
    struct Result {
        let workload: String
        let value: Double
        let unit: String
        /// Who the figure is for: Parley, or (for the cluster workloads, which run Erlang
        /// nodes the same way beside ours) Erlang.
        var peer = "parley"
    }

    static let all = ["skynet", "genserver-call", "supervisor-restart", "ping-pong", "spawn-idle", "spawn-idle-callback", "ring", "fan-in",
                      "ping-pong-callback", "skynet-callback", "ring-callback", "fan-in-callback", "fan-in-parallel", "fan-in-callback-parallel"] + channelWorkloads + RemoteWorkloads.names
                      + ClusterWorkloads.names

    static func run(_ name: String, me: Process) async throws -> [Result] {
        switch name {
        case "skynet": return [try await skynet(me)]
        case "skynet-callback": return [try await skynetCallback(me)]
        case "genserver-call": return [try await genserverCall(me, n: 1_000_000)]
        case "supervisor-restart": return [try await supervisorRestart(me, n: 10_000)]
        case "ping-pong": return [try await pingPong(me, n: 1_000_000)]
        case "ping-pong-callback": return [try await pingPongCallback(me, n: 1_000_000)]
        case "spawn-idle": return try await spawnIdle(me, n: 1_000_000)
        case "spawn-idle-callback": return try await spawnIdleCallback(me, n: 1_000_000)
        case "ring": return [try await ring(me, procs: 1000, rounds: 1000)]
        case "fan-in": return [try await fanIn(me, producers: 4, each: 1_000_000)]
        case "ring-callback": return [try await ringCallback(me, procs: 1000, rounds: 1000)]
        case "fan-in-callback": return [try await fanInCallback(me, producers: 4, each: 1_000_000)]
        case "fan-in-parallel": return [try await fanIn(me, producers: 4, each: 1_000_000, parallel: true)]
        case "fan-in-callback-parallel": return [try await fanInCallback(me, producers: 4, each: 1_000_000, parallel: true)]
        case "chan-pp": return [try await chanPingPong(n: 1_000_000)]
        case "chan-pp-callback": return [try await chanPingPongCallback(n: 1_000_000)]
        case "chan-spsc": return [try await chanSPSC(n: 10_000_000)]
        case "chan-mpmc": return [try await chanMPMC(producers: 4, consumers: 4, n: 4_000_000)]
        case "seed-alts-1000": return [try await seedAlts(name, n: 1000)]
        case "seed-alts-10000": return [try await seedAlts(name, n: 10_000)]
        case _ where RemoteWorkloads.names.contains(name): return try await RemoteWorkloads.run(name, me: me)
        case _ where ClusterWorkloads.names.contains(name): return try await ClusterWorkloads.run(name, me: me)
        default: throw ValidationErrorText("unknown workload \(name); known: \(all.joined(separator: ", "))")
        }
    }

    // skynet: a tree 10 wide and 6 deep; leaves send their number up, parents sum 10 children.
    static func skynetNode(_ me: Process, parent: Pid, num: Int, size: Int) async throws {
        if size == 1 {
            me.send(num, to: parent)
            return
        }
        let sub = size / 10
        let myself = me.pid
        for i in 0..<10 {
            let n = num + i * sub
            me.spawn { child in try await skynetNode(child, parent: myself, num: n, size: sub) }
        }
        var sum = 0
        for _ in 0..<10 { sum += try await me.receive(Int.self) }
        me.send(sum, to: parent)
    }

    static func skynet(_ me: Process) async throws -> Result {
        let t0 = MonotonicClock.now
        let root = me.pid
        me.spawn { p in try await skynetNode(p, parent: root, num: 0, size: 1_000_000) }
        let sum = try await me.receive(Int.self)
        precondition(sum == 499_999_500_000, "skynet: wrong sum \(sum)")
        return Result(workload: "skynet", value: seconds(since: t0), unit: "s")
    }

    // skynet with callback processes: every node is a handler; leaves answer at once.
    struct SkynetNode { var parent: Pid; var remaining: Int; var sum: Int }
    struct SkynetStart: Sendable { let num: Int; let size: Int }

    static func skynetCallback(_ me: Process) async throws -> Result {
        let t0 = MonotonicClock.now
        let root = try Process.spawn(state: SkynetNode(parent: me.pid, remaining: 10, sum: 0), handler: skynetHandler)
        root.send(SkynetStart(num: 0, size: 1_000_000))
        let sum = try await me.receive(Int.self)
        precondition(sum == 499_999_500_000, "skynet-callback: wrong sum \(sum)")
        return Result(workload: "skynet-callback", value: seconds(since: t0), unit: "s")
    }

    @Sendable static func skynetHandler(_ node: inout SkynetNode, _ message: any Sendable, _ me: CallbackProcess) throws -> Next {
        if let start = message as? SkynetStart {
            if start.size == 1 {
                me.send(start.num, to: node.parent)
                return .stop(.normal)
            }
            let sub = start.size / 10
            for i in 0..<10 {
                let child = try Process.spawn(state: SkynetNode(parent: me.pid, remaining: 10, sum: 0), handler: skynetHandler)
                child.send(SkynetStart(num: start.num + i * sub, size: sub))
            }
            return .continue
        }
        node.sum += message as! Int
        node.remaining -= 1
        if node.remaining == 0 {
            me.send(node.sum, to: node.parent)
            return .stop(.normal)
        }
        return .continue
    }

    // ping-pong: two sequential processes bounce one integer through their mailboxes.
    static func pingPong(_ me: Process, n: Int) async throws -> Result {
        let ponger = me.spawn { p in
            while true {
                let (from, v) = try await p.receive((Pid, Int).self)
                if v < 0 { return }
                p.send(v, to: from)
            }
        }
        let t0 = MonotonicClock.now
        for i in 0..<n {
            me.send((me.pid, i), to: ponger)
            _ = try await me.receive(Int.self)
        }
        let r = Result(workload: "ping-pong", value: Double(MonotonicClock.now - t0) / Double(n), unit: "ns/roundtrip")
        me.send((me.pid, -1), to: ponger)
        return r
    }

    // ping-pong between two callback processes (no Swift task switch per message).
    struct Ball: Sendable { let left: Int }
    static func pingPongCallback(_ me: Process, n: Int) async throws -> Result {
        let done = me.pid
        let ponger = try Process.spawn(state: 0) { _, m, p in
            let (from, ball) = m as! (Pid, Ball)
            p.send(ball, to: from)
            return ball.left == 0 ? .stop(.normal) : .continue
        }
        let pinger = try Process.spawn(state: 0) { _, m, p in
            let ball = m as! Ball
            if ball.left == 0 { p.send(0, to: done); return .stop(.normal) }
            p.send((p.pid, Ball(left: ball.left - 1)), to: ponger)
            return .continue
        }
        let t0 = MonotonicClock.now
        pinger.send(Ball(left: n))
        _ = try await me.receive(Int.self)
        return Result(workload: "ping-pong-callback", value: Double(MonotonicClock.now - t0) / Double(n), unit: "ns/roundtrip")
    }

    // spawn-idle: a million processes that each wait for one message.
    static func spawnIdle(_ me: Process, n: Int) async throws -> [Result] {
        trimHeap()
        let before = rssBytes()
        let parent = me.pid
        var pids: [Pid] = []
        pids.reserveCapacity(n)
        let t0 = MonotonicClock.now
        for _ in 0..<n {
            pids.append(me.spawn { p in
                _ = try await p.receive()
                p.send(true, to: parent)
            })
        }
        let spawn = seconds(since: t0)
        try await me.sleep(for: .milliseconds(200))
        let memory = (rssBytes() - before) / Double(n)
        let t1 = MonotonicClock.now
        for p in pids { me.send(1, to: p) }
        for _ in 0..<n { _ = try await me.receive(Bool.self) }
        let wake = seconds(since: t1)
        return [Result(workload: "spawn-idle.spawn", value: spawn, unit: "s"),
                Result(workload: "spawn-idle.memory", value: memory, unit: "B/process"),
                Result(workload: "spawn-idle.wake", value: wake, unit: "s")]
    }

    static func spawnIdleCallback(_ me: Process, n: Int) async throws -> [Result] {
        trimHeap()
        let before = rssBytes()
        let parent = me.pid
        var pids: [Pid] = []
        pids.reserveCapacity(n)
        let handler: @Sendable (inout Int, any Sendable, CallbackProcess) throws -> Next = { _, _, p in
            p.send(true, to: parent)
            return .stop(.normal)
        }
        let t0 = MonotonicClock.now
        for _ in 0..<n { pids.append(try Process.spawn(state: 0, handler: handler)) }
        let spawn = seconds(since: t0)
        try await me.sleep(for: .milliseconds(200))
        let memory = (rssBytes() - before) / Double(n)
        let t1 = MonotonicClock.now
        for p in pids { me.send(1, to: p) }
        for _ in 0..<n { _ = try await me.receive(Bool.self) }
        let wake = seconds(since: t1)
        return [Result(workload: "spawn-idle-callback.spawn", value: spawn, unit: "s"),
                Result(workload: "spawn-idle-callback.memory", value: memory, unit: "B/process"),
                Result(workload: "spawn-idle-callback.wake", value: wake, unit: "s")]
    }

    // ring: 1000 processes pass a token 1000 times round.
    static func ring(_ me: Process, procs: Int, rounds: Int) async throws -> Result {
        try await ring(me, workload: "ring", procs: procs, rounds: rounds) { to in
            me.spawn { p in
                while true {
                    let v = try await p.receive(Int.self)
                    p.send(v, to: to)
                    if v < 0 { return }
                }
            }
        }
    }

    // ring with callback processes: each member forwards the token to the next; no Swift task
    // switch per hop.
    static func ringCallback(_ me: Process, procs: Int, rounds: Int) async throws -> Result {
        try await ring(me, workload: "ring-callback", procs: procs, rounds: rounds) { to in
            try Process.spawn(state: to) { to, m, p in
                let v = m as! Int
                p.send(v, to: to)
                return v < 0 ? .stop(.normal) : .continue
            }
        }
    }

    /// Builds a ring of `procs` members (`member(next)` starts one that forwards to `next`),
    /// times `rounds` trips of the token, and takes the ring down (a negative token).
    static func ring(_ me: Process, workload: String, procs: Int, rounds: Int, member: (Pid) throws -> Pid) async throws -> Result {
        var next = me.pid
        for _ in 0..<procs { next = try member(next) }
        let first = next
        let t0 = MonotonicClock.now
        for r in 0..<rounds {
            me.send(r, to: first)
            _ = try await me.receive(Int.self)
        }
        let result = Result(workload: workload, value: Double(MonotonicClock.now - t0) / Double(procs * rounds), unit: "ns/hop")
        me.send(-1, to: first)
        _ = try await me.receive(Int.self)
        return result
    }

    // fan-in: 4 producers send a million messages each to one consumer.
    static func fanIn(_ me: Process, producers: Int, each: Int, parallel: Bool = false) async throws -> Result {
        if parallel { me.enableParallelSend() }
        let t0 = MonotonicClock.now
        spawnProducers(me, producers, each: each, to: me.pid)
        for _ in 0..<(producers * each) { _ = try await me.receive() }
        return Result(workload: parallel ? "fan-in-parallel" : "fan-in", value: Double(producers * each) / seconds(since: t0) / 1e6, unit: "M msg/s")
    }

    // fan-in into a callback process: 4 producers (sequential processes, as in fan-in) send a
    // million messages each to a consumer whose handler counts them.
    static func fanInCallback(_ me: Process, producers: Int, each: Int, parallel: Bool = false) async throws -> Result {
        let done = me.pid
        let total = producers * each
        var options = SpawnOptions()
        options.parallelSend = parallel
        let consumer = try Process.spawn(options, state: 0) { count, _, p in
            count += 1
            if count == total { p.send(count, to: done); return .stop(.normal) }
            return .continue
        }
        let t0 = MonotonicClock.now
        spawnProducers(me, producers, each: each, to: consumer)
        _ = try await me.receive(Int.self)
        return Result(workload: parallel ? "fan-in-callback-parallel" : "fan-in-callback", value: Double(total) / seconds(since: t0) / 1e6, unit: "M msg/s")
    }

    /// fan-in's senders: `producers` processes that send `each` integers to `consumer`.
    static func spawnProducers(_ me: Process, _ producers: Int, each: Int, to consumer: Pid) {
        for _ in 0..<producers {
            me.spawn { p in
                for i in 0..<each {
                    p.send(i, to: consumer)
                    if i & 4095 == 0 { await p.yield() }   // as the BEAM preempts a sender after its reductions
                }
            }
        }
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
