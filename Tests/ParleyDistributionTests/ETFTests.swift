@_spi(Distribution) import Parley
import ParleyDistribution
import Testing

// The external term format codec, against the rules of Erlang's erl_ext_dist documentation
// (https://www.erlang.org/doc/apps/erts/erl_ext_dist.html) and against bytes made by a real
// Erlang node (OTP 25, `erl -noshell -eval 'io:format("~s~n", [binary:encode_hex(term_to_binary(T))])'`).

/// Bytes from hex text.
func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count / 2)
    var high: UInt8?
    for c in text.utf8 {
        let v: UInt8
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
        default: continue
        }
        if let h = high {
            out.append(h << 4 | v)
            high = nil
        } else {
            high = v
        }
    }
    return out
}

/// The error decoding `bytes` throws, or nil if it decodes.
func decodeError(_ bytes: [UInt8], limits: TermLimits = TermLimits()) -> TermDecodingError? {
    do {
        _ = try ExternalTermFormat.decode(bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// Version byte, `count` copies of `unit`, then NIL_EXT.
func repeated(_ unit: [UInt8], _ count: Int) -> [UInt8] {
    var out: [UInt8] = [131]
    for _ in 0..<count { out += unit }
    return out + [106]
}

func roundTrip(_ term: Term) throws -> Term {
    try ExternalTermFormat.decode(try ExternalTermFormat.encode(term))
}

/// `term_to_binary` output of an OTP 25 node (node nonode@nohost, creation 0).
enum Golden {
    static let pid = hex("835864000D6E6F6E6F6465406E6F686F7374000000550000000000000000")
    static let ref = hex("835A000364000D6E6F6E6F6465406E6F686F737400000000000327C6A29C0001058E6A32")
    static let export = hex("83716400056C697374736400036D61706102")
    static let closure = hex(
        "83700000004B016BC1C1A319C6446C1F5D994EB7F63AD60000000000000000640007676F6C64656E32610062035E0E0D" +
        "5864000D6E6F6E6F6465406E6F686F7374000000090000000000000000")
    static let bigMap = hex(
        "83740000002861216200000441610C619061176200000211611D6200000349611E6200000384612762000005F1611A62" +
        "000002A4611F62000003C1610B6179612562000005596109615161206200000400612262000004846119620000027161" +
        "1C620000031061066124612662000005A4610D61A96128620000064061146200000190610F61E1610E61C46102610461" +
        "07613161016101610861406103610961116200000121611662000001E4611562000001B9610461106124620000051061" +
        "186200000240610A6164612362000004C9611B62000002D9611362000001696105611961126200000144611062000001" +
        "00")
    static let smallMap = hex("83740000000364000161610168016400016374000000006D00000001626B000102")
    static let nested = hex("836803640001616802640001626802640001636802640001646A6C00000001680264000165463FF80000000000006A")
    static let helloLatin1 = hex("8364000568E96C6C6F")
    static let privet = hex("83770CD0BFD180D0B8D0B2D0B5D182")
    static let port = hex("835964000D6E6F6E6F6465406E6F686F73740000000000000000")
    static let huge = hex(
        "836F00000107000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "000000000000000000000000000000000000000000000000000000000010")
    static let compressed = hex(
        "835000001091789C15D467DB08040085E1D739591995148A444969A014A1A48C48696AC7411969180965142D2BBB224A" +
        "A28CA8682F1485165945D3084585D2A2AEE7CBFD13EE6E0505DE9642519C835238455234C5523C07A7444AA6544AE790" +
        "1C9AC3522687A76C8EC8912997F2A990A372742AA6528E49E51C9B2AA99AE3727CAAE58454CF8939293572724EC9A939" +
        "2D35532BB5737ACE489D9C99B35237F57276EAA7411AE69C9C9B46392F8D737E2E4893344DB334CF85699196B928AD72" +
        "712E49EB5C9ACB7279AEC895B92A6D7275AEC9B5B92ED7E786DC989BD236ED92B44F8774CCCDB9259DD2395DD235B7A6" +
        "5B6ECBEDB92377A67B7AA4677AE5AEF4CEDDE993BEE9977B726FFA6740066650EECBFD199C2179200FE6A13C9C473234" +
        "C3323C2332328F665446674CC6665CC667421ECBE379221333294F6672A6E4A93C9DA97926D3F26CA667469ECBF39999" +
        "59999D39792173332F2FE6A5BC9CF9599057F26A5ECBEB79236FE6ADBC9D77F26EDECBC22CCAE2BC9F0FB2244BF3613E" +
        "CAB22CCF8A7C9C4FF2693ECBE7599955F922ABB3266BB32EEBF365BECA866CCCD7F926DFE6BB7C9F1FB2299BB3255BF3" +
        "63B6657B76E4A7FC9C9DD9955FF26B7ECBEEECC9DEFC9E3FB22F7FE6AFFC9D7FF26FF6E740FE6B5F5050A8000A81C070" +
        "1014862250148A417138184A40492805A5E11038140E83327038948523E0482807E5A1021C05474345A804C740653816" +
        "AA4055380E8E876A7002548713E124A80127C329702A9C0635A116D486D3E10CA80367C2595017EAC1D9501F1A404338" +
        "07CE8546701E3486F3E10268024DA11934870BA105B4848BA0155C0C97406BB8142E83CBE10AB812AE823670355C03D7" +
        "C275703DDC0037C24DD016DA41A03D74808E7033DC029DA0337481AE702B7483DBE076B803EE84EED0037A422FB80B7A" +
        "C3DDD007FA423FB807EE85FE300006C220B80FEE87C130041E8007E12178181E81A1300C86C30818098FC228180D6360" +
        "2C8C83F130011E83C7E109980893E049980C53E029781AA6C233300D9E85E930039E83E76126CC82D930075E80B9300F" +
        "5E8497E065980F0BE01578155E83D7E10D7813DE82B7E11D7817DE8385B00816C3FBF0012C81A5F0217C04CB6039AC80" +
        "8FE113F8143E83CF6125AC822F6035AC81B5B00ED6C397F0156C808DF0357C03DFC277F03DFC009B60336C81ADF0236C" +
        "83EDB0037E829F6127EC825FE057F80D76C31ED80BBFC31FB00FFE84BFE06FF807FE85FD7000F84FFC27FE13FF89FFC4" +
        "7FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23F" +
        "F19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF8" +
        "4FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27" +
        "FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF" +
        "89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC4" +
        "7FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23F" +
        "F19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF8" +
        "4FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27" +
        "FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF" +
        "89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF84FFC27FE13FF89FFC47FE23FF19FF8CFFC67FE33FF99FFCC" +
        "7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63F" +
        "F39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9" +
        "CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67" +
        "FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF" +
        "99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC" +
        "7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63F" +
        "F39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9" +
        "CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67" +
        "FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFFC67FE33FF99FFCC7FE63FF39FF9CFDBBAFE0FF2" +
        "316D8F")
    static let floatV0 = hex("8363332E3134303030303030303030303030303132343334652B30300000000000")
    static let mixed = hex(
        "83680B6B000568656C6C6F6D0000000362696E4D00000003040102304640091EB851EB851F6E09010000000000000000" +
        "406C000000026101610261036A68006D00000000640005555050455264000474727565")
}

private let nonode = Array("nonode@nohost".utf8)

/// The codec tests (this file's and TermCodableTests'), serialized: the atom-table test
/// lowers a process-wide limit for the length of one decode, and no other test that decodes
/// may intern a new atom meanwhile.
extension DistributionTests {
    @Suite("Distribution codecs", .serialized)
    enum CodecTests {}
}

extension DistributionTests.CodecTests {
    @Suite("External term format (erl_ext_dist)")
    struct ETFTests {
        // MARK: Known encodings

        @Test("term_to_binary({ok,42}) = 131,104,2,119,2,111,107,97,42: SMALL_TUPLE_EXT, SMALL_ATOM_UTF8_EXT (OTP 26 default), SMALL_INTEGER_EXT")
        func okTuple() throws {
            let term = Term.tuple([.atom("ok"), 42])
            #expect(try ExternalTermFormat.encode(term) == [131, 104, 2, 119, 2, 111, 107, 97, 42])
            // OTP 25's default (minor_version 1) writes latin-1 atoms as ATOM_EXT (100): both decode.
            #expect(try ExternalTermFormat.decode([131, 104, 2, 100, 0, 2, 111, 107, 97, 42]) == term)
            #expect(try ExternalTermFormat.decode([131, 104, 2, 119, 2, 111, 107, 97, 42]) == term)
        }

        struct IntegerCase: Sendable, CustomTestStringConvertible {
            let value: Int
            let bytes: [UInt8]
            var testDescription: String { "\(value)" }
        }

        @Test(
            "integers: SMALL_INTEGER_EXT (97) for 0...255, INTEGER_EXT (98) for 32-bit signed, SMALL_BIG_EXT (110) beyond",
            arguments: [
                IntegerCase(value: 0, bytes: [97, 0]),
                IntegerCase(value: 255, bytes: [97, 255]),
                IntegerCase(value: 256, bytes: [98, 0, 0, 1, 0]),
                IntegerCase(value: -1, bytes: [98, 255, 255, 255, 255]),
                IntegerCase(value: Int(Int32.max), bytes: [98, 127, 255, 255, 255]),
                IntegerCase(value: Int(Int32.min), bytes: [98, 128, 0, 0, 0]),
                IntegerCase(value: Int(Int32.max) + 1, bytes: [110, 4, 0, 0, 0, 0, 128]),
                IntegerCase(value: Int(Int32.min) - 1, bytes: [110, 4, 1, 1, 0, 0, 128]),
                IntegerCase(value: Int.max, bytes: [110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 127]),
                IntegerCase(value: Int.min, bytes: [110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128]),
            ])
        func integers(_ c: IntegerCase) throws {
            #expect(try ExternalTermFormat.encode(.integer(c.value)) == [131] + c.bytes)
            #expect(try ExternalTermFormat.decode([131] + c.bytes) == .integer(c.value))
        }

        @Test("big integers: SMALL_BIG_EXT (n ≤ 255 bytes, little-endian magnitude) and LARGE_BIG_EXT (111) past that")
        func bigIntegers() throws {
            // term_to_binary(1 bsl 64) and term_to_binary(-(1 bsl 70)) on OTP 25.
            let twoTo64 = Term.bigInteger(BigInteger(negative: false, magnitude: [0, 0, 0, 0, 0, 0, 0, 0, 1]))
            #expect(try ExternalTermFormat.encode(twoTo64) == [131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
            #expect(try ExternalTermFormat.decode([131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) == twoTo64)
            let negTwoTo70 = Term.bigInteger(BigInteger(negative: true, magnitude: [0, 0, 0, 0, 0, 0, 0, 0, 64]))
            #expect(try ExternalTermFormat.decode([131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 64]) == negTwoTo70)
            #expect(negTwoTo70.description == "-1180591620717411303424")
            // 1 bsl 2100: 263 magnitude bytes, LARGE_BIG_EXT.
            let huge = try ExternalTermFormat.decode(Golden.huge)
            guard case .bigInteger(let b) = huge else { Issue.record("not a big integer: \(huge)"); return }
            #expect(b.magnitude.count == 263 && b.magnitude.last == 16 && !b.negative)
            #expect(try ExternalTermFormat.encode(huge) == Golden.huge)
            // A big integer that fits in Int decodes as .integer, even with zero padding.
            #expect(try ExternalTermFormat.decode([131, 110, 3, 0, 5, 0, 0]) == .integer(5))
            #expect(try ExternalTermFormat.decode([131, 110, 0, 0]) == .integer(0))
        }

        @Test("floats: NEW_FLOAT_EXT (70), 8 bytes IEEE 754 big-endian; NaN and infinities cannot be encoded")
        func floats() throws {
            // term_to_binary(3.14)
            let bytes: [UInt8] = [131, 70, 64, 9, 30, 184, 81, 235, 133, 31]
            #expect(try ExternalTermFormat.encode(.float(3.14)) == bytes)
            #expect(try ExternalTermFormat.decode(bytes) == .float(3.14))
            #expect(try roundTrip(.float(-0.0)) == .float(-0.0))
            #expect(throws: TermEncodingError.nonFiniteFloat(.infinity)) { try ExternalTermFormat.encode(.float(.infinity)) }
            #expect(throws: TermEncodingError.self) { try ExternalTermFormat.encode([1, .float(.nan)]) }
        }

        @Test("legacy FLOAT_EXT (99): 31 bytes of \"%.20e\" text, as term_to_binary(3.14, [{minor_version,0}]) writes")
        func legacyFloat() throws {
            #expect(try ExternalTermFormat.decode(Golden.floatV0) == .float(3.14))
            var inf = [UInt8](repeating: 0, count: 32)
            inf[0] = 99
            for (i, c) in "inf".utf8.enumerated() { inf[1 + i] = c }
            #expect(decodeError([131] + inf) == .invalid("FLOAT_EXT 'inf'", at: 1))
        }

        @Test("STRING_EXT (107) for lists of up to 65535 small integers, LIST_EXT (108) for longer or other lists")
        func stringExtVersusList() throws {
            #expect(try ExternalTermFormat.encode([1, 2, 3]) == [131, 107, 0, 3, 1, 2, 3])
            #expect(try ExternalTermFormat.decode([131, 107, 0, 5] + Array("hello".utf8)) == .list("hello".utf8.map { .integer(Int($0)) }))

            let max = Term.list(Array(repeating: 7, count: 65535))
            let maxBytes = try ExternalTermFormat.encode(max)
            #expect(Array(maxBytes.prefix(3)) == [131, 107, 255] && maxBytes[3] == 255 && maxBytes.count == 4 + 65535)
            #expect(try ExternalTermFormat.decode(maxBytes) == max)

            let over = Term.list(Array(repeating: 7, count: 65536))
            let overBytes = try ExternalTermFormat.encode(over)
            #expect(Array(overBytes.prefix(6)) == [131, 108, 0, 1, 0, 0] && overBytes.last == 106)
            #expect(try ExternalTermFormat.decode(overBytes) == over)

            // lists:seq(0, 255) ++ [256]: one element is not a small integer, so LIST_EXT, as OTP 25 writes it.
            let mixed = Term.list((0...256).map { .integer($0) })
            let expected: [UInt8] = [131, 108, 0, 0, 1, 1] + (0...255).flatMap { [97, UInt8($0)] } + [98, 0, 0, 1, 0, 106]
            #expect(try ExternalTermFormat.encode(mixed) == expected)
            #expect(try ExternalTermFormat.encode([]) == [131, 106])
        }

        @Test("improper lists: LIST_EXT whose tail is not NIL_EXT, such as [alias | Ref] and [1,2|3]")
        func improperLists() throws {
            // term_to_binary([1,2|3])
            let bytes: [UInt8] = [131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 97, 3]
            let term = Term.improperList([1, 2], tail: 3)
            #expect(try ExternalTermFormat.decode(bytes) == term)
            #expect(try ExternalTermFormat.encode(term) == bytes)

            let ref = Reference(node: Node.named("a@b"), creation: 3, words: [1, 2, 3])
            let alias = Term.improperList([.atom("alias")], tail: .reference(ref))
            let encoded = try ExternalTermFormat.encode(alias)
            #expect(Array(encoded.prefix(6)) == [131, 108, 0, 0, 0, 1])
            #expect(encoded.last != 106)
            #expect(try ExternalTermFormat.decode(encoded) == alias)
        }

        @Test("maps: MAP_EXT (116), arity then key, value pairs")
        func maps() throws {
            #expect(try ExternalTermFormat.encode([.atom("a"): 1]) == [131, 116, 0, 0, 0, 1, 119, 1, 97, 97, 1])
            // #{a => 1, <<"b">> => [2], {c} => #{}}
            #expect(try ExternalTermFormat.decode(Golden.smallMap) == [.atom("a"): 1, "b": [2], .tuple([.atom("c")]): [:]])
            // A map of 40 keys (a hash map on the BEAM, still MAP_EXT on the wire).
            let big = try ExternalTermFormat.decode(Golden.bigMap)
            guard case .map(let m) = big else { Issue.record("not a map"); return }
            #expect(m.count == 40)
            for (k, v) in m { #expect(v.intValue == k.intValue.map { $0 * $0 }) }
            #expect(try roundTrip(big) == big)
        }

        @Test("binaries: BINARY_EXT (109); BIT_BINARY_EXT (77) with 1...8 significant bits in the last byte")
        func binaries() throws {
            #expect(try ExternalTermFormat.encode("bin") == [131, 109, 0, 0, 0, 3, 98, 105, 110])
            #expect(try ExternalTermFormat.encode(.binary([])) == [131, 109, 0, 0, 0, 0])
            // term_to_binary(<<1,2,3:4>>)
            let bits: [UInt8] = [131, 77, 0, 0, 0, 3, 4, 1, 2, 48]
            #expect(try ExternalTermFormat.decode(bits) == .bitBinary([1, 2, 48], bits: 4))
            #expect(try ExternalTermFormat.encode(.bitBinary([1, 2, 48], bits: 4)) == bits)
            // Eight bits in the last byte is a whole binary.
            #expect(try ExternalTermFormat.decode([131, 77, 0, 0, 0, 1, 8, 5]) == .binary([5]))
        }

        @Test("EXPORT_EXT (113): module and function atoms, arity as SMALL_INTEGER_EXT")
        func export() throws {
            // term_to_binary(fun lists:map/2) on OTP 25 (ATOM_EXT atoms).
            let term = try ExternalTermFormat.decode(Golden.export)
            #expect(term == .export(module: "lists", function: "map", arity: 2))
            #expect(try ExternalTermFormat.encode(term) == [131, 113, 119, 5] + Array("lists".utf8) + [119, 3] + Array("map".utf8) + [97, 2])
        }

        @Test("compressed terms (tag 80): uncompressed size, then zlib data, as term_to_binary(lists:seq(1,1000), [compressed])")
        func compressed() throws {
            #expect(Golden.compressed[1] == 80)
            #expect(try ExternalTermFormat.decode(Golden.compressed) == .list((1...1000).map { .integer($0) }))
        }

        @Test("legacy atoms: ATOM_EXT (100) and SMALL_ATOM_EXT (115) are latin-1; ATOM_UTF8_EXT (118) too; we write SMALL_ATOM_UTF8_EXT (119)")
        func legacyAtoms() throws {
            #expect(try ExternalTermFormat.decode([131, 100, 0, 2, 111, 107]) == .atom("ok"))
            #expect(try ExternalTermFormat.decode([131, 115, 2, 111, 107]) == .atom("ok"))
            #expect(try ExternalTermFormat.decode([131, 118, 0, 2, 111, 107]) == .atom("ok"))
            // 'héllo': OTP 25 writes é as the latin-1 byte 233 in ATOM_EXT...
            let hello = try ExternalTermFormat.decode(Golden.helloLatin1)
            #expect(hello == .atom("héllo"))
            // ...and we write UTF-8, as term_to_binary('héllo', [{minor_version,2}]) does.
            #expect(try ExternalTermFormat.encode(hello) == [131, 119, 6, 104, 195, 169, 108, 108, 111])
            #expect(try ExternalTermFormat.decode(Golden.privet) == .atom("привет"))
            #expect(try ExternalTermFormat.encode(.atom("привет")) == Golden.privet)
        }

        // MARK: Golden vectors from a real node

        @Test("golden vectors from erl (OTP 25) decode, re-encode, and decode again to the same term")
        func goldenRoundTrips() throws {
            let all = [Golden.pid, Golden.ref, Golden.export, Golden.closure, Golden.bigMap, Golden.smallMap, Golden.nested,
                       Golden.helloLatin1, Golden.privet, Golden.port, Golden.huge, Golden.compressed, Golden.floatV0, Golden.mixed]
            for bytes in all {
                let first = try ExternalTermFormat.decode(bytes)
                let second = try ExternalTermFormat.decode(try ExternalTermFormat.encode(first))
                #expect(first == second)
            }
        }

        @Test("a pid of nonode@nohost, creation 0 (NEW_PID_EXT, 88) is this node's own while it is not distributed")
        func goldenPid() throws {
            // term_to_binary(list_to_pid("<0.85.0>")) on a node that is not distributed.
            let term = try ExternalTermFormat.decode(Golden.pid)
            guard case .pid(let pid) = term else { Issue.record("not a pid: \(term)"); return }
            #expect(pid.id == 85 && pid.serial == 0)
            if Node.localNodeName == "nonode@nohost" && LocalNode.default.wireCreation == 0 {
                #expect(pid.isLocal)  // Remote.localPid: the same node name and creation as ours
            } else {
                #expect(pid.node?.name == "nonode@nohost" && pid.creation == 0)
            }
            // Written back as NEW_PID_EXT with a UTF-8 node atom.
            if pid.isLocal && Node.localNodeName == "nonode@nohost" && LocalNode.default.wireCreation == 0 {
                #expect(try ExternalTermFormat.encode(term) == [131, 88, 119, 13] + nonode + [0, 0, 0, 85, 0, 0, 0, 0, 0, 0, 0, 0])
            }
        }

        @Test("a reference (NEWER_REFERENCE_EXT, 90) keeps its node, creation and three words")
        func goldenReference() throws {
            let term = try ExternalTermFormat.decode(Golden.ref)
            guard case .reference(let ref) = term else { Issue.record("not a reference: \(term)"); return }
            #expect(ref.words == [0x0003_27C6, 0xA29C_0001, 0x058E_6A32])
            #expect(ref.node?.name == "nonode@nohost")
            #expect(ref.creation == 0)
            // Re-encoded with a UTF-8 node atom, otherwise byte for byte.
            #expect(try ExternalTermFormat.encode(term) == [131, 90, 0, 3, 119, 13] + nonode + Array(Golden.ref.suffix(16)))
        }

        @Test("a port (NEW_PORT_EXT, 89) and a closure (NEW_FUN_EXT, 112) pass through unchanged")
        func goldenPortAndFun() throws {
            #expect(try ExternalTermFormat.decode(Golden.port) == .port(Port(node: "nonode@nohost", id: 0, creation: 0)))
            let fun = try ExternalTermFormat.decode(Golden.closure)
            guard case .fun(let f) = fun else { Issue.record("not a fun: \(fun)"); return }
            #expect(f.bytes.count == Golden.closure.count - 1 && f.bytes.first == 112)
            #expect(try ExternalTermFormat.encode(fun) == Golden.closure)
        }

        @Test("nested tuples and a mixed tuple decode to the expected structure")
        func goldenStructure() throws {
            // {a,{b,{c,{d,[]}}},[{e,1.5}]}
            #expect(try ExternalTermFormat.decode(Golden.nested) == .tuple([
                .atom("a"), .tuple([.atom("b"), .tuple([.atom("c"), .tuple([.atom("d"), []])])]), [.tuple([.atom("e"), 1.5])],
            ]))
            // {"hello", <<"bin">>, <<1,2,3:4>>, 3.14, -(1 bsl 70), [1,2|3], [], {}, <<>>, 'UPPER', true}
            let mixed = try ExternalTermFormat.decode(Golden.mixed)
            #expect(mixed == .tuple([
                .list("hello".utf8.map { .integer(Int($0)) }), "bin", .bitBinary([1, 2, 48], bits: 4), 3.14,
                .bigInteger(BigInteger(negative: true, magnitude: [0, 0, 0, 0, 0, 0, 0, 0, 64])),
                .improperList([1, 2], tail: 3), [], .tuple([]), .binary([]), .atom("UPPER"), true,
            ]))
            #expect(Atom("UPPER").description == "'UPPER'")
        }

        // MARK: Bad input

        /// A term with one of nearly everything, for the truncation test.
        var rich: [UInt8] {
            get throws {
                let parts = try [Golden.mixed, Golden.pid, Golden.ref, Golden.closure, Golden.smallMap, Golden.export,
                                 Golden.bigMap, Golden.port, Golden.huge, Golden.privet].map { try ExternalTermFormat.decode($0) }
                return try ExternalTermFormat.encode(.tuple(parts + [.float(2.5), .atom(Atom(String(repeating: "é", count: 200)))]))
            }
        }

        @Test("every proper prefix of a rich term is refused with truncated or lengthTooLarge, never a crash")
        func truncation() throws {
            let bytes = try rich
            #expect(try ExternalTermFormat.decode(bytes) != .nil)
            for n in 0..<bytes.count {
                switch decodeError(Array(bytes.prefix(n))) {
                case .truncated?, .lengthTooLarge?: break
                case let other: Issue.record("prefix of \(n) bytes: \(String(describing: other))")
                }
            }
            // And of a compressed term: the zlib stream ends early.
            for n in 2..<Golden.compressed.count {
                #expect(decodeError(Array(Golden.compressed.prefix(n))) != nil, "prefix \(n)")
            }
        }

        @Test("unknown tags, atom cache references (82, not negotiated), a bad version byte and empty input are refused")
        func unknownTags() {
            #expect(decodeError([131, 200]) == .unknownTag(200, at: 1))
            #expect(decodeError([131, 82, 0]) == .unknownTag(82, at: 1))
            #expect(decodeError([131, 104, 1, 0]) == .unknownTag(0, at: 3))
            #expect(decodeError([130, 97, 1]) == .badVersion(130))
            #expect(decodeError([]) == .truncated(at: 0))
            #expect(decodeError([131]) == .truncated(at: 1))
        }

        @Test("huge stated lengths (0xFFFFFFFF elements or bytes) are refused before anything is allocated")
        func hugeLengths() {
            let max: [UInt8] = [255, 255, 255, 255]
            #expect(decodeError([131, 108] + max) == .lengthTooLarge(4_294_967_295, at: 1))  // LIST_EXT
            #expect(decodeError([131, 109] + max) == .lengthTooLarge(4_294_967_295, at: 1))  // BINARY_EXT
            #expect(decodeError([131, 116] + max) == .lengthTooLarge(4_294_967_295, at: 1))  // MAP_EXT
            #expect(decodeError([131, 105] + max) == .lengthTooLarge(4_294_967_295, at: 1))  // LARGE_TUPLE_EXT
            #expect(decodeError([131, 111] + max + [0]) == .lengthTooLarge(4_294_967_295, at: 1))  // LARGE_BIG_EXT
            #expect(decodeError([131, 77] + max + [8]) == .lengthTooLarge(4_294_967_295, at: 1))  // BIT_BINARY_EXT
            #expect(decodeError([131, 112] + max) == .lengthTooLarge(4_294_967_295, at: 1))  // NEW_FUN_EXT
            #expect(decodeError([131, 107, 255, 255]) == .truncated(at: 4))  // STRING_EXT
            // Deeper in: the position is the inner tag's.
            #expect(decodeError([131, 104, 2, 97, 1, 108] + max) == .lengthTooLarge(4_294_967_295, at: 5))
            // A map of 3 pairs needs at least 6 bytes.
            #expect(decodeError([131, 116, 0, 0, 0, 3, 97, 1, 97, 2, 97]) == .lengthTooLarge(3, at: 1))
        }

        @Test("100,000 nested 1-tuples stop at TermLimits.maxDepth (2000) with tooDeep")
        func deepNesting() {
            let deep = repeated([104, 1], 100_000)
            #expect(decodeError(deep) == .tooDeep(limit: 2000))
            // Exactly at the limit decodes; one more does not. Lists and maps count too.
            let ten = repeated([104, 1], 10)
            #expect(decodeError(ten, limits: TermLimits(maxDepth: 10)) == nil)
            #expect(decodeError(ten, limits: TermLimits(maxDepth: 9)) == .tooDeep(limit: 9))
            let lists = repeated([108, 0, 0, 0, 1], 50)
            #expect(decodeError(lists, limits: TermLimits(maxDepth: 20)) == .tooDeep(limit: 20))
            let maps = repeated([116, 0, 0, 0, 1, 97, 1], 50)
            #expect(decodeError(maps, limits: TermLimits(maxDepth: 20)) == .tooDeep(limit: 20))
        }

        @Test("terms nested as deep as the default limit allows decode, encode and compare without running out of stack")
        func deepestAllowed() throws {
            for unit: [UInt8] in [[104, 1], [108, 0, 0, 0, 1], [116, 0, 0, 0, 1, 97, 1]] {
                var bytes = repeated(unit, 2000)
                if unit[0] == 108 { bytes += Array(repeating: 106, count: 2000) }  // each list's tail
                let term = try ExternalTermFormat.decode(bytes)
                #expect(try ExternalTermFormat.encode(term) == bytes)
                #expect(try roundTrip(term) == term)
            }
        }

        @Test("a compressed term claiming 4 GiB is refused with inflatedTooLarge; a wrong size or bad zlib with badCompression")
        func compressionBombs() {
            #expect(decodeError([131, 80, 255, 255, 255, 255, 120, 156, 3, 0]) == .inflatedTooLarge(4_294_967_295, limit: 256 << 20))
            #expect(decodeError(Golden.compressed, limits: TermLimits(maxInflatedSize: 1000)) == .inflatedTooLarge(4241, limit: 1000))
            var wrongSize = Golden.compressed
            wrongSize[5] &+= 1  // claims one byte more than the stream holds
            #expect(decodeError(wrongSize) == .badCompression)
            #expect(decodeError([131, 80, 0, 0, 0, 10, 1, 2, 3, 4]) == .badCompression)
            #expect(decodeError([131, 80, 0, 0, 0, 0]) != nil)
        }

        @Test("an atom flood past AtomTable.limit is refused with atomTableFull, and the table stays within its limit")
        func atomFlood() throws {
            let tag = UInt64.random(in: 0...UInt64.max)
            let term = Term.list((0..<20).map { .atom(Atom("flood_\(tag)_\($0)")) })
            let bytes = try ExternalTermFormat.encode(term)
            let saved = AtomTable.limit
            let limit = AtomTable.count + 10
            AtomTable.limit = limit
            let error = decodeError(bytes)
            let countWhileLimited = AtomTable.count
            AtomTable.limit = saved
            #expect(error == .atomTableFull(limit: limit))
            #expect(countWhileLimited <= limit)
            // With room again, the same atoms decode; known atoms never count against the limit.
            #expect(try ExternalTermFormat.decode(bytes) == term)
        }

        @Test("malformed values: a 6-word reference, a bitstring of 0 or 9 bits, a non-finite float, bad atoms, trailing bytes")
        func malformed() {
            let node: [UInt8] = [119, 1, 97]
            #expect(decodeError([131, 90, 0, 6] + node + [0, 0, 0, 0] + Array(repeating: 1, count: 24))
                == .invalid("a reference has 1 to 5 words, not 6", at: 1))
            #expect(decodeError([131, 90, 0, 0] + node + [0, 0, 0, 0]) == .invalid("a reference has 1 to 5 words, not 0", at: 1))
            #expect(decodeError([131, 77, 0, 0, 0, 1, 0, 255]) == .invalid("bitstring with 0 bits in its last byte", at: 1))
            #expect(decodeError([131, 77, 0, 0, 0, 1, 9, 255]) == .invalid("bitstring with 9 bits in its last byte", at: 1))
            // NEW_FLOAT_EXT with NaN's and infinity's bit patterns: binary_to_term refuses them too.
            #expect(decodeError([131, 70, 127, 248, 0, 0, 0, 0, 0, 0]) == .invalid("non-finite float", at: 1))
            #expect(decodeError([131, 70, 255, 240, 0, 0, 0, 0, 0, 0]) == .invalid("non-finite float", at: 1))
            // Atoms: invalid UTF-8; more than 255 characters, in UTF-8 and in latin-1.
            #expect(decodeError([131, 119, 2, 0xC3, 0x28]) == .invalidAtom(at: 3))
            #expect(decodeError([131, 118, 1, 0] + Array(repeating: 97, count: 256)) == .invalidAtom(at: 4))
            #expect(decodeError([131, 100, 1, 0] + Array(repeating: 233, count: 256)) == .invalidAtom(at: 4))
            #expect(decodeError([131, 100, 0, 255] + Array(repeating: 233, count: 255)) == nil)
            #expect(decodeError([131, 113, 119, 1, 109, 119, 1, 102, 98, 0, 0, 0, 2]) == .invalid("export arity is not a small integer", at: 8))
            #expect(decodeError([131, 97, 1, 0, 0]) == .trailingBytes(2))
            #expect(throws: TermEncodingError.atomTooLong(String(repeating: "a", count: 256))) {
                try ExternalTermFormat.encode(.atom(Atom(String(repeating: "a", count: 256))))
            }
        }
    }
}
