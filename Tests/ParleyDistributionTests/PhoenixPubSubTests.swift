import Foundation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import Synchronization

extension DistributionTests {
/// Phoenix.PubSub's PG2 adapter on the wire, against an OTP 25 node that plays the adapter's
/// part (`Erlang/pubsub_peer.erl`, written from phoenix_pubsub 2.2's behaviour: Phoenix is
/// not installable here) over Erlang's real `pg`.
@Suite("Phoenix.PubSub: a Swift service in an Elixir app's PubSub (PG2 adapter over OTP 25's pg)", .serialized, .enabled(if: Cluster.erlInstalled))
struct PhoenixPubSubTests {
    @Test("Broadcasts both ways with a pool of 2: Erlang's (from processes that pick either group) reach a Swift subscriber once each; ours reach Erlang's subscribers once, with the default dispatcher; broadcast_from skips its sender; direct broadcasts by the worker's name; a channel broadcast is a %Phoenix.Socket.Broadcast{} for Phoenix.Channel.Server")
    func bothWays() async throws {
        _ = try await Cluster.node()
        let name = "PubSubTest\(UInt32.random(in: 0...UInt32.max))"
        let topic = "room:1", topicTerm = Term.binary(Array("room:1".utf8))
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        #expect(try await erl.rpc("pubsub_peer", "start", [.string(name), 2]) == .ok)
        #expect(try await erl.rpc("pubsub_peer", "subscribe", [.string(name), topicTerm]) == .ok)
        let erlScope = try await erl.rpc("erlang", "whereis", [.atom("Elixir.Phoenix.PubSub")])

        let pubsub = try await PhoenixPubSub.start(name: name, poolSize: 2)
        defer { pubsub.stop() }
        #expect(pubsub.groups == ["Elixir.\(name).Adapter", "Elixir.\(name).Adapter_2"])
        let inbox = TermInbox()
        // Phoenix subscribes the calling process: the subscriber does it when told.
        let subscriber = try Process.spawn(SpawnOptions(), state: ()) { _, m, me in
            switch m {
            case let order as Order:
                switch order {
                case .subscribe(let t): try pubsub.subscribe(me, to: t)
                case .unsubscribe(let t): pubsub.unsubscribe(me, from: t)
                }
            case let t as Term: inbox.terms.withLock { $0.append(t) }
            default: break
            }
            return .continue
        }
        subscriber.send(Order.subscribe(topic))
        #expect(await eventually { pubsub.subscribers(of: topic) == [subscriber] })

        // Each side has a member in each group of the other's pool.
        let scope = ProcessGroups(scope: PhoenixPubSub.scope)
        #expect(await eventually {
            pubsub.groups.allSatisfy { g in scope.members(.atom(Atom(g))).contains { $0.nodeName == erl.name } }
        })
        for g in pubsub.groups {
            #expect(try await eventually {
                (try await erl.rpc("pg", "get_members", [.atom("Elixir.Phoenix.PubSub"), .atom(Atom(g))])).listElements?
                    .contains { $0.pidValue?.nodeName == Distribution.nodeName } == true
            }, "Erlang sees our worker in \(g)")
        }

        // Erlang broadcasts from ten processes (phash2 of each picks a group): each once.
        for i in 0..<10 {
            #expect(try await erl.rpc("pubsub_peer", "broadcast", [.string(name), topicTerm, .tuple([.atom("from_erlang"), .integer(i)])]) == .ok)
        }
        #expect(await eventually { (0..<10).allSatisfy { inbox.count(.tuple([.atom("from_erlang"), .integer($0)])) == 1 } })

        // Ours: Erlang's subscriber gets each once, with the dispatcher; ours locally too.
        pubsub.broadcast(.tuple([.atom("from_swift"), 1]), to: topic)
        pubsub.broadcast(from: subscriber, .tuple([.atom("from_swift"), 2]), to: topic)
        func erlangGot() async throws -> [Term] { (try await erl.rpc("pubsub_peer", "received", [.string(name)])).listElements ?? [] }
        let dispatcher = Term.atom(Atom(PhoenixPubSub.defaultDispatcher))
        #expect(try await eventually {
            let got = try await erlangGot()
            return got.filter { $0 == .tuple([topicTerm, .tuple([.atom("from_swift"), 1]), dispatcher]) }.count == 1
                && got.filter { $0 == .tuple([topicTerm, .tuple([.atom("from_swift"), 2]), dispatcher]) }.count == 1
        })
        #expect(await eventually { inbox.count(.tuple([.atom("from_swift"), 1])) == 1 })
        #expect(inbox.count(.tuple([.atom("from_swift"), 2])) == 0, "broadcast_from skips its sender")

        // Direct broadcasts, both ways.
        pubsub.directBroadcast(.atom("direct_from_swift"), to: topic, on: erl.name)
        #expect(try await eventually { try await erlangGot().contains(.tuple([topicTerm, .atom("direct_from_swift"), dispatcher])) })
        _ = try await erl.rpc("pubsub_peer", "direct_broadcast", [.atom(Atom(Distribution.nodeName)), .string(name), topicTerm, .atom("direct_from_erlang")])
        #expect(await eventually { inbox.count(.atom("direct_from_erlang")) == 1 })

        // Channels: Phoenix.Endpoint.broadcast's struct, in Phoenix.Channel.Server's dispatch.
        let payload = Term.map([.binary(Array("body".utf8)): .binary(Array("hi".utf8))])
        pubsub.broadcastToChannels(topic: topic, event: "new_msg", payload: payload)
        let expected = Term.tuple([topicTerm, PhoenixPubSub.ChannelBroadcast(topic: topic, event: "new_msg", payload: payload).term,
                                   .atom(Atom(PhoenixPubSub.channelDispatcher))])
        #expect(try await eventually { try await erlangGot().contains(expected) })
        #expect(try await erl.rpc("erlang", "is_map_key", [.atom("__struct__"), PhoenixPubSub.ChannelBroadcast(topic: topic, event: "e", payload: .nil).term]) == .true)
        let fromErlang = Term.map([.atom("__struct__"): .atom("Elixir.Phoenix.Socket.Broadcast"), .atom("topic"): topicTerm,
                                   .atom("event"): .binary(Array("typing".utf8)), .atom("payload"): .map([:])])
        _ = try await erl.rpc("pubsub_peer", "broadcast", [.string(name), topicTerm, fromErlang, .atom(Atom(PhoenixPubSub.channelDispatcher))])
        #expect(await eventually { inbox.terms.withLock { $0.contains { PhoenixPubSub.ChannelBroadcast($0)?.event == "typing" } } })

        // Unsubscribed: nothing more arrives; Erlang's scope never crashed.
        subscriber.send(Order.unsubscribe(topic))
        #expect(await eventually { pubsub.subscribers(of: topic).isEmpty })
        _ = try await erl.rpc("pubsub_peer", "broadcast", [.string(name), topicTerm, .atom("after_unsubscribe")])
        pubsub.broadcast(.atom("after_unsubscribe_swift"), to: topic)
        #expect(try await eventually { try await erlangGot().contains(.tuple([topicTerm, .atom("after_unsubscribe_swift"), dispatcher])) })
        try await Task.sleep(for: .milliseconds(200))
        #expect(inbox.count(.atom("after_unsubscribe")) == 0 && inbox.count(.atom("after_unsubscribe_swift")) == 0)
        #expect(try await erl.rpc("erlang", "whereis", [.atom("Elixir.Phoenix.PubSub")]) == erlScope)
    }

    @Test("Between two nodes of this OS process (LocalNode values, neither the default): their pg scopes find each other, and a broadcast from one reaches the other's subscriber once")
    func hostedNodes() async throws {
        try await LocalNodeDistributionTests.withNodes { b, c in
            let name = "Hosted\(UInt32.random(in: 0...UInt32.max))"
            let onB = try await PhoenixPubSub.start(name: name, on: b)
            let onC = try await PhoenixPubSub.start(name: name, on: c)
            defer { onB.stop(); onC.stop() }
            #expect(await c.ping(b.name))
            let inbox = TermInbox()
            let subscriber = try c.spawn(SpawnOptions(), state: ()) { _, m, me in
                switch m {
                case let order as Order:
                    if case .subscribe(let t) = order { try onC.subscribe(me, to: t) }
                case let t as Term: inbox.terms.withLock { $0.append(t) }
                default: break
                }
                return .continue
            }
            subscriber.send(Order.subscribe("news"))
            #expect(await eventually { onC.subscribers(of: "news") == [subscriber] })
            #expect(await eventually { onB.scopeMembers(of: 0).contains { $0.nodeName == c.name } })
            onB.broadcast(.atom("from_b"), to: "news")
            #expect(await eventually { inbox.count(.atom("from_b")) == 1 })
            #expect(ProcessGroups(scope: PhoenixPubSub.scope, on: b).localMembers(.atom(Atom(onB.groups[0]))).count == 1)
        }
    }

    enum Order: Sendable {
        case subscribe(String)
        case unsubscribe(String)
    }
}
}
