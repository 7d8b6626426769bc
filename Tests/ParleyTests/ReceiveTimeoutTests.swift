import Parley
import Testing

/// `receive ... after T`: the timeout fires T after the receive starts waiting, never
/// earlier, and at most a scheduler tick later (Erlang Reference Manual, "Receive": "if no
/// matching message has arrived within ExprT milliseconds, then BodyT is evaluated"). A
/// process keeps one timer-queue entry and re-arms it lazily (a call's 5 s timeout, then a
/// short receive, then a longer one), so these check that a deadline is its own receive's,
/// whatever an earlier receive or call left queued. The entries left queued are far later
/// than each bound (60 s), so a loaded machine that runs a timeout late by seconds does not
/// look like one that waited for a stale entry.
@Suite("receive after: the timeout's own deadline")
struct ReceiveTimeoutTests {
    @Test("a longer after-timeout never fires at the deadline of an earlier, shorter one that a message satisfied")
    func neverEarlyAfterShorterReceive() async throws {
        let (first, waited) = try await Process.run { me -> (Int?, Duration) in
            // The first receive waits (its timer is armed at +5 s), and a message ends it
            // after 20 ms: its queue entry stays, due at +5 s. The second must wait its own
            // 7 s, not end at that +5 s entry. (5 s, not 1: under the thread sanitizer at
            // the crowded start of a run, the 20 ms sender once took over a second to run.)
            let parent = me.pid
            Process.spawn { _ in
                try await Task.sleep(for: .milliseconds(20))
                parent.send(1)
            }
            let first = try await me.receive(Int.self, after: .seconds(5))
            // The second receive waits 7 s: the entry at +5 s must not end it.
            let t0 = ContinuousClock.now
            let second = try await me.receive(Int.self, after: .seconds(7))
            #expect(second == nil)
            return (first, ContinuousClock.now - t0)
        }
        #expect(first == 1)
        #expect(waited >= .seconds(7), "fired early, at an earlier receive's deadline: \(waited)")
        #expect(waited < .seconds(30), "late: \(waited)")
    }

    @Test("a short after-timeout fires on time while a call's long timeout is queued")
    func shortTimeoutAfterLongOnes() async throws {
        let waited = try await Process.run { me -> Duration in
            // Calls with a 60 s timeout leave a queue entry due in about 60 s.
            let echo = try Process.spawn(state: 0) { _, message, _ in
                if let call = message as? Gen.CallMessage { Gen.reply(call.from, call.request) }
                return .continue
            }
            for i in 0..<100 { _ = try await Gen.call(echo, i, timeout: .seconds(60)) }
            let t0 = ContinuousClock.now
            let got = try await me.receive(after: .milliseconds(50))
            #expect(got == nil)
            return ContinuousClock.now - t0
        }
        #expect(waited >= .milliseconds(50))
        #expect(waited < .seconds(30), "waited for the calls' queued 60 s entry: \(waited)")
    }

    @Test("a call's timeout fires at its own deadline, earlier than a queued entry a satisfied receive left")
    func callTimeoutBeforeQueuedEntry() async throws {
        let (outcome, waited) = try await Process.run { me -> (String, Duration) in
            // A server that never replies.
            let silent = try Process.spawn(state: 0) { _, _, _ in .continue }
            // A receive that waits with a 60 s timeout, ended by a message after 20 ms.
            let parent = me.pid
            Process.spawn { _ in
                try await Task.sleep(for: .milliseconds(20))
                parent.send("x")
            }
            _ = try await me.receive(String.self, after: .seconds(60))
            let t0 = ContinuousClock.now
            do {
                _ = try await Gen.call(silent, "hello", timeout: .milliseconds(300))
                return ("replied", ContinuousClock.now - t0)
            } catch Gen.CallError.timeout {
                return ("timeout", ContinuousClock.now - t0)
            } catch {
                return ("\(error)", ContinuousClock.now - t0)
            }
        }
        #expect(outcome == "timeout")
        #expect(waited >= .milliseconds(300))
        #expect(waited < .seconds(30), "late (at the receive's queued 60 s entry?): \(waited)")
    }
}
