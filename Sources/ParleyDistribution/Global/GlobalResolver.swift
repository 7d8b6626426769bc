import Logging
@_spi(Distribution) import Parley

/// One connect session's resolver (global.erl `resolver/2`): once both partitions are
/// locked it compares the other side's names with ours. For a name both sides hold, the
/// node whose name sorts lower runs the resolve method of its own entry, on the node of
/// its own pid (`resolve_it`), so every clash is decided by one partition.
enum GlobalResolver {
    struct Resolve: Sendable {
        var names: [Term]
        var node: String
    }

    static func run(_ me: Process, peer: String, tag: Term, home: String, tables: GlobalTables, server: Pid, log: Logger) async throws {
        let request = try await me.receive { m in (m as? Resolve).flatMap { $0.node == peer ? $0 : nil } }
        var ops: [Term] = []
        var resolved: [Term] = []
        for entry in request.names {
            guard case .tuple(let e) = entry, e.count == 3, let pid = e[1].pidValue else { continue }
            let (name, method) = (e[0], e[2])
            let local = tables.state.withLock { $0.names[name] }
            guard let local else {
                ops.append(.tuple([.atom("insert"), entry]))
                continue
            }
            if local.pid == pid { continue }
            // The other node resolves unless this one's name sorts lower.
            guard ErlangOrder.less(home, peer) else { continue }
            let pid2 = local.pid, method2 = local.method
            let result = await resolveIt(me, node: pid2.node?.name ?? home, home: home, method: method2, name: name, pid: pid, pid2: pid2, log: log)
            let insertHis = Term.tuple([.atom("insert"), .tuple([name, .pid(pid), method])])
            let insertMine = Term.tuple([.atom("insert"), .tuple([name, .pid(pid2), method2])])
            let delete = Term.tuple([.atom("delete"), name])
            switch result {
            case .pid(pid):
                ops.append(insertHis)
            case .pid(pid2):
                resolved.append(insertMine)
            case .atom("none"):
                ops.append(delete)
                resolved.append(delete)
            case .tuple(let t) where t.first == .atom("badrpc"):
                log.info("global: badrpc \(DistributionRouter.summary(t.count > 1 ? t[1] : .nil)) received when conflicting name \(DistributionRouter.summary(name)) was found")
                ops.append(insertHis)
            default:
                log.info("global: Resolve method \(DistributionRouter.summary(method)) for conflicting name \(DistributionRouter.summary(name)) returned \(DistributionRouter.summary(result))")
                ops.append(delete)
                resolved.append(delete)
            }
        }
        server.send(GlobalInternal.exchangeOps(node: peer, tag: tag, ops: ops, resolved: resolved))
    }

    /// `rpc:call(Node2, global, resolve_it, [Method2, Name, Pid, Pid2])`: here for this
    /// node's processes; through `rex` on an Erlang node.
    static func resolveIt(_ me: Process, node: String, home: String, method: Term, name: Term, pid: Pid, pid2: Pid, log: Logger) async -> Term {
        if node == home {
            return Global.runMethod(method, name: name, pid, pid2, home: home, me: me)
        }
        let call = Term.tuple([.atom("call"), .atom("global"), .atom("resolve_it"),
                               .list([method, name, .pid(pid), .pid(pid2)]), .pid(me.pid)])
        do {
            let reply = try await Gen.call("rex", on: Node.named(node), call, timeout: .seconds(60))
            return (reply as? Term) ?? .tuple([.atom("badrpc"), .atom("bad_reply")])
        } catch {
            return .tuple([.atom("badrpc"), .string("\(error)")])
        }
    }
}

/// The registrar (global.erl `loop_the_registrar`): registrations and unregistrations run
/// here one at a time, each under the `{global, Registrar}` lock on every known node.
enum GlobalRegistrar {
    enum Op: Sendable {
        case register(name: Term, pid: Pid, method: Term, replace: Bool)
        case unregister(Term)
    }

    static func run(_ me: Process, home: String, tables: GlobalTables, server: Pid) async throws {
        while true {
            let call = try await me.receive { m in (m as? Gen.CallMessage).flatMap { $0.request is Op ? $0 : nil } }
            let op = call.request as! Op
            let reply = try await transAllKnown(me, home: home, tables: tables, server: server) { nodes in
                switch op {
                case .register(let name, let pid, let method, let replace):
                    if !replace {
                        guard tables.whereis(name, home: home) == nil else { return false }
                        // A pid has one global name (`global: ~w registered under several names`).
                        guard tables.names(of: pid).isEmpty else { return false }
                    }
                    _ = try await MultiCall.call(me, nodes, .tuple([.atom("register"), name, .pid(pid), method]))
                    return true
                case .unregister(let name):
                    _ = try await MultiCall.call(me, nodes, .tuple([.atom("unregister"), name]))
                    return true
                }
            }
            Gen.reply(call.from, reply)
        }
    }

    /// `trans_all_known/1`: lock `{global, self()}` on this node and every known one (the
    /// boss first, retrying with global's random sleeps), making sure no node became known
    /// meanwhile; run `body`; release the boss last.
    static func transAllKnown(_ me: Process, home: String, tables: GlobalTables, server: Pid,
                              _ body: ([String]) async throws -> Bool) async throws -> Bool {
        let id = Term.tuple([.atom("global"), .pid(me.pid)])
        var times = 0
        var nodes: [String]
        while true {
            let known = try await getKnown(server)
            nodes = [home] + known
            let boss = ErlangOrder.boss(nodes) ?? home
            if try await Global.setLockOnNodes(me, id, [boss], home: home, tables: tables) {
                if try await Global.setLockOnNodes(me, id, nodes, home: home, tables: tables),
                   try await Set(getKnown(server)).subtracting(known).isEmpty {
                    break
                }
                try await Global.delLock(me, id, [boss])
            }
            try await Global.randomSleep(me, times)
            times += 1
        }
        do {
            let result = try await body(nodes)
            try await Global.deleteLock(me, id, nodes)
            return result
        } catch {
            try? await Global.deleteLock(me, id, nodes)
            throw error
        }
    }

    static func getKnown(_ server: Pid) async throws -> [String] {
        (try await Gen.call(server, GlobalRequest.getKnown, timeout: nil) as? [String]) ?? []
    }
}
