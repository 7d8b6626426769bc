import Foundation
import Instrumentation
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import ParleyOTP
import ParleyTestSupport

extension DistributionTests {
/// A call's trace context across nodes (``Gen/propagatesContext``), in the slot the Erlang
/// distribution protocol has for it: the sequential-trace token of SEND_TT (12) and
/// REG_SEND_TT (16) control messages (erl_dist_protocol, "Protocol between connected nodes"),
/// whose label may be any term once both nodes set DFLAG_BIG_SEQTRACE_LABELS. On OTP, a
/// process that receives a message with a token adopts it (`seq_trace:get_token/1` reads
/// the label) and drops it on the next message without one (seq_trace docs, "Propagation").
@Suite("Call spans across nodes", .serialized)
struct CallTracingDistributionTests {
    let tracer = RecordingTracer.shared
    init() { Gen.propagatesContext = true }

    /// The label a token carries for span `span` of trace `trace`: `#{<<"traceparent">> => …}`.
    private func traceparent(trace: String, span: String) -> Term {
        .map([.binary(Array("traceparent".utf8)): .binary(Array("00-\(trace)-\(span)-01".utf8))])
    }
    private func traceparent(_ span: RecordingSpan) -> Term { traceparent(trace: span.traceID!, span: span.spanID!) }

    @Test("Parley to Parley: a call by pid (SEND_TT) and by name (REG_SEND_TT) is handled on the other node in a server span whose parent is the caller's span, in the caller's trace")
    func parleyToParley() async throws {
        try await LocalNodeDistributionTests.withNodes { _, c in
            let name = "traced_counter_\(UInt32.random(in: 0...UInt32.max))"
            var options = GenServerOptions()
            options.node = c
            let server = try InteropCounter().start(name: .local(name), options: options)
            let pid = try #require(server.pid)
            let remote = ServerRef<InteropCounter>(Pid(node: Node.named(c.name), id: pid.id, serial: pid.serial, creation: pid.creation))
            let root = tracer.root("parley-to-parley")
            try await ServiceContext.$current.withValue(root.context) { () async throws in
                #expect(try await remote.call(.tuple([.atom("add"), 2])) == .integer(2))
                #expect(try await Gen.call(name, on: Node.named(c.name), Term.atom("get")) as? Term == .integer(2))
            }
            root.end()
            let spans = tracer.spans(inTrace: try #require(root.traceID))
            let client = try #require(spans.first { $0.name == "GenServer.call InteropCounter" })
            let servers = spans.filter { $0.name == "GenServer.handleCall InteropCounter" }
            #expect(servers.count == 2, "spans: \(spans)")
            #expect(client.parentID == root.spanID)
            // By pid, under the client span; by name with the raw Gen.call (no client span), under the root.
            #expect(Set(servers.compactMap(\.parentID)) == [client.spanID, root.spanID!])
            #expect(servers.allSatisfy { $0.attributes["parley.caller"]?.isEmpty == false })
        }
    }

    @Test("Parley to Erlang: the call arrives with a sequential-trace token whose label is the caller's trace context; seq_trace:get_token(label) in handle_call reads it", .enabled(if: Cluster.erlInstalled))
    func parleyToErlang() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let node = Node.named(erl.name)
        let root = tracer.root("parley-to-erlang")
        let byName = try await ServiceContext.$current.withValue(root.context) {
            try await Gen.call("erl_counter", on: node, Term.atom("trace_label")) as? Term
        }
        #expect(byName == .tuple([.atom("label"), traceparent(root)]))
        // By pid through a typed ServerRef: the label names the client span, the root's child.
        let pid = try #require(try await erl.rpc("erlang", "whereis", [.atom("erl_counter")]).pidValue)
        let byPid = try await ServiceContext.$current.withValue(root.context) {
            try await ServerRef<InteropCounter>(pid).call(.atom("trace_label"))
        }
        root.end()
        let client = try #require(tracer.spans(inTrace: root.traceID!).first { $0.name == "GenServer.call InteropCounter" })
        #expect(client.parentID == root.spanID)
        #expect(byPid == .tuple([.atom("label"), traceparent(trace: root.traceID!, span: client.spanID)]))
        // A call outside any span carries no token: Erlang sees no label.
        #expect(try await Gen.call("erl_counter", on: node, Term.atom("trace_label")) as? Term == .list([]))
    }

    @Test("Erlang to Parley: a gen_server:call made with a traceparent label is handled in a server span whose parent is that span, and the reply brings the token back (the caller keeps its label); a label of another shape (a plain seq_trace user's integer) carries no context, and comes back too", .enabled(if: Cluster.erlInstalled))
    func erlangToParley() async throws {
        let me = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        let (server, dest) = try InteropCounter.startRegistered("traced_interop", on: me)
        let root = tracer.root("erlang-to-parley")
        // The reply carries the token back, as a BEAM server's does: the caller still holds
        // its label after the call (an untokened reply would have cleared it).
        #expect(try await erl.rpc("parley_interop", "traced_call", [dest, .tuple([.atom("add"), 4]), traceparent(root)])
                == .tuple([.tuple([.ok, 4]), .tuple([.atom("label"), traceparent(root)])]))
        root.end()
        let spans = tracer.spans(inTrace: try #require(root.traceID))
        let handled = try #require(spans.first { $0.name == "GenServer.handleCall InteropCounter" }, "spans: \(spans)")
        #expect(handled.parentID == root.spanID && handled.kind == .server)
        #expect(try await erl.rpc("parley_interop", "traced_call", [dest, .atom("get"), 42]) == .tuple([.tuple([.ok, 4]), .tuple([.atom("label"), 42])]))
        #expect(Distribution.nodes.contains(erl.name))
        try await server.stop()
    }
}
}
