@_spi(Distribution) import Parley
@testable import ParleyDistribution
import Testing

private typealias ETFTag = ParleyDistribution.Tag

extension DistributionTests.CodecTests {
    @Suite("SEND's control message, read without building it")
    struct SendControlTests {
        @Test("SEND's control {2, '', To} (erl_dist_protocol): the fast path gives the pid the general decoder gives, for this node's pids in every atom encoding, an earlier incarnation's and another node's")
        func sendControlFastPath() throws {
            let me = WireIdentity(name: "fast@127.0.0.1", creation: 7)
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
    }
}
