@_spi(Distribution) import Parley
import ParleyOTP
import Synchronization

extension Distribution {
    /// The body of a process that other Parley nodes may start here by name.
    public typealias Spawnable = @Sendable @concurrent (Process, Term) async throws -> Void

    /// Makes `body` startable from other Parley nodes as `name` (the Parley form of
    /// `spawn(Node, Module, Function, Args)`: Swift cannot look a function up by name, so
    /// the functions a node offers are registered).
    ///
    /// ```swift
    /// Distribution.register(spawnable: "greeter") { me, args in
    ///     if let from = try await me.receive(Term.self).pidValue {
    ///         me.send(Term.string("hello from \(Distribution.nodeName), \(args)"), to: from)
    ///     }
    /// }
    /// ```
    public static func register(spawnable name: String, _ body: @escaping Spawnable) {
        Spawner.functions.withLock { $0[name] = .sequential(body) }
    }

    /// Makes a callback process startable from other Parley nodes as `name`: `initial` makes
    /// its state from the spawn's arguments, and `handler` runs once per message. A callback
    /// process that is idle when a message arrives from another node handles it at once on
    /// the connection's I/O thread (no thread hand-off), so keep its handler short.
    ///
    /// ```swift
    /// Distribution.register(spawnable: "pong", initial: { _ in () }) { _, message, me in
    ///     if let t = message as? Term, case .tuple(let p) = t, p.count == 2, let from = p[0].pidValue {
    ///         me.send(p[1], to: from)
    ///     }
    ///     return .continue
    /// }
    /// ```
    public static func register<State>(spawnable name: String, initial: @escaping @Sendable (Term) -> State,
                                       handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next) {
        let start: @Sendable (Term, Pid?, LocalNode) throws -> Pid = { args, linkTo, node in
            let pid = try node.spawn(state: initial(args), handler: handler)
            // The link is made before the process sees its first message: that message can
            // only come from a node that has our reply, which is sent after this.
            if let linkTo { Remote.link(pid, toRemote: linkTo) }
            return pid
        }
        Spawner.functions.withLock { $0[name] = .callback(start) }
    }

    /// Starts the function registered as `name` on `node` with `args`, and returns its pid
    /// (`spawn/4` on a remote node). With `linkedTo`, the new process links to that pid
    /// before it runs, as `spawn_link/4` does; exit signals then cross between the nodes.
    ///
    /// ```swift
    /// let pid = try await Distribution.spawn(on: "worker@10.0.0.2", "greeter", linkedTo: me.pid)
    /// ```
    /// - Throws: ``DistributionError/unknownSpawnable(_:)`` if the node offers no such
    ///   function; ``Gen/CallError`` if the node cannot be reached.
    public static func spawn(on node: String, _ name: String, args: Term = .nil, linkedTo: Pid? = nil,
                             timeout: Duration = .seconds(10)) async throws -> Pid {
        let link: Term = linkedTo.map { .pid($0) } ?? .atom(.undefined)
        let reply = try await Gen.call(Spawner.name, on: Node.named(try fullName(node)),
                                       Term.tuple([.atom("spawn"), .string(name), args, link]), timeout: timeout)
        guard let t = reply as? Term, case .tuple(let items) = t, items.count == 2 else {
            throw DistributionError.connectFailed(node: node, reason: "unexpected spawn reply \(reply)")
        }
        if items[0] == .ok, case .pid(let pid) = items[1] { return pid }
        throw DistributionError.unknownSpawnable(name)
    }
}

/// The registered GenServer (`parley_spawn`) that starts spawnables for other nodes:
/// `{spawn, Name, Args, LinkTo}` is answered `{ok, Pid}`, `{error, undef}` for a name this
/// node does not offer, `{error, badarg}` for any other request.
struct Spawner: GenServer {
    static let name = "parley_spawn"
    enum Entry {
        case sequential(Distribution.Spawnable)
        case callback(@Sendable (Term, Pid?, LocalNode) throws -> Pid)
    }
    static let functions = Locked<[String: Entry]>([:])

    typealias Call = Term
    typealias Reply = Term

    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        guard case .tuple(let r) = request, r.count == 4, r[0] == .atom("spawn"), let fname = r[1].stringValue else {
            return .reply(.tuple([.atom(.error), .atom("badarg")]))
        }
        guard let entry = Self.functions.withLock({ $0[fname] }) else {
            return .reply(.tuple([.atom(.error), .atom("undef")]))
        }
        let args = r[2]
        let linkTo = r[3].pidValue
        switch entry {
        case .sequential(let body):
            let pid = me.spawn { me in
                if let linkTo { try me.link(linkTo) }
                try await body(me, args)
            }
            return .reply(.tuple([.ok, .pid(pid)]))
        case .callback(let start):
            do {
                return .reply(.tuple([.ok, .pid(try start(args, linkTo, me.node))]))
            } catch {
                return .reply(.tuple([.atom(.error), .string("\(error)")]))
            }
        }
    }

    static func start(on node: LocalNode) {
        _ = try? Spawner().start(name: .local(name), options: GenServerOptions(node: node))
    }

    static func stop(on node: LocalNode) {
        if let pid = node.whereis(name) { Process.exit(pid, .kill) }
    }
}
