import Logging
@_spi(Distribution) import Parley
import ParleyOTP

/// Phoenix.PubSub (phoenix_pubsub 2.x, its default `Phoenix.PubSub.PG2` adapter) on Parley:
/// a Swift service subscribes to the topics of an Elixir app's PubSub and broadcasts to them,
/// and the app's broadcasts reach it, over Erlang's `pg` (``ProcessGroups``).
///
/// The wire is the adapter's own: the pg scope `Elixir.Phoenix.PubSub`; per PubSub one group
/// for each pool worker, `Elixir.MyApp.PubSub.Adapter`, `…Adapter_2`, … (the first one
/// unsuffixed, as since 2.1.1), each with a worker registered locally under the group's name;
/// a broadcast sends `{forward_to_local, Topic, Message, Dispatcher}` to the members of one
/// group on the other nodes, whose workers deliver it to their node's subscribers.
///
/// ```swift
/// let pubsub = try PhoenixPubSub.start(name: "MyApp.PubSub")    // the app's `name:`
/// try pubsub.subscribe(me, to: "room:1")                          // Phoenix.PubSub.subscribe/2
/// pubsub.broadcast(.tuple([.atom("new_msg"), .binary(Array("hi".utf8))]), to: "room:1")
/// let message = try await me.receive(Term.self)                   // whatever Elixir broadcast
/// ```
public final class PhoenixPubSub: Sendable {
    /// The PubSub's name as the Elixir app gives it (`MyApp.PubSub`, no `Elixir.` prefix).
    public let name: String
    /// The pool's groups, in order: `Elixir.<name>.Adapter`, `…Adapter_2`, ….
    public let groups: [String]
    /// How many of them a broadcast picks from (phoenix_pubsub 2.2's `broadcast_pool_size`).
    public let broadcastPoolSize: Int
    let node: LocalNode
    let scope: ProcessGroups
    let subscribers: Registry<String, Term>
    let workers: [Pid]

    /// The scope every PubSub of an Elixir node shares (phoenix_pubsub's application starts it).
    public static let scope = "Elixir.Phoenix.PubSub"
    /// The default dispatcher (`Phoenix.PubSub`): each subscriber gets the message.
    public static let defaultDispatcher = "Elixir.Phoenix.PubSub"
    /// Phoenix Channels' dispatcher, which endpoints' broadcasts name.
    public static let channelDispatcher = "Elixir.Phoenix.Channel.Server"

    init(name: String, groups: [String], broadcastPoolSize: Int, node: LocalNode, scope: ProcessGroups,
         subscribers: Registry<String, Term>, workers: [Pid]) {
        self.name = name
        self.groups = groups
        self.broadcastPoolSize = broadcastPoolSize
        self.node = node
        self.scope = scope
        self.subscribers = subscribers
        self.workers = workers
    }

    /// Starts a PubSub as `Phoenix.PubSub.Supervisor` does: the shared pg scope (if this node
    /// does not run it yet), and `poolSize` workers, each registered under its group's name
    /// and a member of that group. Use the `name:` and `pool_size:` the Elixir app uses:
    /// broadcasts go to one group of the pool, so both sides must have a member in each.
    ///
    /// ```swift
    /// let pubsub = try PhoenixPubSub.start(name: "MyApp.PubSub", poolSize: 2)
    /// ```
    /// - Throws: ``ProcessError/nameTaken(_:by:)`` if a worker's name is taken (the same
    ///   PubSub started twice).
    public static func start(name: String, poolSize: Int = 1, broadcastPoolSize: Int? = nil,
                             on node: LocalNode = .default) async throws -> PhoenixPubSub {
        let adapter = "Elixir.\(name).Adapter"
        let groups = (1...max(1, poolSize)).map { $0 == 1 ? adapter : "\(adapter)_\($0)" }
        let scope: ProcessGroups
        if ProcessGroups(scope: Self.scope, on: node).isRunning {
            scope = ProcessGroups(scope: Self.scope, on: node)
        } else {
            scope = try ProcessGroups.start(scope: Self.scope, on: node)
        }
        let subscribers = Registry<String, Term>(keys: .duplicate)
        var workers: [Pid] = []
        do {
            for group in groups {
                let worker = try node.spawn(SpawnOptions(name: group, label: "Phoenix.PubSub worker \(group)")) { me in
                    while true {
                        // {forward_to_local, Topic, Message, Dispatcher}: this node's subscribers.
                        let t = try await me.receive(Term.self)
                        guard case .tuple(let f) = t, f.count == 4, f[0] == .atom("forward_to_local"),
                              case .binary(let topic) = f[1] else { continue }
                        Self.deliver(f[2], to: String(decoding: topic, as: UTF8.self), in: subscribers, except: nil)
                    }
                }
                workers.append(worker)
                try await scope.join(.atom(Atom(group)), worker)
            }
        } catch {
            for w in workers { Process.exit(w, .shutdown) }
            throw error
        }
        return PhoenixPubSub(name: name, groups: groups, broadcastPoolSize: min(groups.count, max(1, broadcastPoolSize ?? groups.count)),
                             node: node, scope: scope, subscribers: subscribers, workers: workers)
    }

    /// Stops the workers (the other nodes see them leave their groups). The pg scope stays:
    /// other PubSubs share it.
    public func stop() {
        for w in workers { Process.exit(w, .shutdown) }
    }

    // MARK: Subscribing

    /// `Phoenix.PubSub.subscribe(pubsub, topic)`: the calling process receives every message
    /// broadcast to `topic`, from this node or another (twice if it subscribes twice), until
    /// it unsubscribes or exits.
    public func subscribe(_ me: some ProcessContext, to topic: String) throws {
        try subscribers.register(me, key: topic, value: .nil)
    }

    /// `Phoenix.PubSub.unsubscribe(pubsub, topic)`.
    public func unsubscribe(_ me: some ProcessContext, from topic: String) {
        subscribers.unregister(me, key: topic)
    }

    /// The members of the pool's group `index` on every node (pg's view of the adapter).
    public func scopeMembers(of index: Int) -> [Pid] { scope.members(.atom(Atom(groups[index]))) }

    /// The processes of this node subscribed to `topic`.
    public func subscribers(of topic: String) -> [Pid] { subscribers.lookup(topic).map(\.pid) }

    // MARK: Broadcasting

    /// `Phoenix.PubSub.broadcast(pubsub, topic, message, dispatcher)`: to the subscribers on
    /// every node. The other nodes get one `{forward_to_local, …}` each, through the members
    /// of one group of the pool (chosen by the sender, as the adapter does).
    public func broadcast(_ message: Term, to topic: String, dispatcher: String = PhoenixPubSub.defaultDispatcher) {
        broadcast(message, to: topic, except: nil, dispatcher: dispatcher)
    }

    /// `Phoenix.PubSub.broadcast_from(pubsub, from, topic, message)`: as ``broadcast(_:to:dispatcher:)``
    /// but not to `from` (on this node; Phoenix excludes it on its own node only too).
    public func broadcast(from: Pid, _ message: Term, to topic: String, dispatcher: String = PhoenixPubSub.defaultDispatcher) {
        broadcast(message, to: topic, except: from, dispatcher: dispatcher)
    }

    /// `Phoenix.PubSub.local_broadcast`: this node's subscribers only.
    public func localBroadcast(_ message: Term, to topic: String) {
        Self.deliver(message, to: topic, in: subscribers, except: nil)
    }

    /// `Phoenix.PubSub.direct_broadcast(node, pubsub, topic, message)`: the subscribers on one
    /// node, through its worker's registered name (no pg needed on either side).
    public func directBroadcast(_ message: Term, to topic: String, on nodeName: String, dispatcher: String = PhoenixPubSub.defaultDispatcher) {
        if nodeName == node.name {
            localBroadcast(message, to: topic)
        } else {
            // REG_SEND from the first worker, to the worker registered under the first group.
            Distribution.router(of: node)?.send(Self.forward(message, topic: topic, dispatcher: dispatcher), toName: groups[0],
                                                on: Node.named(nodeName), from: workers[0])
        }
    }

    /// `Phoenix.Endpoint.broadcast(topic, event, payload)` (Phoenix.Channel.Server): a
    /// `%Phoenix.Socket.Broadcast{}` to every channel joined to `topic`, in the app's
    /// channels' dispatcher.
    public func broadcastToChannels(topic: String, event: String, payload: Term) {
        broadcast(ChannelBroadcast(topic: topic, event: event, payload: payload).term, to: topic, dispatcher: Self.channelDispatcher)
    }

    func broadcast(_ message: Term, to topic: String, except: Pid?, dispatcher: String) {
        let index = Int(UInt(bitPattern: (except ?? workers[0]).hashValue) % UInt(broadcastPoolSize))
        let forward = Self.forward(message, topic: topic, dispatcher: dispatcher)
        // Through this node's own connections (the node may not be the default one).
        let router = Distribution.router(of: node)
        for member in scope.members(.atom(Atom(groups[index]))) where member.nodeName != node.name {
            router?.send(forward, to: member, from: workers[index])
        }
        Self.deliver(message, to: topic, in: subscribers, except: except)
    }

    static func forward(_ message: Term, topic: String, dispatcher: String) -> Term {
        .tuple([.atom("forward_to_local"), .binary(Array(topic.utf8)), message, .atom(Atom(dispatcher))])
    }

    static func deliver(_ message: Term, to topic: String, in subscribers: Registry<String, Term>, except: Pid?) {
        for entry in subscribers.lookup(topic) where entry.pid != except { entry.pid.send(message) }
    }

    /// `%Phoenix.Socket.Broadcast{topic, event, payload}`, what channel broadcasts carry.
    public struct ChannelBroadcast: Sendable, Equatable {
        public var topic: String
        public var event: String
        public var payload: Term

        public init(topic: String, event: String, payload: Term) {
            self.topic = topic
            self.event = event
            self.payload = payload
        }

        /// From the struct as it arrives (a map with `__struct__`); nil for anything else.
        public init?(_ term: Term) {
            guard case .map(let m) = term, m[.atom("__struct__")] == .atom("Elixir.Phoenix.Socket.Broadcast"),
                  case .binary(let topic)? = m[.atom("topic")], case .binary(let event)? = m[.atom("event")],
                  let payload = m[.atom("payload")] else { return nil }
            self.init(topic: String(decoding: topic, as: UTF8.self), event: String(decoding: event, as: UTF8.self), payload: payload)
        }

        /// The struct as Elixir builds it.
        public var term: Term {
            .map([.atom("__struct__"): .atom("Elixir.Phoenix.Socket.Broadcast"), .atom("topic"): .binary(Array(topic.utf8)),
                  .atom("event"): .binary(Array(event.utf8)), .atom("payload"): payload])
        }
    }
}
