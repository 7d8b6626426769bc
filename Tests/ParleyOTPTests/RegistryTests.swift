import ParleyOTP
import Testing

struct Hello: Sendable { let text: String }
struct Subscribe: Sendable {}

@Suite("Registry (Elixir's Registry semantics)")
struct RegistryTests {
    init() { TestLogging.installed }

    @Test("unique keys: a second register of a live key fails with already_registered and the owner")
    func uniqueKeys() async throws {
        let reg = Registry<String, Int>(keys: .unique)
        try await Process.run { (me: Process) async throws in
            try reg.register(me, key: "k", value: 1)
            let other = try await Process.run { other -> Pid? in
                do throws(RegistryError) { try reg.register(other, key: "k", value: 2); return nil } catch {
                    guard case .alreadyRegistered(_, let owner) = error else { return nil }
                    return owner
                }
            }
            #expect(other == me.pid)
            #expect(reg.lookup("k").map(\.value) == [1])
        }
    }

    @Test("duplicate keys: many processes under one key, in registration order; unregister removes the caller's")
    func duplicateKeys() async throws {
        let reg = Registry<String, String>(keys: .duplicate)
        let a = try await Process.run { me -> Pid in
            try reg.register(me, key: "room", value: "a")
            return me.pid
        }
        _ = a
        try await Process.run { (me: Process) async throws in
            try reg.register(me, key: "room", value: "b")
            try reg.register(me, key: "room", value: "b2")
            #expect(reg.lookup("room").map(\.value) == ["b", "b2"], "a exited: its entry is gone")
            #expect(reg.keys(of: me.pid) == ["room", "room"])
            reg.unregister(me, key: "room")
            #expect(reg.lookup("room").isEmpty)
        }
    }

    @Test("entries are removed when their process exits")
    func removedOnExit() async throws {
        let reg = Registry<String, Int>(keys: .unique, partitions: 4)
        let pid = Process.spawn { me in
            try reg.register(me, key: "x", value: 1)
            _ = try await me.receive()
        }
        #expect(await eventually { reg.count == 1 })
        Process.exit(pid, .kill)
        #expect(await eventually { reg.count == 0 && reg.keys(of: pid).isEmpty })
        #expect(reg.lookup("x").isEmpty)
        // The key is free again once its owner is gone.
        try await Process.run { me in try reg.register(me, key: "x", value: 2) }
    }

    @Test("dispatch: pub/sub to every subscriber of a topic")
    func dispatch() async throws {
        let reg = Registry<String, Void>(keys: .duplicate)
        let got = Events()
        var subscribers: [Pid] = []
        for i in 0..<3 {
            subscribers.append(try Process.spawn(state: ()) { _, message, me in
                if let h = message as? Hello { got.add("\(i):\(h.text)") }
                if message is Subscribe { try reg.register(me, key: "news", value: ()); got.add("subscribed") }
                return .continue
            })
        }
        for p in subscribers { p.send(Subscribe()) }
        #expect(await eventually { got.count("subscribed") == 3 })
        reg.dispatch("news") { entries in for e in entries { e.pid.send(Hello(text: "hi")) } }
        #expect(await eventually { got.all.count == 6 })
        #expect(Set(got.all.filter { $0 != "subscribed" }) == ["0:hi", "1:hi", "2:hi"])
        for p in subscribers { Process.exit(p, .kill) }
    }

    @Test("via naming: a GenServer started and called by a registry key; the key frees when it exits")
    func viaNaming() async throws {
        let names = Registry<String, Void>(keys: .unique)
        let started = try Counter().start(name: .via(names, "counter-1"))
        let byKey = ServerRef<Counter>(name: .via(names, "counter-1"))
        #expect(try await byKey.call(.add(5)) == 5)
        #expect(throws: StartError.self) { _ = try Counter().start(name: .via(names, "counter-1")) }
        try await started.stop()
        #expect(names.whereisName("counter-1") == nil)
        _ = try Counter().start(name: .via(names, "counter-1"))
        #expect(try await byKey.call(.get) == 0)
    }

    /// Elixir 1.14, checked: `{:via, Registry, {reg, key}}` stores the value nil,
    /// `{:via, Registry, {reg, key, 42}}` stores 42, and a duplicate registry raises
    /// ArgumentError ":via is not supported for duplicate registries". Here each mistake is
    /// a typed error from the start, and nothing is registered.
    @Test("via naming: {reg, key, value} stores the value; nil for optional values; wrong key type, duplicate keys, missing value: typed errors")
    func viaNamingValuesAndMistakes() async throws {
        let withValues = Registry<String, Int>(keys: .unique)
        let a = try Counter().start(name: withValues.via("a", value: 42))
        #expect(withValues.lookup("a").map(\.value) == [42])
        #expect(withValues.lookup("a").map(\.pid) == [a.pid])
        #expect(try await ServerRef<Counter>(name: withValues.via("a", value: 0)).call(.add(1)) == 1)

        let optional = Registry<String, String?>(keys: .unique)
        let b = try Counter().start(name: .via(optional, "b"))
        #expect(optional.lookup("b").count == 1 && optional.lookup("b")[0].value == nil && optional.lookup("b")[0].pid == b.pid)

        func failure(_ name: ServerName) -> RegistryError? {
            do {
                _ = try Counter().start(name: name)
                return nil
            } catch {
                guard case .failed(.error(let e)) = error else { return nil }
                return e as? RegistryError
            }
        }
        guard case .valueNeeded(let t)? = failure(.via(withValues, "c")) else { Issue.record("no valueNeeded"); return }
        #expect(t == "Int")
        guard case .wrongKeyType(let key, let expected)? = failure(.via(Registry<Int, Void>(keys: .unique), "seven")) else { Issue.record("no wrongKeyType"); return }
        #expect(key == "seven" && expected == "Int")
        let topics = Registry<String, Void>(keys: .duplicate)
        guard case .duplicateKeys? = failure(.via(topics, "t")) else { Issue.record("no duplicateKeys"); return }
        #expect(topics.lookup("t").isEmpty && withValues.lookup("c").isEmpty)
        try await a.stop()
        try await b.stop()
    }

    @Test("update_value changes the caller's own value only")
    func updateValue() async throws {
        let reg = Registry<String, Int>(keys: .unique)
        try await Process.run { (me: Process) async throws in
            try reg.register(me, key: "n", value: 1)
            #expect(reg.updateValue(me, key: "n") { $0 + 1 } == 2)
            #expect(reg.lookup("n").first?.value == 2)
        }
    }

    @Test("partitioned: concurrent registrations from many processes all land, and all leave on exit")
    func partitionedConcurrency() async throws {
        let reg = Registry<Int, Int>(keys: .unique, partitions: 8)
        let n = scaled(4000)
        try await withThrowingTaskGroup(of: Void.self) { g in
            for w in 0..<4 {
                g.addTask {
                    try await Process.run { (me: Process) async throws in
                        for i in stride(from: w, to: n, by: 4) {
                            me.spawn { q in
                                try reg.register(q, key: i, value: i)
                                _ = try await q.receive()
                            }
                        }
                    }
                }
            }
            try await g.waitForAll()
        }
        #expect(await eventually { reg.count == n })
        for i in 0..<n { if let p = reg.lookup(i).first?.pid { Process.exit(p, .kill) } }
        #expect(await eventually { reg.count == 0 })
    }
}
