// The allocation gate (issue 15): how many heap allocations each hot path makes per message,
// counted by interposing the C allocator (CMallocCounter), compared with the budgets below.
// Counts are stable on a noisy machine where times are not, so CI runs this and fails when
// a count rises:
//
//     swift run -c release parley-allocs            # table, exit 1 over budget
//     swift run -c release parley-allocs --json     # the same, as JSON
//
// Each workload warms up, then counts the allocations of every thread of the OS process over
// `n` messages (the scheduler's threads and timers included) and divides by `n`.
import CMallocCounter
import Glibc
import ParleyOTP

/// The most each workload may allocate per message (per round trip for ping-pongs, per call
/// for genserver-call), with the tolerance below. Lower a budget when a change lowers a count;
/// raising one needs the reason in the commit and in BENCHMARKS.md.
let budgets: [(name: String, budget: Double, unit: String)] = [
    ("ping-pong-callback", 0, "allocs/roundtrip"),
    ("genserver-call", 0, "allocs/call"),
    // `(pid, n)` fits an existential's inline buffer (a Pid is two words): no box at all.
    ("ping-pong", 0, "allocs/roundtrip"),
    ("ring", 0, "allocs/hop"),
    ("fan-in", 0, "allocs/msg"),
    // With parallel sends: a sender's queue, emptied by the owner, grows its chunks again
    // (1, 2, 4 ... 256 messages): a few allocations per drain, 0.00 to 0.01 per message.
    ("fan-in-parallel", 0, "allocs/msg"),
    // A parked channel operation allocates its waiter (a Cell): one per side.
    ("chan-pp", 2, "allocs/roundtrip"),
    // A buffered channel: a value sent and received allocates nothing (the ring of values is
    // the channel's own); a side that has to wait allocates its cell, which with a buffer of
    // 1024 is rare enough to stay under the tolerance.
    ("chan-spsc", 0, "allocs/item"),
    // A process from spawn to exit, waiting in receive for one message: what it allocates
    // (its bytes are the memory per idle process of issue 15). Sequential: the process, the
    // Swift task (two blocks: the task with its first context, 304 B, and its allocator's
    // first slab, 1,016 B), and the mailbox's first chunk once a message comes; the body's
    // frames fit in the slab since a waiting receive parks in a small function of its own
    // (they took a slab of their own before, 7.04–7.23 then). The task's closure captures
    // only the process, which is then its context: no allocation. The rest is the
    // runtime's own bookkeeping while 20,000 tasks start and end: 4.01–4.17 (2026-12-06;
    // 6.01–6.10 before the closure was typed as throwing, which saves the non-throwing
    // `Task.detached`'s reabstraction thunk, and before the body moved into the process).
    // 4.5, not 4.3: a fresh-clone CI run read 4.40 (2026-12-06, 16:10 UTC) with a runtime
    // byte-identical to builds that read 4.08–4.17 here, so the bookkeeping moves with
    // timing beyond the tolerance; the waits around the count ask `isAlive` for the exits
    // (no allocation) rather than `info`.
    ("spawn-idle", 4.5, "allocs/process"),
    // Callback: the process and the mailbox's first chunk. 2.15, not 2.0: 2.01 in most
    // runs, 2.11 in one of ten here (2026-12-06) with the same runtime; what moves with
    // timing was not found (a table rebuild or a run queue's growth inside the window are
    // candidates).
    ("spawn-idle-callback", 2.15, "allocs/process"),
]
/// Allocations the runtime's own threads may make meanwhile (a timer, a log line), per message.
let tolerance = 0.02

struct Count: Sendable {
    let name: String
    let perMessage: Double
    let bytesPerMessage: Double
}

/// Counts allocations while `body` passes `n` messages.
func count(_ name: String, n: Int, _ body: () async throws -> Void) async rethrows -> Count {
    let c0 = parley_malloc_count(), b0 = parley_malloc_bytes()
    try await body()
    let c1 = parley_malloc_count(), b1 = parley_malloc_bytes()
    return Count(name: name, perMessage: Double(c1 - c0) / Double(n), bytesPerMessage: Double(b1 - b0) / Double(n))
}

struct Echo: GenServer {
    typealias Call = Int
    typealias Reply = Int
    mutating func handleCall(_ request: Int, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(request) }
}

struct Ball: Sendable { let left: Int }

func pingPongCallback(_ me: Process, n: Int) async throws {
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
    pinger.send(Ball(left: n))
    _ = try await me.receive(Int.self)
}

func pingPong(_ me: Process, ponger: Pid, n: Int) async throws {
    for i in 0..<n {
        me.send((me.pid, i), to: ponger)
        _ = try await me.receive(Int.self)
    }
}

func ringRounds(_ me: Process, first: Pid, rounds: Int) async throws {
    for r in 0..<rounds {
        me.send(r, to: first)
        _ = try await me.receive(Int.self)
    }
}

func fanIn(_ me: Process, producers: Int, each: Int) async throws {
    let consumer = me.pid
    for _ in 0..<producers {
        me.spawn { p in
            for i in 0..<each {
                p.send(i, to: consumer)
                if i & 4095 == 0 { await p.yield() }
            }
        }
    }
    for _ in 0..<(producers * each) { _ = try await me.receive() }
}

func chanPingPong(n: Int) async throws {
    let a = Channel<Int>(), b = Channel<Int>()
    go { for _ in 0..<n { try await b.send(try await a.receive()!) } }
    let finished = go {
        for i in 0..<n {
            try await a.send(i)
            _ = try await b.receive()
        }
        return true
    }
    _ = try await finished.receive()
}

func chanSPSC(n: Int) async throws {
    let c = Channel<Int>(buffer: .fixed(1024))
    go {
        for i in 0..<n { try await c.send(i) }
        c.close()
    }
    let done = go {
        var sum = 0
        while let v = try await c.receive() { sum &+= v }
        return sum
    }
    _ = try await done.receive()
}

let json = CommandLine.arguments.contains("--json")
/// `--only NAME`: run one workload (with PARLEY_MALLOC_TRACE, to see what its count is made of).
let only: String? = CommandLine.arguments.firstIndex(of: "--only").map { CommandLine.arguments[$0 + 1] }
func wanted(_ name: String) -> Bool { only == nil || only == name }
let n = 200_000
let counts: [Count] = try await Process.run { me in
    var out: [Count] = []

    if wanted("ping-pong-callback") {
        try await pingPongCallback(me, n: 10_000)
        out.append(try await count("ping-pong-callback", n: n) { try await pingPongCallback(me, n: n) })
    }
    if wanted("genserver-call") {
        let server = try Echo().startLink(me)
        for i in 0..<10_000 { _ = try await server.call(i) }
        out.append(try await count("genserver-call", n: n) {
            for i in 0..<n { _ = try await server.call(i) }
        })
        try await server.stop()
    }
    if wanted("ping-pong") {
    let ponger = me.spawn { p in
        while true {
            let (from, v) = try await p.receive((Pid, Int).self)
            if v < 0 { return }
            p.send(v, to: from)
        }
    }
    try await pingPong(me, ponger: ponger, n: 10_000)
    out.append(try await count("ping-pong", n: n) { try await pingPong(me, ponger: ponger, n: n) })
    me.send((me.pid, -1), to: ponger)
    }
    if wanted("ring") {
    var next = me.pid
    let procs = 1000
    for _ in 0..<procs {
        let to = next
        next = me.spawn { p in
            while true {
                let v = try await p.receive(Int.self)
                p.send(v, to: to)
                if v < 0 { return }
            }
        }
    }
    try await ringRounds(me, first: next, rounds: 10)
    out.append(try await count("ring", n: procs * 200) { try await ringRounds(me, first: next, rounds: 200) })
    me.send(-1, to: next)
    _ = try await me.receive(Int.self)
    }
    if wanted("fan-in") {
        try await fanIn(me, producers: 4, each: 10_000)
        out.append(try await count("fan-in", n: 4 * 50_000) { try await fanIn(me, producers: 4, each: 50_000) })
    }
    if wanted("fan-in-parallel") {
        // The same into a process with parallel sends (its senders' queues made once).
        out.append(try await Process.run { p in
            p.enableParallelSend()
            try await fanIn(p, producers: 4, each: 10_000)
            return try await count("fan-in-parallel", n: 4 * 50_000) { try await fanIn(p, producers: 4, each: 50_000) }
        })
    }
    if wanted("spawn-idle") {
        let k = 20_000
        out.append(await count("spawn-idle", n: k) {
            var pids: [Pid] = []
            pids.reserveCapacity(k)
            for _ in 0..<k { pids.append(me.spawn { p in _ = try await p.receive() }) }
            // Every one has reached its receive (a message to each is then taken at once).
            while pids.contains(where: { Process.info($0)?.status != .waiting }) { await me.yield() }
            for p in pids { p.send(0) }
            // Until every one has exited, so that each exit is counted whole (a window that
            // ended while some were still exiting moved the count by a tenth either way).
            while pids.contains(where: { $0.isAlive }) { await me.yield() }
        })
    }
    if wanted("spawn-idle-callback") {
        let k = 20_000
        out.append(try await count("spawn-idle-callback", n: k) {
            var pids: [Pid] = []
            pids.reserveCapacity(k)
            for _ in 0..<k { pids.append(try Process.spawn(state: 0) { _, _, _ in .stop(.normal) }) }
            for p in pids { p.send(0) }
            while pids.contains(where: { $0.isAlive }) { await me.yield() }
        })
    }
    if wanted("chan-pp") {
        try await chanPingPong(n: 10_000)
        out.append(try await count("chan-pp", n: n) { try await chanPingPong(n: n) })
    }
    if wanted("chan-spsc") {
        try await chanSPSC(n: 10_000)
        out.append(try await count("chan-spsc", n: n) { try await chanSPSC(n: n) })
    }
    return out
}

var over: [String] = []
var lines: [String] = []
for c in counts {
    let b = budgets.first { $0.name == c.name }!
    let ok = c.perMessage <= b.budget + tolerance
    if !ok { over.append(c.name) }
    if json {
        lines.append("  {\"workload\": \"\(c.name)\", \"allocs\": \(c.perMessage), \"bytes\": \(c.bytesPerMessage), \"budget\": \(b.budget), \"unit\": \"\(b.unit)\"}")
    } else {
        let mark = ok ? "ok" : "OVER BUDGET"
        lines.append(c.name + String(repeating: " ", count: max(1, 20 - c.name.count))
            + "\(fmt(c.perMessage)) \(b.unit) (budget \(fmt(b.budget)), \(fmt(c.bytesPerMessage)) B)  \(mark)")
    }
}
print(json ? "[\n" + lines.joined(separator: ",\n") + "\n]" : lines.joined(separator: "\n"))
if !over.isEmpty {
    FileHandleStderr.write("parley-allocs: over budget: \(over.joined(separator: ", ")) (budget + \(tolerance) per message)\n")
    exit(1)
}

func fmt(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    return "\(r)"
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
