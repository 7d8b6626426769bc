import Parley

/// The channel workloads of bench/peers/README.md, shaped as Go's and core.async's
/// peers are: lightweight processes (`go`) parking on channels.
extension Workloads {
    static let channelWorkloads = ["chan-pp", "chan-spsc", "chan-mpmc", "seed-alts-1000", "seed-alts-10000", "chan-pp-callback"]

    // chan-pp: ping-pong over two unbuffered channels (Go: `b <- <-a` in a goroutine).
    static func chanPingPong(n: Int) async throws -> Result {
        let a = Channel<Int>(), b = Channel<Int>()
        go {
            for _ in 0..<n { try await b.send(try await a.receive()!) }
        }
        // The timed side is a go block too, as Go's main goroutine is one.
        let elapsed = go {
            let t0 = MonotonicClock.now
            for i in 0..<n {
                try await a.send(i)
                _ = try await b.receive()
            }
            return MonotonicClock.now - t0
        }
        let ns = try await elapsed.receive()!
        return Result(workload: "chan-pp", value: Double(ns) / Double(n), unit: "ns/roundtrip")
    }

    // chan-pp with callbacks (core.async's put!/take!): no task switch per hop.
    static func chanPingPongCallback(n: Int) async throws -> Result {
        let a = Channel<Int>(), b = Channel<Int>()
        let done = Channel<Void>(buffer: .promise)
        @Sendable func echo() {
            try! a.take { v in
                guard let v else { return }
                try! b.put(v) { _ in echo() }
            }
        }
        @Sendable func ping(_ i: Int) {
            if i == n { _ = done.offer(()); return }
            try! a.put(i) { _ in try! b.take { _ in ping(i + 1) } }
        }
        echo()
        let t0 = MonotonicClock.now
        ping(0)
        _ = try await done.receive()
        a.close()
        return Result(workload: "chan-pp-callback", value: Double(MonotonicClock.now - t0) / Double(n), unit: "ns/roundtrip")
    }

    // chan-spsc: one producer, one consumer, buffer 1024.
    static func chanSPSC(n: Int) async throws -> Result {
        let c = Channel<Int>(buffer: .fixed(1024))
        let t0 = MonotonicClock.now
        go {
            for i in 0..<n { try await c.send(i) }
            c.close()
        }
        var sum = 0
        // `while let` rather than `for try await`: the same loop without an executor check
        // per element (see Chan.AsyncIterator).
        while let v = try await c.receive() { sum &+= v }
        precondition(sum == n * (n - 1) / 2, "chan-spsc: wrong sum")
        return Result(workload: "chan-spsc", value: Double(n) / seconds(since: t0) / 1e6, unit: "M items/s")
    }

    // chan-mpmc: 4 producers, 4 consumers, one channel with buffer 1024.
    static func chanMPMC(producers: Int, consumers: Int, n: Int) async throws -> Result {
        let c = Channel<Int>(buffer: .fixed(1024))
        let t0 = MonotonicClock.now
        for _ in 0..<producers {
            go { for j in 0..<(n / producers) { try await c.send(j) } }
        }
        var done: [Channel<Int>] = []
        for _ in 0..<consumers {
            done.append(go {
                var got = 0
                for _ in 0..<(n / consumers) { _ = try await c.receive(); got += 1 }
                return got
            })
        }
        var total = 0
        for d in done { total += try await d.receive() ?? 0 }
        precondition(total == n, "chan-mpmc: lost values")
        return Result(workload: "chan-mpmc", value: Double(n) / seconds(since: t0) / 1e6, unit: "M items/s")
    }

    // The seed's core.async example: n unbuffered channels, a go block puts "hi" on each,
    // the reader selects over all of them (alts) until it has read n values.
    static func seedAlts(_ name: String, n: Int) async throws -> Result {
        let chans = (0..<n).map { _ in Channel<String>() }
        let t0 = MonotonicClock.now
        for c in chans { go { try await c.send("hi") } }
        for _ in 0..<n {
            guard let (v, _) = try await alts(chans), v == "hi" else { preconditionFailure("seed-alts: wrong value") }
        }
        return Result(workload: name, value: seconds(since: t0) * 1000, unit: "ms")
    }
}
