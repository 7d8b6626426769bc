import Foundation
@_spi(Distribution) import Parley
@testable import ParleyETF
import ParleyETFFuzz
import Testing

extension DistributionTests.CodecTests {
    /// The distribution header's atom cache (erl_ext_dist, "Distribution Header"): what a
    /// Parley node sends once the peer sets DFLAG_DIST_HDR_ATOM_CACHE, read back by the
    /// decoder Parley uses for every connection. Erlang's side of it is checked by the
    /// interop suite (every frame between Parley and Erlang nodes carries the header).
    @Suite("The distribution header and its atom cache")
    struct DistHeaderTests {
        let me = WireIdentity(home: .default, name: "hdr@127.0.0.1", creation: 7)

        /// One frame as Connection makes it: the body encoded with references, the header
        /// made from the sender's cache.
        func frame(_ control: Term, _ payload: Term?, _ out: inout AtomCacheOut) throws -> [UInt8] {
            var storage = [UInt8](repeating: 0, count: 512)
            let (body, refs): ([UInt8], AtomRefs) = try storage.withUnsafeMutableBytes { raw in
                var sink = ScratchSink(raw)
                sink.refs = AtomRefs()
                try sink.write(control, identity: me)
                if let payload {
                    sink.startMessage()
                    try sink.write(payload, identity: me)
                }
                return (sink.withBytes { Array($0) }, sink.refs!)
            }
            return out.header(for: refs) + body
        }

        /// Reads one frame as Connection does (`131 68`, the header, then the terms), with the
        /// fuzzer's reader, keeping the connection's cache in `cache`.
        func read(_ bytes: [UInt8], _ cache: DecodeCache) throws -> [Term] {
            try distributionFrame(bytes, limits: TermLimits(), cache: cache)
        }

        @Test("Frames round-trip through the header: atoms go as new cache entries (index and text) the first time and as the index alone after, in the order frames are sent")
        func roundTrip() throws {
            var out = AtomCacheOut()
            let cache = DecodeCache()
            let remote = Pid(node: Node.named("peer@127.0.0.1"), id: 9, serial: 1, creation: 3)
            let control: Term = .tuple([.integer(6), .pid(remote), .atom(""), .atom("net_kernel")])
            let payload: Term = .tuple([.atom("$gen_call"), .tuple([.pid(remote), .atom("x")]), .tuple([.atom("is_auth"), .atom("hdr@127.0.0.1")])])
            let first = try frame(control, payload, &out)
            let second = try frame(control, payload, &out)
            #expect(try read(first, cache) == [control, payload])
            #expect(try read(second, cache) == [control, payload])
            // The second frame names the same atoms by index only: shorter by their texts.
            #expect(second.count < first.count - "net_kernel".utf8.count - "$gen_call".utf8.count)
            // Header layout (erl_ext_dist): 131, 68, the count, then count/2+1 flag bytes.
            #expect(first[0] == 131 && first[1] == 68)
            let n = Int(first[2])
            #expect(n == 7)   // peer@127.0.0.1, '', net_kernel, $gen_call, x, is_auth, hdr@127.0.0.1
            // Every reference of the first frame is a new entry (NewCacheEntryFlag, 8); none
            // of the second's is.
            for i in 0..<n { #expect((first[3 + i / 2] >> UInt8((i & 1) * 4)) & 8 == 8) }
            for i in 0..<n { #expect((second[3 + i / 2] >> UInt8((i & 1) * 4)) & 8 == 0) }
        }

        @Test("Odd and even counts, more atoms than a frame lists (the rest go as text), and an atom over 255 bytes (LongAtoms: two-byte lengths) all read back")
        func layouts() throws {
            var out = AtomCacheOut()
            let cache = DecodeCache()
            let long = Atom(String(repeating: "é", count: 150))   // 300 bytes, 150 characters
            for k in 1...12 {
                let atoms = (0..<k).map { Term.atom(Atom("a\($0)")) }
                let t: Term = .tuple(atoms + (k == 5 ? [.atom(long)] : []))
                let bytes = try frame(t, nil, &out)
                #expect(Int(bytes[2]) == min(k + (k == 5 ? 1 : 0), AtomRefs.capacity), "k \(k)")
                #expect(try read(bytes, cache) == [t], "k \(k)")
            }
            // The long atom again, now held by the peer: still one frame that reads back.
            #expect(try read(try frame(.atom(long), nil, &out), cache) == [.atom(long)])
        }

        @Test("Two atoms that share a cache index in one frame: the first listed takes the index and the other goes as text (one atom per index per frame, as erts's insert_acache_map keeps it), in either order and whichever of them the peer holds")
        func sharedIndex() throws {
            // Find two names with one index (FNV-1a modulo 2,048: a collision among a few thousand).
            var seen: [UInt16: String] = [:]
            var pair: (String, String)? = nil
            for i in 0..<10_000 {
                let name = "c\(i)"
                let c = AtomRefs.cacheIndex(of: name)
                if let other = seen[c] { pair = (other, name); break }
                seen[c] = name
            }
            let (a, b) = try #require(pair)
            var out = AtomCacheOut()
            let cache = DecodeCache()
            let ab: Term = .tuple([.atom(Atom(a)), .atom(Atom(b))])
            let ba: Term = .tuple([.atom(Atom(b)), .atom(Atom(a))])
            // A frame lists one of the two: the other is written as text.
            let first = try frame(ab, nil, &out)
            #expect(first[2] == 1)
            #expect(try read(first, cache) == [ab])
            // The peer holds a at the index now. b listed first, as a new entry at a's
            // index, must not turn the a after it into b.
            #expect(try read(try frame(ba, nil, &out), cache) == [ba])
            #expect(try read(try frame(.atom(Atom(a)), nil, &out), cache) == [.atom(Atom(a))])
            #expect(try read(try frame(ba, nil, &out), cache) == [ba])
            #expect(try read(try frame(ab, nil, &out), cache) == [ab])
            #expect(try read(try frame(.atom(Atom(b)), nil, &out), cache) == [.atom(Atom(b))])
            #expect(try read(try frame(ab, nil, &out), cache) == [ab])
        }

        @Test("The fuzzer's seeds for frames with a distribution header (Fuzz/corpus/dist_header_*.bin) read as frames, so the fuzzer starts from inputs that reach the header's reader and the terms after it")
        func fuzzSeedsRead() throws {
            let corpus = URL(fileURLWithPath: #filePath)
                .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fuzz/corpus")
            func seed(_ name: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: corpus.appendingPathComponent(name))) }
            let atom = try distributionFrame(try seed("dist_header_atom.bin"), limits: TermLimits())
            #expect(atom == [Term.atom("a")])
            let send = try distributionFrame(try seed("dist_header_send.bin"), limits: TermLimits())
            #expect(send.count == 2)
            #expect(send.last == Term.tuple([.atom("hi"), .atom("peer@h")]))
        }

        @Test("Bad headers are typed errors: a reference to an entry never set, a truncated header, and an ATOM_CACHE_REF past the frame's list")
        func badHeaders() throws {
            let cache = DecodeCache()
            // One reference, not new (flag 0), index 5 of segment 0: never set.
            #expect(throws: TermDecodingError.self) { try read([131, 68, 1, 0x00, 5, ETFTagAlias.atomCacheRef, 0], cache) }
            // Two references announced, one present.
            #expect(throws: TermDecodingError.self) { try read([131, 68, 2, 0x88, 0, 1, 0x61], cache) }
            // A term naming reference 3 of a frame that lists one.
            #expect(throws: TermDecodingError.self) { try read([131, 68, 1, 0x08, 7, 1, 0x61, ETFTagAlias.atomCacheRef, 3], cache) }
            // And the good form of the last: reference 0 is 'a'.
            #expect(try read([131, 68, 1, 0x08, 7, 1, 0x61, ETFTagAlias.atomCacheRef, 0], cache) == [.atom("a")])
        }
    }
}

private typealias ETFTagAlias = ParleyETF.Tag
