import Parley

// Chapters on CSP channels: the talk's core.async examples, run live with Parley's channels,
// then what neither core.async nor Go has: one select over a process's mailbox and channels.

/// Prints a line from any thread, serialised.
private let out = Locked<Void>(())
private func say(_ s: String) { out.withLock { _ in print(s) } }

@Sendable func channelsChapter(_ me: Process) async throws {
    // 1. The unbuffered rendezvous: the writer is blocked until a reader takes the value.
    say("""
      ;; (let [c (chan)]
      ;;   (thread (>!! c "hello") (println "writer unblocked"))
      ;;   (thread (println (<!! c))))
    """)
    do {
        let c = Channel<String>()
        let writer = thread { try c.sendBlocking("hello"); say("  writer unblocked") }
        try await Task.sleep(for: .milliseconds(20))
        say("  (20 ms later the writer still waits: \(c.pending.sends) pending send)")
        let reader = thread { say("  " + (try c.receiveBlocking() ?? "nil")) }
        _ = try await writer.receive(); _ = try await reader.receive()
    }

    // 2. A reader blocked first.
    say("""

      ;; (let [c (chan)]
      ;;   (thread (println (<!! c)) (println "reader unblocked"))
      ;;   (thread (>!! c "hello")))
    """)
    do {
        let c = Channel<String>()
        let reader = thread { say("  " + (try c.receiveBlocking() ?? "nil")); say("  reader unblocked") }
        try await Task.sleep(for: .milliseconds(20))
        say("  (the reader waits: \(c.pending.receives) pending receive)")
        _ = thread { try c.sendBlocking("hello") }
        _ = try await reader.receive()
    }

    // 3. Buffers: fixed (fire and forget until full), sliding and dropping.
    say("\n  ;; buffered, sliding and dropping channels, each of size 3, sent 1...5 without a reader:")
    for policy in [BufferPolicy.fixed(3), .sliding(3), .dropping(3)] {
        let dropped = Locked<[Int]>([])
        let c = Channel<Int>(buffer: policy, onUndelivered: { v in dropped.withLock { $0.append(v) } })
        var accepted: [Int] = []
        for i in 1...5 where c.offer(i) { accepted.append(i) }
        c.close()
        var kept: [Int] = []
        while let v = try await c.receive() { kept.append(v) }
        let d = dropped.withLock { $0 }
        let what = policy == .fixed(3) ? "sends 4 and 5 would wait (offer! refused them)" : "dropped \(d)"
        say("  \(pad("\(policy)", 12)) accepted \(accepted), buffer held \(kept); \(what)")
    }

    // 4. Close with values remaining.
    say("""

      ;; (let [c (chan)]
      ;;   (thread (>!! c "hello"))
      ;;   (close! c)
      ;;   (thread (println (<!! c))))
    """)
    do {
        let c = Channel<String>()
        _ = thread { try c.sendBlocking("hello") }
        while c.pending.sends == 0 { try await Task.sleep(for: .milliseconds(1)) }
        c.close()
        let later = try await c.send("refused")
        say("  " + (try await c.receive() ?? "nil") + "      ;; the send pending at close! is still read")
        say("  \(try await c.receive() as Any)         ;; then end-of-stream; a send after close! returns \(later)")
    }

    // 5. alts over two channels (the official guide's example).
    say("""

      ;; (let [c1 (chan) c2 (chan)]
      ;;   (thread (while true (let [[v ch] (alts!! [c1 c2])] (println "Read" v "from" ch))))
      ;;   (>!! c1 "hi")
      ;;   (>!! c2 "there"))
    """)
    do {
        let c1 = Channel<String>(), c2 = Channel<String>()
        let names = ["c1", "c2"]
        let reader = thread {
            for _ in 0..<2 {
                guard let (v, i) = try altsBlocking([c1, c2]) else { break }
                say("  Read \(v ?? "nil") from \(names[i])")
            }
        }
        try await c1.send("hi")
        try await c2.send("there")
        _ = try await reader.receive()
    }

    // 6. The 1000-channel example, timed next to the talk's figure.
    say("""

      ;; (let [n 1000 cs (repeatedly n chan) begin (System/currentTimeMillis)]
      ;;   (doseq [c cs] (go (>! c "hi")))
      ;;   (dotimes [i n] (let [[v c] (alts!! cs)] (assert (= "hi" v))))
      ;;   (println n "msgs in" (- (System/currentTimeMillis) begin) "ms"))
    """)
    for n in [1000, 10_000] {
        let cs = (0..<n).map { _ in Channel<String>() }
        let t0 = MonotonicClock.now
        for c in cs { go { try await c.send("hi") } }
        for _ in 0..<n {
            guard let (v, _) = try await alts(cs), v == "hi" else { fatalError("seed-alts: wrong value") }
        }
        let ms = Double(MonotonicClock.now - t0) / 1e6
        let note = n == 1000 ? "     (the talk: \"1000 msgs in 194 ms\" with core.async)" : ""
        say("  \(n) msgs in \(Double(Int(ms * 10)) / 10) ms\(note)")
    }

    // 7. Inversion of control: wait for an event in sequential code, not in a callback.
    say("""

      ;; (show page1)
      ;; (<! next-page)   ;; waiting for the user to click the next-page button
      ;; (hide page1)
      ;; (show page2)
    """)
    do {
        let ui = FakeButton()
        let clicks = events(from: ui)
        let flow = go {
            say("  show page1")
            _ = try await clicks.receive()          // parks; no thread is held while it waits
            say("  hide page1")
            say("  show page2")
        }
        try await Task.sleep(for: .milliseconds(30))
        say("  (30 ms later: a click)")
        ui.click()
        _ = try await flow.receive()
    }
}

/// A callback-style event source, as a DOM button is.
private final class FakeButton: Sendable {
    let handlers = Locked<[@Sendable () -> Void]>([])
    func onClick(_ h: @escaping @Sendable () -> Void) { handlers.withLock { $0.append(h) } }
    func click() { for h in handlers.withLock({ $0 }) { h() } }
}

/// The book's `get-events`: turns callbacks into a channel.
private func events(from button: FakeButton) -> Channel<Void> {
    let ch = Channel<Void>(buffer: .sliding(16))
    button.onClick { _ = ch.offer(()) }
    return ch
}

@Sendable func channelsAndProcessesChapter(_ me: Process) async throws {
    // Transforms (transducers) on a channel.
    let words = Chan(buffer: .fixed(8), transform: Transducer<Int, Int>.filter { $0 % 2 == 0 }.then(.map { "#\($0)" }))
    for i in 1...6 { try await words.send(i) }
    words.close()
    var got: [String] = []
    for try await w in words { got.append(w) }
    say("  (chan 8 (comp (filter even?) (map #(str \"#\" %)))) given 1..6 -> \(got)")

    // Combinators: mult (lock-step fan-out), pub/sub by topic, and an ordered pipeline.
    let source = Channel<Int>()
    let m = mult(source)
    let fast = m.tap(Channel<Int>(buffer: .fixed(16))), slow = m.tap(Channel<Int>())
    onto(source, [1, 2, 3])
    let slowReader = go { var got: [Int] = []; while let v = try await slow.receive() { got.append(v); try await Task.sleep(for: .milliseconds(5)) }; return got }
    say("  mult: a fast tap and a slow tap both get \(try await into(fast)) and \(try await slowReader.receive()!) (delivery in lock-step)")
    struct Item: Sendable { let topic: String, text: String }
    let news = Channel<Item>()
    let p = pub(news, topic: { $0.topic })
    let sports = p.sub("sports", Channel<Item>(buffer: .fixed(8)))
    onto(news, [Item(topic: "sports", text: "3-1"), Item(topic: "weather", text: "rain"), Item(topic: "sports", text: "0-0")])
    say("  pub/sub: the sports subscriber got \(try await into(sports).map(\.text)); the weather item had no subscriber and was dropped")
    let squares = Channel<Int>(buffer: .fixed(8))
    pipeline(4, to: squares, from: toChannel(1...8), transform: .map { n in n * n })
    say("  pipeline with parallelism 4: \(try await into(squares)) (input order kept)")

    // A process waits on its mailbox and a channel in one select.
    let jobs = Channel<Int>(buffer: .fixed(8))
    let worker = me.spawn { p in
        var done = 0, mailed = 0
        while true {
            // Two message cases, as two receive clauses, beside a channel case.
            let stop = try await p.select {
                p.onMessage(String.self, where: { $0 == "stop" }) { _ in true }
                p.onMessage(Int.self) { n in mailed += n; return false }
                jobs.onReceive { job in done += job ?? 0; return false }
                SelectCase.timeout(.seconds(1)) { true }
            }
            if stop { break }
        }
        say("  worker \(p.pid): jobs from the channel summed to \(done), numbers from its mailbox to \(mailed); then the mailbox said stop")
    }
    for j in 1...10 { try await jobs.send(j) }
    me.send(100, to: worker)
    me.send(200, to: worker)
    while jobs.count > 0 { try await Task.sleep(for: .milliseconds(1)) }
    let ref = me.monitor(worker)
    me.send("stop", to: worker)
    _ = try await me.receive(DownMessage.self, where: { $0.ref == ref })
    say("  one select over a mailbox (several clauses, as receive) and a channel: neither Erlang's receive nor Go's select can do that")

    // A timeout channel in alts, and a select with a default.
    let idle = Channel<Int>()
    let deadline = timeout(.milliseconds(25))
    let r = try await select(order: .priority) {
        idle.onReceive { _ in "a value" }
        deadline.onReceive { _ in "(timeout 25) closed first" }
    }
    say("  select over an idle channel and a timeout channel: \(r)")
    let polled = try await select {
        idle.onReceive { _ in "value" }
        SelectCase.default { "nothing ready: default" }
    }
    say("  select with a default: \(polled)")
}

