@testable import Parley
import Testing

/// A process's monitors live in a small array up to `MonitorTable.inlineLimit` entries and
/// in a dictionary past it (a call adds and removes one on every call that waits). Both
/// forms must behave as one table, and monitors as Erlang's do.
@Suite("Monitors: the table behind them, inline and spilled", .timeLimit(.minutes(1)))
struct MonitorTableTests {
    @Test("The table keeps every entry across the inline limit, and after it shrinks back")
    func tableAcrossTheLimit() {
        let process = SequentialProcess(limit: nil, hosted: nil)
        defer { ExitSignals.exit(process, reason: .normal) }
        let owner = process.pid
        let refs = (0..<(MonitorTable.inlineLimit * 3)).map { _ in Reference.make() }
        var t = MonitorTable()
        #expect(t.isEmpty)
        for r in refs { t[r] = owner }
        #expect(t.count == refs.count)
        for r in refs { #expect(t[r] == owner) }
        #expect(t[Reference.make()] == nil)
        // Remove every other one: the rest are still found, the removed ones are not.
        for (i, r) in refs.enumerated() where i % 2 == 0 { #expect(t.removeValue(forKey: r) == owner) }
        for (i, r) in refs.enumerated() { #expect((t[r] != nil) == (i % 2 == 1)) }
        #expect(t.count == refs.count / 2)
        #expect(Set(t.map(\.key)) == Set(refs.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)))
        for (i, r) in refs.enumerated() where i % 2 == 1 { t[r] = nil }
        #expect(t.isEmpty)
        #expect(t.removeValue(forKey: refs[0]) == nil)
        // Back to the inline form: small again, removal from the middle keeps the others.
        for r in refs.prefix(3) { t[r] = owner }
        t[refs[1]] = nil
        #expect(t.count == 2 && t[refs[0]] == owner && t[refs[2]] == owner && t[refs[1]] == nil)
        #expect(t.values.count == 2)
    }

    @Test("Erlang monitor/2: each call makes its own monitor; demonitored ones give no DOWN, each other one gives exactly one")
    func manyMonitorsOfOneProcess() async throws {
        // Checked against OTP 25: 20 monitors of one process, 5 demonitored, then it exits:
        // process_info(P, monitored_by) lists 15 and 15 DOWNs arrive, each with a kept ref.
        let n = MonitorTable.inlineLimit * 2 + 4
        let (listed, downs, extra) = try await Parley.Process.run { me in
            let target = me.spawn { p in
                _ = try await p.receive(String.self)
                throw ProcessExit(.custom("bye"))
            }
            let refs = (0..<n).map { _ in me.monitor(target) }
            for r in refs.prefix(5) { #expect(me.demonitor(r)) }
            let listed = Parley.Process.info(target)?.monitoredBy.count
            me.send("go", to: target)
            var downs: [Reference] = []
            for _ in 0..<(n - 5) {
                let d = try await me.receive(DownMessage.self)
                #expect(d.pid == target)
                #expect(d.reason.matches(.custom("bye")))
                downs.append(d.ref)
            }
            let extra = try await me.receive(DownMessage.self, after: .milliseconds(100))
            #expect(Set(downs) == Set(refs.dropFirst(5)))
            return (listed, downs.count, extra)
        }
        #expect(listed == n - 5)
        #expect(downs == n - 5)
        #expect(extra == nil)
    }

    @Test("Erlang: a watcher of many processes (past the inline limit) gets one DOWN from each, and none for those it demonitored")
    func oneWatcherManyTargets() async throws {
        let n = MonitorTable.inlineLimit * 2 + 3
        let (got, extra) = try await Parley.Process.run { me in
            var targets: [Pid] = []
            var refs: [Reference] = []
            for _ in 0..<n {
                let t = me.spawn { p in _ = try await p.receive(String.self) }
                targets.append(t)
                refs.append(me.monitor(t))
            }
            // Forget the first three, then end every target.
            for r in refs.prefix(3) { #expect(me.demonitor(r)) }
            for t in targets { me.send("go", to: t) }
            var got: Set<Reference> = []
            for _ in 0..<(n - 3) { got.insert(try await me.receive(DownMessage.self).ref) }
            let extra = try await me.receive(DownMessage.self, after: .milliseconds(100))
            #expect(got == Set(refs.dropFirst(3)))
            return (got.count, extra)
        }
        #expect(got == n - 3)
        #expect(extra == nil)
    }
}
