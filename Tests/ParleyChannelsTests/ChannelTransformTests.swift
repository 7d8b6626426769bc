import ParleyChannels
import Synchronization
import Testing

@Suite("Channels: transforms (core.async transducers)", .timeLimit(.minutes(1)))
struct ChannelTransformTests {
    @Test("core.async (chan buf (map f)): puts are transformed; types may change")
    func mapTransform() async throws {
        let ch = Chan(buffer: .fixed(4), transform: Transducer<Int, String>.map { "#\($0)" })
        try await ch.send(1)
        try await ch.send(2)
        #expect(try await ch.receive() == "#1")
        #expect(try await ch.receive() == "#2")
    }

    @Test("core.async (filter) then (map): composed in order")
    func composed() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.filter { $0 % 2 == 0 }.then(.map { $0 * $0 }))
        for i in 1...6 { try await ch.send(i) }
        ch.close()
        var got: [Int] = []
        for try await v in ch { got.append(v) }
        #expect(got == [4, 16, 36])
    }

    @Test("core.async (take n): the channel closes after n values; later puts are refused")
    func takeCloses() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.take(2))
        #expect(try await ch.send(1))
        #expect(try await ch.send(2))
        #expect(ch.isClosed)
        #expect(try await ch.send(3) == false)
        #expect(try await ch.receive() == 1)
        #expect(try await ch.receive() == 2)
        #expect(try await ch.receive() == nil)
    }

    @Test("core.async (partition-all n): full groups as they fill; the last short group is flushed on close")
    func partitionFlush() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, [Int]>.partition(3))
        for i in 1...7 { try await ch.send(i) }
        #expect(ch.count == 2)
        ch.close()
        var got: [[Int]] = []
        for try await g in ch { got.append(g) }
        #expect(got == [[1, 2, 3], [4, 5, 6], [7]])
    }

    @Test("core.async mapcat: one put may produce several values")
    func flatMap() async throws {
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.flatMap { Array(repeating: $0, count: $0) })
        try await ch.send(2)
        try await ch.send(1)
        ch.close()
        var got: [Int] = []
        for try await v in ch { got.append(v) }
        #expect(got == [2, 2, 1])
    }

    @Test("core.async ex-handler: a throwing transform's value is replaced by the handler's, and the channel keeps working")
    func errorHandler() async throws {
        struct Odd: Error {}
        let ch = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.map { x in if x % 2 == 1 { throw Odd() }; return x },
                      onError: { _ in -1 })
        for i in 1...4 { try await ch.send(i) }
        let none = Chan(buffer: .fixed(10), transform: Transducer<Int, Int>.map { x in if x == 1 { throw Odd() }; return x })
        try await none.send(1)
        try await none.send(2)
        #expect(ch.poll() == -1)
        #expect(ch.poll() == 2)
        #expect(ch.poll() == -1)
        #expect(ch.poll() == 4)
        #expect(none.poll() == 2, "without a handler the failed value is dropped")
    }

    @Test("a transform needs a fixed buffer to make a waiting put wait, and waiting puts go through it when room is made")
    func waitingPutsAreTransformed() async throws {
        let ch = Chan(buffer: .fixed(1), transform: Transducer<Int, Int>.map { $0 * 10 })
        try await ch.send(1)
        let second = go { try await ch.send(2) }
        #expect(await eventually { ch.pending.sends == 1 })
        #expect(try await ch.receive() == 10)
        #expect(try await second.receive() == true)
        #expect(try await ch.receive() == 20)
    }
}
