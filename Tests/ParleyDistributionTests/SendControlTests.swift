@_spi(Distribution) import Parley
@testable import ParleyETF
import ParleyETFFuzz
import Foundation
import Testing

private typealias ETFTag = ParleyETF.Tag

extension DistributionTests.CodecTests {
    @Suite("SEND's control message, read without building it")
    struct SendControlTests {
        @Test("SEND's control {2, '', To} (erl_dist_protocol): the fast path gives the pid the general decoder gives, for this node's pids in every atom encoding, an earlier incarnation's and another node's")
        func sendControlFastPath() throws {
            let me = WireIdentity(home: .default, name: "fast@127.0.0.1", creation: 7)
            let name = Array(me.name.utf8)
            func atom(_ tag: UInt8, _ bytes: [UInt8]) -> [UInt8] {
                tag == ETFTag.atomUTF8 || tag == ETFTag.atom ? [tag, 0, UInt8(bytes.count)] + bytes : [tag, UInt8(bytes.count)] + bytes
            }
            func pidBytes(_ nodeAtom: [UInt8], id: UInt32, creation: UInt32) -> [UInt8] {
                [ETFTag.newPid] + nodeAtom + [0, 0, 0, UInt8(id), 0, 0, 0, 0, 0, 0, 0, UInt8(creation)]
            }
            func decode(_ control: [UInt8]) throws -> (fast: Pid?, general: Term) {
                let bytes = [131] + control
                let fast = try bytes.withUnsafeBytes { raw in
                    try Result { () throws(TermDecodingError) -> Pid? in
                        var r = TermReader(raw, identity: me, limits: TermLimits())
                        return try r.readSendControl()
                    }.get()
                }
                let general = try bytes.withUnsafeBytes { raw in
                    try Result { () throws(TermDecodingError) -> Term in
                        var r = TermReader(raw, identity: me, limits: TermLimits())
                        return try r.readVersioned()
                    }.get()
                }
                return (fast, general)
            }
            for cookie in [atom(ETFTag.smallAtomUTF8, []), atom(ETFTag.atom, []), atom(ETFTag.smallAtom, [])] {
                for tag in [ETFTag.smallAtomUTF8, ETFTag.atomUTF8, ETFTag.atom, ETFTag.smallAtom] {
                    for (nodeName, creation) in [(name, UInt32(7)), (name, 3), (Array("other@127.0.0.1".utf8), 7)] {
                        let control = [ETFTag.smallTuple, 3, ETFTag.smallInteger, 2] + cookie + pidBytes(atom(tag, nodeName), id: 42, creation: creation)
                        let (fast, general) = try decode(control)
                        guard case .tuple(let t) = general, t.count == 3, case .pid(let expected) = t[2] else {
                            Issue.record("general decoder gave \(general)"); continue
                        }
                        #expect(fast == expected, "tag \(tag), creation \(creation)")
                        #expect(fast?.isLocal == (nodeName == name && creation == 7))
                    }
                }
            }
            // Not a SEND: nothing is consumed and nil comes back.
            #expect(try decode([ETFTag.smallTuple, 3, ETFTag.smallInteger, 6] + atom(ETFTag.smallAtomUTF8, []) + pidBytes(atom(ETFTag.smallAtomUTF8, name), id: 1, creation: 7)).fast == nil)
        }

        @Test("SEND's control written without building it is the bytes the general encoder gives for {2, '', To}, and reads back through the fast path")
        func sendControlWriter() throws {
            let me = WireIdentity(home: .default, name: "fast@127.0.0.1", creation: 7)
            let local = LocalNode.default.localPid(id: 42, serial: 0)
            let remote = Pid(node: Node.named("other@127.0.0.1"), id: 9, serial: 1, creation: 3)
            for pid in [local, remote] {
                let written = try withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { scratch in
                    var sink = ScratchSink(scratch)
                    try sink.writeSendControl(to: pid, identity: me)
                    return sink.withBytes { Array($0) }
                }
                var general: [UInt8] = []
                try TermWriter.write(.tuple([.integer(2), .atom(""), .pid(pid)]), into: &general, identity: me)
                #expect(written == general)
                let back = try ([131] + written).withUnsafeBytes { raw in
                    try Result { () throws(TermDecodingError) -> Pid? in
                        var r = TermReader(raw, identity: me, limits: TermLimits())
                        return try r.readSendControl()
                    }.get()
                }
                #expect(back == pid)
            }
        }

        @Test("Every input in the fuzzer's checked-in corpus (Fuzz/corpus) decodes and survives the round trip, or is refused with a typed error")
        func fuzzCorpusReplays() throws {
            let corpus = URL(fileURLWithPath: #filePath)
                .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fuzz/corpus")
            let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
            #expect(files.count >= 10)
            for file in files {
                let bytes = try [UInt8](Data(contentsOf: corpus.appendingPathComponent(file)))
                #expect(decoderRoundTripFailure(bytes) == nil, "\(file)")
            }
        }
    }
}
