import Logging
@_spi(Distribution) import Parley

/// What Parley's own API asks of a scope process with `Gen.call` (pg.erl's local calls).
enum ProcessGroupsRequest: Sendable {
    case join(Term, ProcessGroupsState.Members)
    case leave(Term, ProcessGroupsState.Members)
    case monitorScope(Pid)
    case monitorGroup(Term, Pid)
    case demonitor(Reference)
}

/// A scope's table, read by anyone without asking the scope (pg's protected ETS table
/// with read concurrency); only the scope process writes it.
final class ProcessGroupsTable: Sendable {
    let rows = Locked<[Term: ProcessGroupsState.Row]>([:])
}

/// The scope process: registered under the scope's name (so peers reach it as
/// `{Scope, Node}`), it runs ``ProcessGroupsState`` and performs its actions.
struct ProcessGroupsServer {
    let me: Process
    let scope: String
    let table: ProcessGroupsTable
    let log: Logger
    var state: ProcessGroupsState
    /// Whether it has subscribed to the node's connections (distribution may start later).
    var watching = false

    init(me: Process, scope: String, table: ProcessGroupsTable, log: Logger) {
        self.me = me
        self.scope = scope
        self.table = table
        self.log = log
        self.state = ProcessGroupsState(me: me.pid)
    }

    mutating func run() async throws {
        watch()
        while true {
            // Until distribution runs, look for it now and then; then wait for messages only.
            if watching {
                handle(try await me.receive())
            } else if let m = try await me.receive(after: .seconds(1)) {
                handle(m)
                watch()
            } else {
                watch()
            }
        }
    }

    /// pg's init: subscribe to nodeup (every connection, hidden ones too: an Erlang scope
    /// does not discover a hidden node, so this side discovers it) and discover the scope
    /// on every node already connected.
    mutating func watch() {
        guard !watching, let router = Distribution.router(of: me.node) else { return }
        watching = true
        router.monitorNodes(me.pid, true)
        for peer in router.connectedNodes { me.send(state.discoverMessage(), to: scope, on: Node.named(peer.name)) }
    }

    mutating func handle(_ m: any Sendable) {
        switch m {
        case let c as Gen.CallMessage:
            guard let r = c.request as? ProcessGroupsRequest else { return unexpected(c.request) }
            call(r, from: c.from)
        case let c as Gen.CastMessage:
            guard let t = c.request as? Term else { return unexpected(c.request) }
            cast(t)
        case let d as DownMessage:
            perform(state.down(d.ref, d.pid))
        case let t as Term:
            info(t)
        default:
            unexpected(m)
        }
    }

    mutating func call(_ r: ProcessGroupsRequest, from: Gen.From) {
        switch r {
        case .join(let group, let members):
            perform(state.join(group, members))
            Gen.reply(from, true)
        case .leave(let group, let members):
            switch state.leave(group, members) {
            case .success(let actions):
                perform(actions)
                Gen.reply(from, true)
            case .failure:
                Gen.reply(from, false)
            }
        case .monitorScope(let subscriber):
            let ref = me.monitor(subscriber)
            Gen.reply(from, ProcessGroupsSubscription(ref: ref, groups: state.monitorScope(subscriber, ref: ref)))
        case .monitorGroup(let group, let subscriber):
            let ref = me.monitor(subscriber)
            Gen.reply(from, ProcessGroupsSubscription(ref: ref, groups: [group: state.monitorGroup(group, subscriber, ref: ref)]))
        case .demonitor(let ref):
            let was = state.demonitor(ref)
            if was { me.demonitor(ref) }
            Gen.reply(from, was)
        }
    }

    /// `{'$gen_cast', Request}`: pg takes only `{sync, Peer, Groups}`.
    mutating func cast(_ t: Term) {
        guard case .tuple(let c) = t, c.count == 3, c[0] == .atom("sync"), case .pid(let peer) = c[1],
              let groups = Self.groups(c[2]) else { return unexpected(t) }
        perform(state.sync(peer, groups))
    }

    mutating func info(_ t: Term) {
        guard case .tuple(let c) = t, let op = c.first?.atomName else { return unexpected(t) }
        switch (op, c.count) {
        case ("$gen_cast", 2):
            cast(c[1])
        case ("discover", 2):
            guard case .pid(let peer) = c[1] else { return unexpected(t) }
            perform(state.discover(peer))
        case ("join", 4):
            guard case .pid(let peer) = c[1], let members = ProcessGroupsState.Members(c[3]) else { return unexpected(t) }
            perform(state.remoteJoin(peer, c[2], members))
        case ("leave", 4):
            guard case .pid(let peer) = c[1], let members = ProcessGroupsState.Members(c[2]), let groups = c[3].listElements else {
                return unexpected(t)
            }
            perform(state.remoteLeave(peer, members, groups))
        case ("nodeup", 2):
            // pg.erl: discover the scope on the new node (nodedown: the DOWN does the work).
            guard let node = c[1].atomName, node != me.node.name else { return }
            me.send(state.discoverMessage(), to: scope, on: Node.named(node))
        case ("nodedown", 2):
            break
        default:
            unexpected(t)
        }
        for line in state.takeIgnored() { log.warning("pg scope \(scope) ignored a \(line) (OTP's pg would crash here)") }
    }

    /// `[{Group, [Pid]}]`.
    static func groups(_ t: Term) -> [(Term, [Pid])]? {
        guard let items = t.listElements else { return nil }
        var result: [(Term, [Pid])] = []
        result.reserveCapacity(items.count)
        for item in items {
            guard case .tuple(let pair) = item, pair.count == 2, let members = ProcessGroupsState.Members(pair[1]) else { return nil }
            result.append((pair[0], members.pids))
        }
        return result
    }

    mutating func perform(_ actions: [ProcessGroupsState.Action]) {
        var rows: [(Term, ProcessGroupsState.Row?)] = []
        for a in actions {
            if case .row(let g, let r) = a { rows.append((g, r)) }
        }
        if !rows.isEmpty {
            table.rows.withLock { t in for (g, r) in rows { t[g] = r } }
        }
        for a in actions {
            switch a {
            case .monitor(let pid):
                state.monitored(pid, ref: me.monitor(pid))
            case .demonitor(let ref):
                me.demonitor(ref)
            case .send(let pids, let message):
                for pid in pids { sendNoConnect(message, to: pid) }
            case .cast(let pid, let request):
                me.send(Term.tuple([.atom("$gen_cast"), request]), to: pid)
            case .row:
                break
            }
        }
    }

    /// `erlang:send(Pid, Message, [noconnect])`: dropped if the pid's node is not connected.
    func sendNoConnect(_ message: Term, to pid: Pid) {
        if pid.nodeName != me.node.name {
            guard let router = Distribution.router(of: me.node), let node = pid.node,
                  router.connection(to: node, dial: false) != nil else { return }
        }
        me.send(message, to: pid)
    }

    /// pg.erl crashes its scope (`erlang:error(badarg)`) on anything it does not expect;
    /// this one logs it and goes on.
    func unexpected(_ m: any Sendable) {
        log.warning("pg scope \(scope) ignored an unexpected message: \((m as? Term).map { DistributionRouter.summary($0) } ?? "\(type(of: m))")")
    }
}

/// A scope subscription's reference and the members at the time it was made.
struct ProcessGroupsSubscription: Sendable {
    let ref: Reference
    let groups: [Term: [Pid]]
}
