import ArgumentParser
import Parley
import ParleyObserver

struct Tour: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the talk's demonstrations live, with real numbers.")

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Processes for the last chapter.")
    var million = 1_000_000

    @Flag(help: "Serve the observer (a web dashboard of this node) during the tour, and after it, with the demo tree, until interrupted.")
    var observe = false

    @Option(help: "The observer's port with --observe.")
    var observePort = 4040

    @Option(help: "Run only these chapters (repeatable: --only 12 --only 13).")
    var only: [Int] = []

    func run() async throws {
        try runtime.apply()
        print("""
        Parley tour: BEAM-style processes, OTP behaviours and core.async/Go channels in Swift
        \(Scheduler.shared.count) scheduler threads (like erl +S), reductions budget \(Scheduler.shared.configuration.reductions), node \(Node.localNodeName)

        """)
        var observer: (Observer, Task<Void, any Error>)? = nil
        if observe {
            let o = try Observer(.init(port: observePort))
            observer = (o, Task { try await o.run() })
            print("The observer serves this node while the tour runs: \(await o.url())\n")
        }
        try await chapter("1. spawn, send, receive (the talk's iex example)", spawnSendReceive)
        try await chapter("2. receive blocks until a matching message arrives", blockingReceive)
        try await chapter("3. receive ... after: a timeout", receiveTimeout)
        try await chapter("4. a mailbox fills while its owner ignores it; a bounded one holds", mailboxes)
        try await chapter("5. links and monitors at a crash", linksAndMonitors)
        try await chapter("6. timers on the scheduler: send_after and cancel", timers)
        try await chapter("7. fairness, blocking work and the long-schedule detector", scheduling)
        let n = million
        try await chapter("8. OTP: a supervised tree, a GenServer, a Registry, a Task and an Agent", otpChapter)
        try await chapter("9. CSP channels: the talk's core.async examples, live", channelsChapter)
        try await chapter("10. transducers, combinators (mult, pub/sub, pipeline), and one select over a mailbox and channels", channelsAndProcessesChapter)
        try await chapter("11. distribution: a second Parley node and an Erlang node, as OS processes", distributionChapter)
        try await chapter("12. a cluster that forms itself: gossip between visible nodes, a stopped node found out in under 2 s, an Erlang node meshed by :global, pg groups and Phoenix.PubSub across both", clusterChapter)
        try await chapter("13. named work that survives node loss: a distributed registry on four nodes, a SIGKILLed node's workers back elsewhere from their checkpoints, a graceful stop that hands state over", registryChapter)
        try await chapter("14. the observer: this node's web dashboard, and what its page reads", observerChapter)
        try await chapter("15. a million processes", { me in try await aMillion(me, n) })
        print("The tour is over. `parley bench` runs the peer workloads; see BENCHMARKS.md.")
        if let (o, server) = observer {
            try await ObserverDemo.start()
            print("The observer still serves this node, now running the demo tree: \(await o.url()) (Ctrl-C ends it)")
            await waitForInterrupt()
            server.cancel()
            _ = try? await server.value
        }
    }

    private func chapter(_ title: String, _ body: @escaping @Sendable @concurrent (Process) async throws -> Void) async throws {
        if !only.isEmpty, let number = Int(title.prefix { $0.isNumber }), !only.contains(number) { return }
        print("== \(title)")
        try await Process.run { me in try await body(me) }
        print("")
    }
}

private struct Hello: Sendable { let from: Pid }

@Sendable private func spawnSendReceive(_ me: Process) async throws {
    let iex = me.pid
    print("  iex> iex_process = self()                       # \(iex)")
    print("  iex> spawn(fn -> send(iex_process, {:hello, self()}) end)")
    me.spawn { p in p.send(Hello(from: p.pid), to: iex) }
    let hello = try await me.receive(Hello.self)
    print("  iex> receive do {:hello, pid} -> \"Got hello from #{inspect pid}\" end")
    print("  \"Got hello from \(hello.from)\"")
}

@Sendable private func blockingReceive(_ me: Process) async throws {
    let parent = me.pid
    me.send("unmatched", to: me.pid)
    let t0 = MonotonicClock.now
    let sender = me.spawn { p in
        // Look at the waiting parent, then send what it waits for 50 ms later.
        try await p.sleep(for: .milliseconds(25))
        if let info = Process.info(parent) {
            print("  while it waits: \(parent) status=\(info.status.rawValue), mailbox=\(info.messageQueueLength) (the unmatched message)")
        }
        try await p.sleep(for: .milliseconds(25))
        p.send(Hello(from: p.pid), to: parent)
    }
    let hello = try await me.receive(Hello.self)
    let ms = Double(MonotonicClock.now - t0) / 1e6
    print("  receive waited \(fmt(ms)) ms for {:hello, \(hello.from)} from \(sender); the unmatched message is still queued:",
          try await me.receive(String.self, after: .zero) ?? "none")
}

@Sendable private func receiveTimeout(_ me: Process) async throws {
    let t0 = MonotonicClock.now
    let got = try await me.receive(Hello.self, after: .milliseconds(100))
    print("  receive {:hello, _} after 100 ms -> \(got == nil ? ":timeout" : "message") after \(fmt(Double(MonotonicClock.now - t0) / 1e6)) ms")
    let polled = try await me.receive(after: .zero)
    print("  receive ... after 0 (a poll) on an empty mailbox -> \(polled == nil ? ":timeout" : "message") at once")
}

@Sendable private func mailboxes(_ me: Process) async throws {
    let ignorer = me.spawn { p in try await p.sleep(for: .seconds(3600)) }
    print("  process_info(pid, :messages) before: \(Process.info(ignorer)?.messageQueueLength ?? -1) messages")
    me.send(Hello(from: me.pid), to: ignorer)
    print("  after one send: \(Process.info(ignorer)?.messageQueueLength ?? -1) message, though the owner never called receive")
    await flood(me, ignorer, count: 200_000)
    if let info = Process.info(ignorer) {
        print("  after 200,000 more: \(info.messageQueueLength) messages, about \(info.memory / 1024) KiB: an unbounded mailbox grows (the BEAM's way to run out of memory)")
    }
    me.exit(ignorer, .kill)

    var options = SpawnOptions(label: "bounded")
    options.mailbox = MailboxLimit(capacity: 1000, overflow: .dropOldest)
    let bounded = try me.spawn(options) { p in try await p.sleep(for: .seconds(3600)) }
    await flood(me, bounded, count: 200_000)
    if let info = Process.info(bounded) {
        print("  bounded (1000, drop oldest) after 200,000 sends: \(info.messageQueueLength) messages, \(info.droppedMessages) dropped, \(info.memory / 1024) KiB")
    }
    me.exit(bounded, .kill)

    options.mailbox = MailboxLimit(capacity: 1000, overflow: .exit)
    let strict = try me.spawn(options) { p in try await p.sleep(for: .seconds(3600)) }
    let ref = me.monitor(strict)
    for i in 0..<2000 { me.send(i, to: strict) }
    let down = try await me.receive(DownMessage.self, where: { $0.ref == ref })
    print("  bounded (1000, exit) flooded: DOWN with reason \(down.reason); the runtime carries on")

    // Many senders, one receiver: one queue, then the BEAM's parallel sends (OTP 25, off_heap).
    for parallel in [false, true] {
        let (rate, ordered, shown) = try await collect(me, senders: 4, each: 100_000, parallel: parallel)
        print("  4 senders x 100,000 into one process, \(parallel ? "parallel sends" : "one queue     "): \(String(format: "%5.1f", rate)) M msg/s, each sender's order kept: \(ordered) (Process.info's parallelSend: \(shown))")
    }
    print("  (parallel sends, Process.enableParallelSend(), SpawnOptions.parallelSend or GenServerOptions(parallelSend: true), keep each sender's order, not a causal order between senders: the BEAM's rule for them)")
}

/// `senders` processes send `each` numbered messages to a collector; returns its rate,
/// whether every sender's messages came in the order sent, and what `Process.info` said of
/// its parallel sends.
private func collect(_ me: Process, senders: Int, each: Int, parallel: Bool) async throws -> (Double, Bool, Bool) {
    let parent = me.pid
    var options = SpawnOptions()
    options.parallelSend = parallel
    let collector = try me.spawn(options) { p in
        var next = [Int](repeating: 0, count: senders)
        var ordered = true
        let t0 = MonotonicClock.now
        for _ in 0..<(senders * each) {
            let (s, i) = try await p.receive((Int, Int).self)
            if i != next[s] { ordered = false }
            next[s] = i + 1
        }
        p.send((Double(senders * each) / seconds(since: t0) / 1e6, ordered), to: parent)
    }
    let shown = Process.info(collector)?.parallelSend ?? false
    for s in 0..<senders {
        me.spawn { p in
            for i in 0..<each {
                p.send((s, i), to: collector)
                if i & 4095 == 0 { await p.yield() }
            }
        }
    }
    let (rate, ordered) = try await me.receive((Double, Bool).self)
    return (rate, ordered, shown)
}

@Sendable private func linksAndMonitors(_ me: Process) async throws {
    struct Crash: Error, CustomStringConvertible { var description: String { "division by zero" } }
    me.trapExit = true
    let worker = me.spawnLink { p in
        _ = try await p.receive(String.self)
        throw Crash()
    }
    let watcher = me.spawn { p in
        let ref = p.monitor(worker)
        let down = try await p.receive(DownMessage.self, where: { $0.ref == ref })
        print("  monitor in \(p.pid) got \(down)")
    }
    _ = watcher
    try await me.sleep(for: .milliseconds(10))
    print("  \(me.pid) traps exits and is linked to worker \(worker); \(watcher) monitors it. Crashing the worker:")
    me.send("crash", to: worker)
    let exit = try await me.receive(ExitMessage.self)
    print("  link in \(me.pid) got \(exit)")
    try await me.sleep(for: .milliseconds(10))

    me.trapExit = false
    let normal = me.spawnLink { _ in }
    try await me.sleep(for: .milliseconds(10))
    print("  a linked process \(normal) exiting normal: \(me.pid) is still alive = \(Process.isAlive(me.pid))")

    let stubborn = me.spawn { p in
        p.trapExit = true
        while true { _ = try await p.receive() }
    }
    let ref = me.monitor(stubborn)
    me.exit(stubborn, .kill)
    let down = try await me.receive(DownMessage.self, where: { $0.ref == ref })
    print("  exit(pid, :kill) on a process that traps exits: DOWN reason \(down.reason) (kill can't be trapped)")
    let late = me.monitor(stubborn)
    let noproc = try await me.receive(DownMessage.self, where: { $0.ref == late })
    print("  monitoring it again: DOWN reason \(noproc.reason) at once")
}

@Sendable private func timers(_ me: Process) async throws {
    let t0 = MonotonicClock.now
    me.sendAfter("tick", after: .milliseconds(30))
    let never = me.sendAfter("never", after: .milliseconds(60))
    let left = never.cancel()
    let tick = try await me.receive(String.self)
    print("  send_after 30 ms -> \"\(tick)\" after \(fmt(Double(MonotonicClock.now - t0) / 1e6)) ms; cancel_timer on a 60 ms timer -> \(left.map { "\(fmt(Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1000)) ms left" } ?? "false")")
    let gone = try await me.receive(String.self, after: .milliseconds(80))
    print("  the cancelled timer's message: \(gone ?? "never arrived")")
}

@Sendable private func scheduling(_ me: Process) async throws {
    let parent = me.pid
    let busy = try me.spawn(state: 0) { n, _, _ in n &+= 1; return .continue }
    await flood(me, busy, count: 100_000)
    let t0 = MonotonicClock.now
    let quick = try me.spawn(state: 0) { _, _, p in p.send("quick", to: parent); return .stop(.normal) }
    me.send("go", to: quick)
    _ = try await me.receive(String.self, where: { $0 == "quick" })
    print("  a process with 100,000 queued messages yields every \(Scheduler.shared.configuration.reductions) reductions: another process answered in \(fmt(Double(MonotonicClock.now - t0) / 1e6)) ms")
    me.exit(busy, .kill)

    let t1 = MonotonicClock.now
    let (sleeps, echoes) = try await withBlockingWork(me)
    print("  \(sleeps) blocking calls of 100 ms each ran on the blocking pool while \(echoes) ping-pongs went on: \(fmt(Double(MonotonicClock.now - t1) / 1e6)) ms in all")

    let before = Scheduler.shared.longScheduleReports.total
    let hog = me.spawn { p in
        let t = MonotonicClock.now
        while MonotonicClock.now - t < 150_000_000 {}   // holds a scheduler thread for 150 ms
        _ = p
    }
    let ref = me.monitor(hog)
    _ = try await me.receive(DownMessage.self, where: { $0.ref == ref })
    let reports = Scheduler.shared.longScheduleReports
    if reports.total > before, let last = reports.recent.last {
        print("  a process that spun for 150 ms was reported: \(last) (also logged through swift-log)")
    }
}

private func withBlockingWork(_ me: Process) async throws -> (Int, Int) {
    let parent = me.pid
    let k = Scheduler.shared.count * 2
    for _ in 0..<k {
        me.spawn { p in
            try await p.blocking { blockFor(milliseconds: 100) }
            p.send("slept", to: parent)
        }
    }
    let echo = me.spawn { p in
        while true { let from = try await p.receive(Pid.self); p.send("pong", to: from) }
    }
    var echoes = 0
    let t0 = MonotonicClock.now
    while MonotonicClock.now - t0 < 100_000_000 {
        me.send(me.pid, to: echo)
        _ = try await me.receive(String.self, where: { $0 == "pong" })
        echoes += 1
    }
    for _ in 0..<k { _ = try await me.receive(String.self, where: { $0 == "slept" }) }
    me.exit(echo, .kill)
    return (k, echoes)
}

@Sendable private func aMillion(_ me: Process, _ n: Int) async throws {
    let parent = me.pid
    trimHeap()
    var rss0 = rssBytes()
    var t0 = MonotonicClock.now
    var pids: [Pid] = []
    pids.reserveCapacity(n)
    let handler: @Sendable (inout Int, any Sendable, CallbackProcess) throws -> Next = { _, m, p in
        p.send(m, to: parent)
        return .stop(.normal)
    }
    for i in 0..<n {
        pids.append(try Process.spawn(state: 0, handler: handler))
        if i % yieldEvery == 0 { await me.yield() }
    }
    let spawnS = seconds(since: t0)
    let perProc = (rssBytes() - rss0) / Double(n)
    print("  spawned \(n) callback processes in \(fmt(spawnS * 1000)) ms, \(Int(perProc)) B each; alive now: \(Process.count)")
    t0 = MonotonicClock.now
    await sendToEach(me, 1, pids)
    var sum = 0
    for _ in 0..<n { sum += try await me.receive(Int.self) }
    print("  sent each one a message and got \(sum) replies in \(fmt(seconds(since: t0) * 1000)) ms")
    pids = []

    let m = n / 10
    trimHeap()
    rss0 = rssBytes()
    t0 = MonotonicClock.now
    for i in 0..<m {
        if i % yieldEvery == 0 { await me.yield() }
        pids.append(me.spawn { p in
            _ = try await p.receive()
            p.send(1, to: parent)
        })
    }
    try await me.sleep(for: .milliseconds(100))
    let seqSpawn = seconds(since: t0)
    let seqPer = (rssBytes() - rss0) / Double(m)
    await sendToEach(me, 1, pids)
    for _ in 0..<m { _ = try await me.receive(Int.self) }
    print("  and \(m) sequential processes (each a parked Swift task in receive): \(fmt(seqSpawn * 1000)) ms, \(Int(seqPer)) B each")
}

/// A long loop in a process gives the scheduler back this often, as the BEAM's reductions
/// would make it (sends don't suspend, so a sending loop must yield itself).
private let yieldEvery = 4000

/// Sends 0..<count to `pid`, yielding every `yieldEvery` sends.
private func flood(_ me: Process, _ pid: Pid, count: Int) async {
    for i in 0..<count {
        me.send(i, to: pid)
        if i % yieldEvery == 0 { await me.yield() }
    }
}

/// Sends `message` to each pid, yielding every `yieldEvery` sends.
private func sendToEach(_ me: Process, _ message: some Sendable, _ pids: [Pid]) async {
    for (i, p) in pids.enumerated() {
        me.send(message, to: p)
        if i % yieldEvery == 0 { await me.yield() }
    }
}

private func fmt(_ v: Double) -> String {
    let r = (v * 10).rounded() / 10
    return "\(r)"
}
