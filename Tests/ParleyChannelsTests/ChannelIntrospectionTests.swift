import ParleyChannels
import Testing

/// Opt-in introspection: what core.async keeps about a channel (its buffer's `count`, and the
/// pending puts and takes queued on it, each at most MAX-QUEUE-SIZE, 1024) read for the
/// channels that asked to be listed.
@Suite("Channels: opt-in introspection", .serialized, .timeLimit(.minutes(1)))
struct ChannelIntrospectionTests {
    private func listed(_ name: String) -> ChannelSnapshot? { ChannelIntrospection.channels.first { $0.name == name } }

    @Test("An observed channel is listed with its buffer, fill, waiting senders and receivers, and closed state; others are not listed")
    func snapshot() async throws {
        let name = "introspect-\(UInt32.random(in: 0...UInt32.max))"
        let ch = Channel<Int>(buffer: .fixed(2)).observed(as: name)
        let unlisted = Channel<Int>(buffer: .fixed(2))
        #expect(try await unlisted.send(1))
        var s = try #require(listed(name))
        #expect(s.buffer == "fixed(2)" && s.capacity == 2 && s.count == 0)
        #expect(s.pendingSends == 0 && s.pendingReceives == 0 && !s.isClosed)
        #expect(s.elementType == "Int")

        #expect(try await ch.send(1))
        #expect(try await ch.send(2))
        let third = go { try await ch.send(3) }          // a full fixed buffer: this send waits
        #expect(await eventually { listed(name)?.pendingSends == 1 }, "a send into a full fixed buffer is a pending put")
        s = try #require(listed(name))
        #expect(s.count == 2)
        #expect(try await ch.receive() == 1)
        #expect(try await third.receive() == true)
        ch.close()
        s = try #require(listed(name))
        #expect(s.isClosed && s.count == 2 && s.pendingSends == 0, "closed; buffered values stay receivable (core.async close!)")
        _ = unlisted
    }

    @Test("A waiting receiver is a pending take; a promise channel shows whether it has its value")
    func receiversAndPromise() async throws {
        let name = "introspect-\(UInt32.random(in: 0...UInt32.max))"
        let ch = Channel<String>().observed(as: name)
        let taker = go { try await ch.receive() }
        #expect(await eventually { listed(name)?.pendingReceives == 1 })
        #expect(listed(name)?.buffer == "unbuffered")
        #expect(try await ch.send("x"))
        #expect(try await taker.receive() == "x")

        let promise = Channel<Int>(buffer: .promise).observed(as: name + "-promise")
        #expect(listed(name + "-promise")?.count == 0)
        _ = promise.offer(42)
        #expect(listed(name + "-promise")?.count == 1)
    }

    @Test("The list holds channels weakly: a channel nobody uses any more leaves it; forget takes one off at once")
    func weakAndForget() async throws {
        let name = "introspect-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let ch = Channel<Int>(buffer: .sliding(4)).observed(as: name)
            #expect(listed(name) != nil)
            _ = ch.offer(1)
        }
        #expect(listed(name) == nil, "released with its last reference")
        let kept = Channel<Int>(buffer: .dropping(1)).observed(as: name + "-kept")
        #expect(listed(name + "-kept") != nil)
        ChannelIntrospection.forget(kept)
        #expect(listed(name + "-kept") == nil)
        #expect(kept.offer(1), "forgetting does not touch the channel")
    }

    @Test("Channels made, used and dropped on many tasks while another lists them: every listing is consistent and the dropped ones leave (run under the thread sanitizer in CI)")
    func concurrentListing() async throws {
        let prefix = "introspect-storm-\(UInt32.random(in: 0...UInt32.max))"
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<4 {
                group.addTask {
                    for i in 0..<200 {
                        let ch = Channel<Int>(buffer: .fixed(2)).observed(as: "\(prefix)-\(t)-\(i)")
                        _ = ch.offer(i)
                        _ = ch.poll()
                    }
                }
            }
            group.addTask {
                for _ in 0..<100 {
                    for s in ChannelIntrospection.channels where s.name.hasPrefix(prefix) {
                        #expect(s.count <= s.capacity)
                    }
                    await Task.yield()
                }
            }
        }
        #expect(!ChannelIntrospection.channels.contains { $0.name.hasPrefix(prefix) })
    }
}
