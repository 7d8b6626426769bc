import Parley
import Testing
import ParleyTestSupport

/// A call to a process of this OS process, as gen.erl's `do_call` makes it: monitor the
/// server, send, and wait for the reply, the monitor's DOWN or the timeout. The caller waits
/// on its reply slot rather than scanning its mailbox, so these check the rules the
/// mailbox-scanning receive used to give for free. Each rule was checked on OTP 25.
@Suite("Gen.call to a local process: the monitor, the caller's other messages, and clean-up", .timeLimit(.minutes(1)))
struct LocalCallTests {
    /// A server that takes calls and never replies.
    static func silent() throws -> Pid {
        try Process.spawn(state: 0) { _, _, _ in .continue }
    }

    // gen.erl: the call's monitor delivers DOWN when the server dies, and do_call exits with
    // its reason at once (erlang:exit(Server, kill) while another process calls it: the call
    // exits with killed straight away, not after its timeout).
    @Test("A server killed during a call ends the call at once with exited(killed), long before its timeout")
    func serverKilledDuringCall() async throws {
        let server = try Self.silent()
        let t0 = ContinuousClock.now
        let outcome = try await Process.run { _ -> String in
            let killer = Process.spawn { _ in
                try await Task.sleep(for: .milliseconds(50))
                Process.exit(server, .kill)
            }
            _ = killer
            do {
                _ = try await Gen.call(server, "hello", timeout: .seconds(30))
                return "replied"
            } catch Gen.CallError.exited(let reason) {
                return "exited \(reason)"
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome == "exited killed")
        #expect(ContinuousClock.now - t0 < .seconds(10))
    }

    // Messages that arrive while a process waits in gen_server:call stay in its mailbox,
    // in order, for its next receive (OTP 25: a process that calls a server whose
    // handle_call sends the caller 1, 2, 3 before replying finds [1, 2, 3] afterwards).
    @Test("Messages that arrive during a call wait in the caller's mailbox, in order, for its next receive")
    func messagesDuringCallStay() async throws {
        let got = try await Process.run { me -> [Int] in
            let server = try Process.spawn(state: 0) { _, message, _ in
                if let call = message as? Gen.CallMessage {
                    for i in 1...3 { call.from.pid.send(i) }
                    Gen.reply(call.from, "ok")
                }
                return .continue
            }
            _ = try await Gen.call(server, "go")
            var out: [Int] = []
            for _ in 1...3 { out.append(try await me.receive(Int.self)) }
            #expect(try await me.receive(after: .milliseconds(20)) == nil, "no reply message left over")
            return out
        }
        #expect(got == [1, 2, 3])
    }

    // demonitor after the call: once gen:call returns (reply, timeout or the caller's own
    // death), the server no longer lists the caller in monitored_by.
    @Test("After a call ends (by a reply, a timeout, or the caller's death) the server's monitored_by no longer lists the caller")
    func monitorRemovedAfterCall() async throws {
        let echo = try Process.spawn(state: 0) { _, message, _ in
            if let call = message as? Gen.CallMessage { Gen.reply(call.from, call.request) }
            return .continue
        }
        let server = try Self.silent()
        _ = try await Process.run { _ in try await Gen.call(echo, 1) }
        let timedOut = try await Process.run { _ -> Bool in
            do { _ = try await Gen.call(server, 1, timeout: .milliseconds(20)); return false } catch Gen.CallError.timeout { return true } catch { return false }
        }
        #expect(timedOut)
        let caller = Process.spawn { _ in _ = try await Gen.call(server, 2, timeout: nil) }
        #expect(await eventually { Process.info(server)?.monitoredBy.contains(caller) == true })
        Process.exit(caller, .kill)
        #expect(await eventually { Process.info(server)?.monitoredBy.isEmpty == true })
        #expect(Process.info(echo)?.monitoredBy.isEmpty == true)
        Process.exit(echo, .kill)
        Process.exit(server, .kill)
    }
}
