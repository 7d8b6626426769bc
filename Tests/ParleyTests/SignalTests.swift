import Foundation
import Parley
import Testing

@Suite("Links, monitors and exit signals", .timeLimit(.minutes(1)))
struct SignalTests {
    struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

    @Test("Erlang exit/2: kill cannot be trapped and the process exits with reason killed")
    func killIsUntrappable() async throws {
        let reason = try await Parley.Process.run { me in
            let victim = me.spawn { p in
                p.trapExit = true
                while true { _ = try await p.receive() }
            }
            let ref = me.monitor(victim)
            try await me.sleep(for: .milliseconds(10))
            me.exit(victim, .kill)
            return try await me.down(ref).reason
        }
        #expect(reason.matches(.killed))
    }

    @Test("Erlang: a normal exit does not kill a linked process that doesn't trap exits")
    func normalExitSparesLinked() async throws {
        let alive = try await Parley.Process.run { me in
            let parent = me.pid
            let survivor = me.spawn { p in
                let child = p.spawnLink { _ in }   // exits normal at once
                _ = child
                let v = try await p.receive(String.self)
                p.send(v == "ping", to: parent)
            }
            try await me.sleep(for: .milliseconds(30))
            me.send("ping", to: survivor)
            return try await me.receive(Bool.self, after: .seconds(5))
        }
        #expect(alive == true)
    }

    @Test("Erlang: an abnormal exit kills a linked process that doesn't trap exits, with the same reason")
    func abnormalExitPropagates() async throws {
        let reason = try await Parley.Process.run { me in
            let (parentOfCrash, ref) = me.spawnMonitor { p in
                p.spawnLink { c in
                    _ = try await c.receive(String.self)
                    throw Boom()
                }
                let kids = Parley.Process.info(p.pid)?.links ?? []
                for k in kids { p.send("crash", to: k) }
                _ = try await p.receive()
            }
            _ = parentOfCrash
            return try await me.down(ref).reason
        }
        #expect(reason.description == "error: boom")
    }

    @Test("Erlang: a process that traps exits gets {'EXIT', From, Reason} instead of dying")
    func trapExitMakesMessages() async throws {
        let (from, reason, child) = try await Parley.Process.run { me in
            me.trapExit = true
            let child = me.spawnLink { _ in throw ProcessExit(.custom("bad")) }
            let m = try await me.receive(ExitMessage.self, after: .seconds(5))
            return (m?.from, m?.reason.description, child)
        }
        #expect(from == child)
        #expect(reason == "bad")
    }

    @Test("Erlang exit/2: normal to another non-trapping process is ignored; to itself it exits")
    func exitNormalRules() async throws {
        let (ignored, selfReason) = try await Parley.Process.run { me in
            let target = me.spawn { p in _ = try await p.receive(); }
            me.exit(target, .normal)
            try await me.sleep(for: .milliseconds(20))
            let ignored = target.isAlive
            me.send("stop", to: target)
            let (selfExiter, ref) = me.spawnMonitor { p in
                p.exit(p.pid, .normal)
                _ = try await p.receive()
            }
            _ = selfExiter
            return (ignored, try await me.down(ref).reason)
        }
        #expect(ignored)
        #expect(selfReason.isNormal)
    }

    @Test("Erlang: a link signal carrying kill (from exit(kill)) is trappable, unlike exit(Pid, kill)")
    func linkKillIsTrappable() async throws {
        let reason = try await Parley.Process.run { me in
            me.trapExit = true
            _ = me.spawnLink { _ in throw ProcessExit(.kill) }
            return try await me.receive(ExitMessage.self, after: .seconds(5))?.reason
        }
        #expect(reason?.matches(.kill) == true)
    }

    @Test("Erlang: the exit reason kill from exit(Pid, kill) reaches linked processes as killed")
    func killedPropagatesAsKilled() async throws {
        let reason = try await Parley.Process.run { me in
            me.trapExit = true
            let victim = me.spawnLink { p in _ = try await p.receive() }
            try await me.sleep(for: .milliseconds(10))
            Parley.Process.exit(victim, .kill)
            return try await me.receive(ExitMessage.self, after: .seconds(5))?.reason
        }
        #expect(reason?.matches(.killed) == true)
    }

    @Test("Erlang: monitoring a dead process delivers DOWN with noproc at once")
    func monitorDeadIsNoproc() async throws {
        let reason = try await Parley.Process.run { me in
            let (dead, ref0) = me.spawnMonitor { _ in }
            _ = try await me.down(ref0)
            let ref = me.monitor(dead)
            return try await me.down(ref).reason
        }
        #expect(reason.matches(.noproc))
    }

    @Test("Erlang: DOWN carries the exit reason; a thrown Swift error becomes the reason")
    func downCarriesReason() async throws {
        let reason = try await Parley.Process.run { me in
            let (_, ref) = me.spawnMonitor { _ in throw Boom() }
            return try await me.down(ref).reason
        }
        guard case .error(let e) = reason else { Issue.record("expected error reason, got \(reason)"); return }
        #expect(e is Boom)
    }

    @Test("Erlang: demonitor(Ref, [flush]) removes a DOWN that already arrived")
    func demonitorFlush() async throws {
        let leftover = try await Parley.Process.run { me in
            let (_, ref) = me.spawnMonitor { _ in }
            try await me.sleep(for: .milliseconds(50))  // the DOWN is in the mailbox now
            me.demonitor(ref, flush: true)
            return try await me.receive(DownMessage.self, after: .milliseconds(50))
        }
        #expect(leftover == nil)
    }

    @Test("demonitor before death: no DOWN arrives")
    func demonitorStopsDown() async throws {
        let got = try await Parley.Process.run { me in
            let target = me.spawn { p in _ = try await p.receive() }
            let ref = me.monitor(target)
            #expect(me.demonitor(ref))
            me.send("die", to: target)
            return try await me.receive(DownMessage.self, after: .milliseconds(100))
        }
        #expect(got == nil)
    }

    @Test("Erlang link/1: linking to a dead process raises noproc when not trapping")
    func linkToDeadThrows() async throws {
        let error = try await Parley.Process.run { me -> ProcessError? in
            let (dead, ref) = me.spawnMonitor { _ in }
            _ = try await me.down(ref)
            do { try me.link(dead); return nil } catch let e as ProcessError { return e }
        }
        guard case .noproc = error else { Issue.record("expected noproc, got \(String(describing: error))"); return }
    }

    @Test("Erlang link/1: a trapping process linking to a dead one gets {'EXIT', Pid, noproc}")
    func linkToDeadWhileTrapping() async throws {
        let reason = try await Parley.Process.run { me in
            me.trapExit = true
            let (dead, ref) = me.spawnMonitor { _ in }
            _ = try await me.down(ref)
            try me.link(dead)
            return try await me.receive(ExitMessage.self, after: .seconds(1))?.reason
        }
        #expect(reason?.matches(.noproc) == true)
    }

    @Test("unlink removes the link both ways: a crash no longer propagates")
    func unlinkStopsPropagation() async throws {
        let alive = try await Parley.Process.run { me in
            let child = me.spawnLink { p in
                _ = try await p.receive(String.self)
                throw Boom()
            }
            me.unlink(child)
            me.send("crash", to: child)
            try await me.sleep(for: .milliseconds(50))
            return true
        }
        #expect(alive)
    }

    @Test("A killed process stops at its next receive and its later sends are discarded")
    func killedProcessEffectsDiscarded() async throws {
        let got = try await Parley.Process.run { me in
            let parent = me.pid
            let spinning = Locked(false)
            let victim = me.spawn { p in
                _ = try await p.receive(String.self)
                // Killed while "running" this stretch: the send below must be discarded. It
                // holds its scheduler thread until the kill, so the killer is a plain thread:
                // one that needed a scheduler thread (or a Parley timer) could wait behind
                // another test's job that holds the other one, and both would stall.
                spinning.withLock { $0 = true }
                let t0 = ContinuousClock.now
                while Parley.Process.isAlive(p.pid) && ContinuousClock.now - t0 < .seconds(30) {}
                p.send("after kill", to: parent)
                _ = try await p.receive()
                p.send("unreachable", to: parent)
            }
            me.send("go", to: victim)
            _ = try await offThread {
                let t0 = ContinuousClock.now
                while !spinning.withLock({ $0 }) && ContinuousClock.now - t0 < .seconds(30) { usleep(1000) }
                Parley.Process.exit(victim, .kill)
            }
            return try await me.receive(String.self, after: .milliseconds(200))
        }
        #expect(got == nil)
    }

    @Test("Process.exit from outside with shutdown ends a non-trapping process with shutdown")
    func exitShutdown() async throws {
        let reason = try await Parley.Process.run { me in
            let target = me.spawn { p in _ = try await p.receive() }
            let ref = me.monitor(target)
            Parley.Process.exit(target, .shutdown)
            return try await me.down(ref).reason
        }
        #expect(reason.matches(.shutdown))
    }

    @Test("A callback process killed while idle releases its state and reports killed")
    func killIdleCallback() async throws {
        let reason = try await Parley.Process.run { me in
            let pid = try me.spawn(state: [Int](repeating: 0, count: 1000)) { _, _, _ in .continue }
            let ref = me.monitor(pid)
            Parley.Process.exit(pid, .kill)
            return try await me.down(ref).reason
        }
        #expect(reason.matches(.killed))
    }
}
