import Parley
import Testing

/// `receive()` with no pattern: Erlang's `receive Msg -> Msg end`, which takes the oldest
/// message in the mailbox, whatever it is (Erlang Reference Manual, "Receive": the first
/// message in the queue that matches any pattern; a variable matches every message). It has
/// its own path (the message is moved out, no match runs), so these check it against the
/// rules the selective receive keeps.
@Suite("receive() with no pattern")
struct ReceiveAnyTests {
    @Test("takes the oldest message, including those a selective receive passed over, then arrivals in order")
    func oldestFirst() async throws {
        let got = try await Process.run { me in
            me.send("a", to: me.pid)
            me.send(1, to: me.pid)
            me.send("b", to: me.pid)
            // A selective receive takes 1 and leaves "a" and "b" where they were.
            let one = try await me.receive(Int.self)
            var out: [String] = ["\(one)"]
            me.send(2.5, to: me.pid)
            for _ in 0..<3 { out.append("\(try await me.receive())") }
            return out
        }
        #expect(got == ["1", "a", "b", "2.5"])
    }

    @Test("waits for a message sent later, from another process (Erlang: receive suspends until one arrives)")
    func waitsForArrival() async throws {
        let got = try await Process.run { me in
            let parent = me.pid
            let child = me.spawn { p in
                _ = try await p.receive(String.self, where: { $0 == "go" })
                for i in 0..<1000 { p.send(i, to: parent) }
            }
            me.send("go", to: child)
            var sum = 0
            for _ in 0..<1000 { sum += try await me.receive() as! Int }
            return sum
        }
        #expect(got == 999 * 1000 / 2)
    }

    @Test("a process killed while it waits in receive() exits with the kill's reason (Erlang: exit(Pid, kill) ends it as killed)")
    func killedWhileWaiting() async throws {
        let reason = try await Process.run { me in
            let (pid, ref) = me.spawnMonitor { p in _ = try await p.receive() }
            while Process.info(pid)?.status != .waiting { await me.yield() }
            Process.exit(pid, .kill)
            return try await me.receive(DownMessage.self, where: { $0.ref == ref }).reason
        }
        if case .killed = reason {} else { Issue.record("expected killed, got \(reason)") }
    }

    @Test("a bounded mailbox's dropOldest applies before receive() takes: the oldest kept is the first taken")
    func boundedDropOldest() async throws {
        // Whenever the sink runs, each delivery keeps the newest three (MailboxLimit's
        // dropOldest): 3, 4, 5 after the integers, then 4, 5, "go". Drops of messages the
        // sink already moved into its own queue are applied before it takes.
        let kept = try await floodDropOldestSink(capacity: 3, with: 1...5, settle: false) { p in
            let a = try await p.receive() as! Int
            let b = try await p.receive() as! Int
            return [a, b]
        }
        #expect(kept == [4, 5])
    }

    @Test("a bounded mailbox flooded while its owner waits in a selective receive: the receive still finds its message (drops never push its marker below the queue's start)")
    func boundedFloodWhileWaiting() async throws {
        // A receive whose marker went below 0 spun without moving arrivals in; the helper
        // bounds the wait, so such a regression fails instead of hanging the suite.
        let kept = try await floodDropOldestSink(capacity: 10, with: 0..<5000, settle: true, drain: takeAllIntegers)
        // dropOldest keeps the newest ten: "go" and the nine integers before it.
        #expect(kept == Array(4991..<5000))
    }
}
