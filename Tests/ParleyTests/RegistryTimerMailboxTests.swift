import Parley
import Synchronization
import Testing

@Suite("Registry, timers, mailbox bounds, introspection", .timeLimit(.minutes(1)))
struct RegistryTimerMailboxTests {
    @Test("Erlang register/2: send by name reaches the process; whereis finds it")
    func registerAndSendByName() async throws {
        let name = "reg-\(Tag().id)"
        let got = try await Parley.Process.run { me in
            let parent = me.pid
            let pid = try me.spawn(SpawnOptions(name: name)) { p in
                let v = try await p.receive(String.self)
                p.send(v, to: parent)
            }
            #expect(Parley.Process.whereis(name) == pid)
            #expect(Parley.Process.registered().contains(name))
            try me.send("by name", to: name)
            return try await me.receive(String.self)
        }
        #expect(got == "by name")
    }

    @Test("Erlang: a registered name is freed when its process exits")
    func nameFreedOnExit() async throws {
        let name = "free-\(Tag().id)"
        try await Parley.Process.run { me in
            let (pid, ref) = me.spawnMonitor { p in
                try p.register(name)
                _ = try await p.receive(String.self)
            }
            #expect(await eventually { Parley.Process.whereis(name) == pid })
            me.send("exit", to: pid)
            _ = try await me.down(ref)
            #expect(Parley.Process.whereis(name) == nil)
            // and can be taken again
            let again = try me.spawn(SpawnOptions(name: name)) { p in _ = try await p.receive() }
            #expect(Parley.Process.whereis(name) == again)
            me.send("bye", to: again)
        }
    }

    @Test("Erlang register/2 badarg cases are typed errors: name taken, already registered, dead pid")
    func registerErrors() async throws {
        let name = "taken-\(Tag().id)"
        try await Parley.Process.run { me in
            let owner = try me.spawn(SpawnOptions(name: name)) { p in _ = try await p.receive() }
            #expect(throws: ProcessError.nameTaken(name, by: owner)) {
                try me.spawn(SpawnOptions(name: name)) { _ in }
            }
            #expect(throws: ProcessError.alreadyRegistered(owner, as: name)) {
                try Parley.Process.register(name + "-2", owner)
            }
            let (dead, ref) = me.spawnMonitor { _ in }
            _ = try await me.down(ref)
            #expect(throws: ProcessError.noproc(dead)) { try Parley.Process.register(name + "-3", dead) }
            me.send("bye", to: owner)
        }
    }

    @Test("spawn with link outside any process is a typed error, and nothing is spawned or registered")
    func linkWithoutParent() throws {
        let name = "orphan-\(Tag().id)"
        #expect(throws: ProcessError.linkWithoutParent) {
            try Parley.Process.spawn(SpawnOptions(link: true, name: name)) { _ in }
        }
        #expect(throws: ProcessError.linkWithoutParent) {
            try Parley.Process.spawn(SpawnOptions(link: true), state: 0) { _, _, _ in .continue }
        }
        #expect(Parley.Process.whereis(name) == nil)
    }

    @Test("Erlang send/2: sending to an unregistered name is an error (badarg), not a silent drop")
    func sendToUnknownName() throws {
        #expect(throws: ProcessError.notRegistered("nobody-here")) {
            try Parley.Process.send("x", to: "nobody-here")
        }
        #expect(throws: ProcessError.notRegistered("nobody-here")) { try Parley.Process.unregister("nobody-here") }
    }

    @Test("Erlang send_after: a timer fires exactly once")
    func timerFiresOnce() async throws {
        let count = try await Parley.Process.run { me in
            me.sendAfter(Tick(), after: .milliseconds(20))
            var n = 0
            while try await me.receive(Tick.self, after: .milliseconds(150)) != nil { n += 1 }
            return n
        }
        #expect(count == 1)
    }

    @Test("Erlang cancel_timer: returns time left and the message never arrives; false (nil) after it fired")
    func timerCancel() async throws {
        let (remaining, left, got, late) = try await Parley.Process.run { me in
            let t = me.sendAfter(Tick(), after: .milliseconds(200))
            let remaining = t.remaining
            let left = t.cancel()
            let got = try await me.receive(Tick.self, after: .milliseconds(300))
            let fired = me.sendAfter(Tick(), after: .milliseconds(1))
            _ = try await me.receive(Tick.self, after: .seconds(2))
            return (remaining, left, got != nil, fired.cancel())
        }
        #expect(remaining != nil)
        let l = try #require(left)
        #expect(l > .zero && l <= .milliseconds(200))
        #expect(!got)
        #expect(late == nil)
    }

    @Test("Timers fire in deadline order")
    func timersInOrder() async throws {
        let order = try await Parley.Process.run { me in
            for ms in [60, 20, 40, 10, 50, 30] { me.sendAfter(ms, after: .milliseconds(ms)) }
            var got: [Int] = []
            for _ in 0..<6 { got.append(try await me.receive(Int.self)) }
            return got
        }
        #expect(order == [10, 20, 30, 40, 50, 60])
    }

    @Test("A bounded mailbox with dropNewest holds its first N under a flood")
    func boundedDropNewest() async throws {
        let flooded = Flag()
        let (kept, info) = try await Parley.Process.run { me in
            let parent = me.pid
            var opts = SpawnOptions()
            opts.mailbox = MailboxLimit(capacity: 100, overflow: .dropNewest)
            // The sink can't be told "go" by message (it would be dropped, correctly), so it
            // waits for a flag on the blocking pool.
            let sink = try me.spawn(opts) { p in
                try await p.blocking { flooded.wait() }
                var kept: [Int] = []
                while let v = try await p.receive(Int.self, after: .zero) { kept.append(v) }
                p.send(kept, to: parent)
            }
            for i in 0..<scaled(100_000) { me.send(i, to: sink) }
            let info = Parley.Process.info(sink)
            flooded.set()
            return (try await me.receive([Int].self), info)
        }
        #expect(kept == Array(0..<100))
        #expect(info?.messageQueueLength == 100)
        #expect(info?.droppedMessages == scaled(100_000) - 100)
    }

    @Test("A bounded mailbox with dropOldest keeps the newest N, in order")
    func boundedDropOldest() async throws {
        let n = scaled(50_000)
        let kept = try await floodDropOldestSink(capacity: 10, with: 0..<n, settle: true, drain: takeAllIntegers)
        // "go" itself took a slot, so the 9 newest integers remain.
        #expect(kept == Array((n - 9)..<n))
    }

    @Test("A bounded mailbox with the exit policy ends its owner with mailbox_overflow; the runtime stays up")
    func boundedExit() async throws {
        let reason = try await Parley.Process.run { me in
            var opts = SpawnOptions()
            opts.mailbox = MailboxLimit(capacity: 50, overflow: .exit)
            let sink = try me.spawn(opts) { p in try await p.sleep(for: .seconds(30)) }
            let ref = me.monitor(sink)
            for i in 0..<1000 { me.send(i, to: sink) }
            return try await me.down(ref).reason
        }
        #expect(reason.matches(.mailboxOverflow))
    }

    @Test("The talk's mailbox demo: messages pile up while the owner ignores them (unbounded by default)")
    func unboundedMailboxGrows() async throws {
        let len = try await Parley.Process.run { me in
            let idle = me.spawn { p in try await p.sleep(for: .seconds(30)) }
            for i in 0..<10_000 { me.send(i, to: idle) }
            let len = Parley.Process.info(idle)?.messageQueueLength
            me.exit(idle, .kill)
            return len
        }
        #expect(len == 10_000)
    }

    @Test("Erlang process_info: status, queue length, links, monitors, name, label, kind")
    func introspection() async throws {
        let name = "info-\(Tag().id)"
        try await Parley.Process.run { me in
            var opts = SpawnOptions(link: true, name: name, label: "worker #1")
            opts.trapExit = true
            let pid = try me.spawn(opts) { p in try await p.sleep(for: .seconds(30)) }
            let ref = me.monitor(pid)
            for i in 0..<5 { me.send(i, to: pid) }
            #expect(await eventually { Parley.Process.info(pid)?.status == .waiting })
            let info = try #require(Parley.Process.info(pid))
            #expect(info.kind == .sequential)
            #expect(info.messageQueueLength == 5)
            #expect(info.links == [me.pid])
            #expect(info.monitoredBy == [me.pid])
            #expect(info.registeredName == name)
            #expect(info.label == "worker #1")
            #expect(info.trapExit)
            #expect(info.memory > 0)
            #expect(Parley.Process.list().contains(pid))

            let cb = try me.spawn(state: 0) { n, _, _ in n += 1; return .continue }
            for i in 0..<3 { me.send(i, to: cb) }
            #expect(await eventually { Parley.Process.info(cb)?.messagesHandled == 3 })
            let cbInfo = try #require(Parley.Process.info(cb))
            #expect(cbInfo.kind == .callback)
            #expect(cbInfo.status == .waiting)
            #expect(cbInfo.reductions >= 3)

            me.unlink(pid)
            me.exit(pid, .kill)
            me.exit(cb, .kill)
            _ = try await me.down(ref)
            #expect(Parley.Process.info(pid) == nil)
            #expect(!Parley.Process.list().contains(pid))
        }
    }

    @Test("Pids print as <0.id.serial> and compare by node, id, serial and creation")
    func pidIdentity() {
        let a = Pid(node: .named("a@host"), id: 7, serial: 0, creation: 3)
        let b = Pid(node: .named("a@host"), id: 7, serial: 0, creation: 3)
        let c = Pid(node: .named("a@host"), id: 7, serial: 0, creation: 4)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a != c)
        #expect(!a.isLocal)
        let local = Parley.Process.spawn { _ in }
        #expect(local.description.hasPrefix("<0."))
        #expect(local.description.hasSuffix(".0>"))
        #expect(local.nodeName == "nonode@nohost")
    }
}

struct Tick: Sendable {}

/// A one-shot flag a blocking-pool thread can wait on.
final class Flag: Sendable {
    private let value = Locked<Bool>(false)
    func set() { value.withLock { $0 = true } }
    func wait() { while !value.withLock({ $0 }) { usleepBlocking(1000) } }
}

/// Spawns a process whose mailbox holds `capacity` messages and drops the oldest, that waits
/// in a selective receive for "go" and then sends back what `drain` takes. Sends it `values`
/// and "go" (after `settle`, once it waits) and returns what it sent back, or nil if nothing
/// came within 20 s (so that a receive that never sees "go" fails instead of hanging).
func floodDropOldestSink(capacity: Int, with values: some Sequence<Int> & Sendable, settle: Bool,
                         drain: @escaping @Sendable @concurrent (Process) async throws -> [Int]) async throws -> [Int]? {
    try await Process.run { me in
        let parent = me.pid
        var opts = SpawnOptions()
        opts.mailbox = MailboxLimit(capacity: capacity, overflow: .dropOldest)
        let sink = try me.spawn(opts) { p in
            _ = try await p.receive(String.self, where: { $0 == "go" })
            p.send(try await drain(p), to: parent)
        }
        if settle { try await me.sleep(for: .milliseconds(20)) }
        for i in values { me.send(i, to: sink) }
        me.send("go", to: sink)
        let kept = try await me.receive([Int].self, after: .seconds(20))
        Process.exit(sink, .kill)
        return kept
    }
}

/// Every integer queued now, oldest first (`receive ... after 0` until none is left).
@Sendable @concurrent func takeAllIntegers(_ p: Process) async throws -> [Int] {
    var kept: [Int] = []
    while let v = try await p.receive(Int.self, after: .zero) { kept.append(v) }
    return kept
}
