import ParleyDistribution
import ParleyOTP
import Testing

// Codable bridging: TermEncoder, TermDecoder, AtomEnum, TermConvertible and Term's
// ConvertibleMessage conformance.

private struct Address: Codable, Equatable {
    var street: String
    var zip: Int
}

private struct User: Codable, Equatable {
    var name: String
    var age: Int
    var email: String?
    var tags: [String]
    var address: Address
    var scores: [String: Double]
}

private enum Status: String, AtomEnum, CaseIterable {
    case ok, error
    case notFound = "not_found"
}

private enum Fruit: String, Codable {
    case apple, pear
}

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(Double, Double)
    case empty
}

private struct Envelope: Codable, Equatable {
    var tag: Atom
    var payload: Term
    var from: Pid
    var ref: Reference
    var status: Status
    var fruit: Fruit
}

private struct Numbers: Codable, Equatable {
    var i8: Int8
    var u8: UInt8
    var i16: Int16
    var u16: UInt16
    var i32: Int32
    var u32: UInt32
    var i64: Int64
    var u64: UInt64
    var u: UInt
    var i128: Int128
    var u128: UInt128
    var f: Float
    var d: Double
    var b: Bool
}

private struct Bytes: Codable, Equatable {
    var data: [UInt8]
    var lists: [[UInt8]]
}

/// Uses nested keyed and unkeyed containers by hand.
private struct Point: Codable, Equatable {
    var x: Int, y: Int, z: Int
    var label: String

    enum Keys: String, CodingKey { case coords, meta }
    enum MetaKeys: String, CodingKey { case label }

    init(x: Int, y: Int, z: Int, label: String) {
        (self.x, self.y, self.z, self.label) = (x, y, z, label)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        var coords = c.nestedUnkeyedContainer(forKey: .coords)
        try coords.encode(x)
        try coords.encode(y)
        var inner = coords.nestedUnkeyedContainer()
        try inner.encode(z)
        var meta = c.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        try meta.encode(label, forKey: .label)
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        var coords = try c.nestedUnkeyedContainer(forKey: .coords)
        x = try coords.decode(Int.self)
        y = try coords.decode(Int.self)
        var inner = try coords.nestedUnkeyedContainer()
        z = try inner.decode(Int.self)
        let meta = try c.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        label = try meta.decode(String.self, forKey: .label)
    }
}

/// A class hierarchy encoding its superclass through superEncoder().
private class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

private final class Dog: Animal {
    var breed: String
    enum Keys: String, CodingKey { case breed }
    init(name: String, breed: String) {
        self.breed = breed
        super.init(name: name)
    }
    required init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        breed = try c.decode(String.self, forKey: .breed)
        try super.init(from: c.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(breed, forKey: .breed)
        try super.encode(to: c.superEncoder())
    }
}

/// A type with its own Erlang shape: `{point, X, Y}`, written as a Term.
private struct Pair: Codable, Equatable {
    var x: Int, y: Int
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(Term.tuple([.atom("point"), .integer(x), .integer(y)]))
    }
    init(x: Int, y: Int) { (self.x, self.y) = (x, y) }
    init(from decoder: any Decoder) throws {
        let t = try decoder.singleValueContainer().decode(Term.self)
        guard case .tuple(let items) = t, items.count == 3, items[0] == .atom("point"),
              case .integer(let x) = items[1], case .integer(let y) = items[2] else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a point"))
        }
        (self.x, self.y) = (x, y)
    }
}

private func atomMap(_ entries: KeyValuePairs<String, Term>) -> Term {
    var m: [Term: Term] = [:]
    for (k, v) in entries { m[.atom(Atom(k))] = v }
    return .map(m)
}

private func path(_ error: DecodingError) -> [String] {
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): return c.codingPath.map(\.stringValue)
    case .keyNotFound(let k, let c): return c.codingPath.map(\.stringValue) + [k.stringValue]
    @unknown default: return []
    }
}

private func message(_ error: DecodingError) -> String {
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c), .keyNotFound(_, let c): return c.debugDescription
    @unknown default: return ""
    }
}

extension DistributionTests.CodecTests {
    @Suite("Term Codable bridging")
    struct TermCodableTests {
        let encoder = TermEncoder()
        let decoder = TermDecoder()

        private let user = User(
            name: "Ann", age: 3, email: nil, tags: ["a", "b"],
            address: Address(street: "Main", zip: 12345), scores: ["math": 1.5])

        @Test("a nested struct is a map with atom keys, nil is the atom nil, [String: V] has binary keys")
        func nestedStruct() throws {
            let term = try encoder.encode(user)
            #expect(term == atomMap([
                "name": "Ann", "age": 3, "email": .atom("nil"), "tags": ["a", "b"],
                "address": atomMap(["street": "Main", "zip": 12345]),
                "scores": [.string("math"): 1.5],
            ]))
            #expect(try decoder.decode(User.self, from: term) == user)
        }

        @Test("the same struct survives the trip through external term format bytes")
        func throughBytes() throws {
            let bytes = try ExternalTermFormat.encode(try encoder.encode(user))
            #expect(try decoder.decode(User.self, from: try ExternalTermFormat.decode(bytes)) == user)
        }

        @Test("decoding accepts binary keys, keyword lists, undefined for nil, and a missing optional key")
        func lenientDecoding() throws {
            let binaryKeys: Term = [
                "name": "Ann", "age": 3, "email": .atom("undefined"), "tags": .tuple(["a", "b"]),
                "address": [.atom("street"): "Main", "zip": 12345], "scores": [.atom("math"): 1.5],
            ]
            #expect(try decoder.decode(User.self, from: binaryKeys) == user)

            let keyword: Term = .list([
                .tuple([.atom("name"), "Ann"]), .tuple([.atom("age"), 3]), .tuple([.atom("tags"), []]),
                .tuple([.atom("address"), .list([.tuple([.atom("street"), "Main"]), .tuple([.atom("zip"), 12345])])]),
                .tuple([.atom("scores"), [:]]),
            ])
            var expected = user
            expected.tags = []
            expected.scores = [:]
            #expect(try decoder.decode(User.self, from: keyword) == expected)
        }

        @Test("an Elixir struct from a real node (OTP 25 term_to_binary) decodes, __struct__ ignored")
        func elixirStruct() throws {
            // term_to_binary(#{'__struct__' => 'Elixir.User', name => <<"Ann">>, age => 3})
            let bytes: [UInt8] = [131, 116, 0, 0, 0, 3, 100, 0, 10, 95, 95, 115, 116, 114, 117, 99, 116, 95, 95, 100, 0, 11, 69,
                                  108, 105, 120, 105, 114, 46, 85, 115, 101, 114, 100, 0, 3, 97, 103, 101, 97, 3, 100, 0, 4, 110,
                                  97, 109, 101, 109, 0, 0, 0, 3, 65, 110, 110]
            struct Person: Decodable, Equatable { let name: String; let age: Int }
            #expect(try decoder.decode(Person.self, from: try ExternalTermFormat.decode(bytes)) == Person(name: "Ann", age: 3))
        }

        @Test("Optional: nil encodes as the atom nil at top level and in lists; nil and undefined decode as nil")
        func optionals() throws {
            #expect(try encoder.encode(Int?.none) == .atom("nil"))
            #expect(try encoder.encode([1, nil, 3] as [Int?]) == [1, .atom("nil"), 3])
            #expect(try decoder.decode([Int?].self, from: [1, .atom("nil"), .atom("undefined")]) == [1, nil, nil])
            #expect(try decoder.decode(String?.self, from: .atom("nil")) == nil)
            #expect(try decoder.decode(String?.self, from: "x") == "x")
        }

        @Test("a non-optional value that finds nil throws valueNotFound with its path")
        func valueNotFound() throws {
            var t = try encoder.encode(user)
            guard case .map(var m) = t else { Issue.record("not a map"); return }
            m[.atom("age")] = .atom("nil")
            t = .map(m)
            let error = #expect(throws: DecodingError.self) { try decoder.decode(User.self, from: t) }
            guard case .valueNotFound = error else { Issue.record("wrong error \(String(describing: error))"); return }
            #expect(path(error!) == ["age"])
            #expect(message(error!) == "expected an integer, found nil")
        }

        @Test("a missing required key throws keyNotFound")
        func keyNotFound() throws {
            let error = #expect(throws: DecodingError.self) {
                try decoder.decode(Address.self, from: atomMap(["street": "Main"]))
            }
            guard case .keyNotFound(let key, _) = error else { Issue.record("wrong error \(String(describing: error))"); return }
            #expect(key.stringValue == "zip")
        }

        @Test("AtomEnum cases are atoms; String enums are binaries; both decode from either")
        func enums() throws {
            #expect(try encoder.encode(Status.notFound) == .atom("not_found"))
            #expect(try encoder.encode([Status.ok, .error]) == [.atom("ok"), .atom("error")])
            #expect(try encoder.encode(Fruit.pear) == "pear")
            #expect(try decoder.decode(Status.self, from: .atom("not_found")) == .notFound)
            #expect(try decoder.decode(Status.self, from: "ok") == .ok)
            #expect(try decoder.decode(Fruit.self, from: .atom("apple")) == .apple)
            #expect(try decoder.decode(Fruit.self, from: "apple") == .apple)
            #expect(Status.error.term == .atom("error"))

            let error = #expect(throws: DecodingError.self) { try decoder.decode(Status.self, from: .atom("maybe")) }
            guard case .dataCorrupted(let context) = error else { Issue.record("wrong error"); return }
            #expect(context.debugDescription.contains("maybe is not a case of Status"))
        }

        @Test("enums with associated values use Swift's synthesized keyed form")
        func associatedValues() throws {
            #expect(try encoder.encode(Shape.circle(radius: 2)) == atomMap(["circle": atomMap(["radius": 2.0])]))
            #expect(try encoder.encode(Shape.rect(1, 2)) == atomMap(["rect": atomMap(["_0": 1.0, "_1": 2.0])]))
            #expect(try encoder.encode(Shape.empty) == atomMap(["empty": .map([:])]))
            for shape in [Shape.circle(radius: 2), .rect(1, 2), .empty] {
                #expect(try decoder.decode(Shape.self, from: try encoder.encode(shape)) == shape)
            }
        }

        @Test("Term, Atom, Pid and Reference pass through as themselves")
        func passthrough() throws {
            let pid = Process.spawn { _ in }
            let ref = Reference.make()
            let value = Envelope(tag: "raw", payload: .tuple([1, .atom("x")]), from: pid, ref: ref, status: .ok, fruit: .apple)
            let term = try encoder.encode(value)
            #expect(term == atomMap([
                "tag": .atom("raw"), "payload": .tuple([1, .atom("x")]), "from": .pid(pid), "ref": .reference(ref),
                "status": .atom("ok"), "fruit": "apple",
            ]))
            #expect(try decoder.decode(Envelope.self, from: term) == value)
            #expect(try encoder.encode(Term.atom("bare")) == .atom("bare"))
            #expect(try encoder.encode(Pair(x: 1, y: 2)) == .tuple([.atom("point"), 1, 2]))
            #expect(try decoder.decode(Pair.self, from: .tuple([.atom("point"), 1, 2])) == Pair(x: 1, y: 2))
            #expect(throws: DecodingError.self) { try decoder.decode(Pid.self, from: .atom("self")) }
        }

        @Test("every integer type, Float, Double and Bool round-trip; wide unsigned values become big integers")
        func numbers() throws {
            let n = Numbers(i8: .min, u8: .max, i16: .min, u16: .max, i32: .min, u32: .max, i64: .min, u64: .max,
                            u: .max, i128: .min, u128: .max, f: 0.5, d: -2.25, b: true)
            let term = try encoder.encode(n)
            guard case .map(let m) = term else { Issue.record("not a map"); return }
            #expect(m[.atom("u64")] == .bigInteger(BigInteger(negative: false, magnitude: Array(repeating: 255, count: 8))))
            #expect(m[.atom("i128")] == .bigInteger(BigInteger(negative: true, magnitude: Array(repeating: 0, count: 15) + [128])))
            #expect(m[.atom("i64")] == .integer(Int.min))
            #expect(m[.atom("b")] == .atom("true"))
            #expect(try decoder.decode(Numbers.self, from: term) == n)
            // Through bytes too: SMALL_BIG_EXT for the wide ones.
            #expect(try decoder.decode(Numbers.self, from: try ExternalTermFormat.decode(try ExternalTermFormat.encode(term))) == n)
        }

        @Test("integers are range-checked on decode, with the path and the value in the error")
        func integerRanges() throws {
            let e1 = #expect(throws: DecodingError.self) { try decoder.decode([UInt8].self, from: [1, 300]) }
            guard case .dataCorrupted = e1 else { Issue.record("wrong error \(String(describing: e1))"); return }
            #expect(path(e1!) == ["Index 1"])
            #expect(message(e1!) == "integer 300 does not fit in UInt8")
            #expect(throws: DecodingError.self) { try decoder.decode(UInt.self, from: -1) }
            #expect(throws: DecodingError.self) { try decoder.decode(Int8.self, from: 128) }
            #expect(try decoder.decode(Int8.self, from: -128) == -128)
            let twoTo64 = Term.bigInteger(BigInteger(negative: false, magnitude: [0, 0, 0, 0, 0, 0, 0, 0, 1]))
            #expect(throws: DecodingError.self) { try decoder.decode(Int.self, from: twoTo64) }
            #expect(throws: DecodingError.self) { try decoder.decode(UInt64.self, from: twoTo64) }
            #expect(try decoder.decode(Int128.self, from: twoTo64) == Int128(1) << 64)
            #expect(try decoder.decode(Double.self, from: twoTo64) == 18446744073709551616.0)
            #expect(try decoder.decode(BigInteger.self, from: 5) == BigInteger(negative: false, magnitude: [5]))
            #expect(throws: DecodingError.self) { try decoder.decode(Float.self, from: .float(1e300)) }
        }

        @Test("a type mismatch names the path and what was found: expected an integer, found {ok,1}")
        func typeMismatch() throws {
            var t = try encoder.encode(user)
            guard case .map(var m) = t else { Issue.record("not a map"); return }
            m[.atom("address")] = atomMap(["street": "Main", "zip": .tuple([.atom("ok"), 1])])
            t = .map(m)
            let error = #expect(throws: DecodingError.self) { try decoder.decode(User.self, from: t) }
            guard case .typeMismatch(let type, _) = error else { Issue.record("wrong error \(String(describing: error))"); return }
            #expect(ObjectIdentifier(type) == ObjectIdentifier(Int.self))
            #expect(path(error!) == ["address", "zip"])
            #expect(message(error!) == "expected an integer, found {ok,1}")

            m[.atom("address")] = atomMap(["street": "Main", "zip": 1])
            m[.atom("tags")] = ["a", .tuple([])]
            let e2 = #expect(throws: DecodingError.self) { try decoder.decode(User.self, from: .map(m)) }
            #expect(path(e2!) == ["tags", "Index 1"])
            #expect(message(e2!) == "expected a string (a UTF-8 binary, a charlist or an atom), found {}")

            let e3 = #expect(throws: DecodingError.self) { try decoder.decode(Address.self, from: [1, 2]) }
            #expect(message(e3!) == "expected a map (or a keyword list), found [1,2]")
            let e4 = #expect(throws: DecodingError.self) { try decoder.decode(Bool.self, from: 1) }
            #expect(message(e4!) == "expected a boolean (true or false), found 1")
            // A big term is shown cut short.
            let e5 = #expect(throws: DecodingError.self) { try decoder.decode(Int.self, from: .list(Array(repeating: 1, count: 100_000))) }
            #expect(message(e5!) == "expected an integer, found [1,1,1,1,1,1,1,1]...")
            let e6 = #expect(throws: DecodingError.self) { try decoder.decode(Int.self, from: .binary(Array(repeating: 65, count: 1000))) }
            #expect(message(e6!).count <= "expected an integer, found ".count + 80)
        }

        @Test("strings decode from binaries, charlists and atoms; Double from integers; arrays from tuples")
        func stringAndNumberForms() throws {
            #expect(try decoder.decode(String.self, from: .list([104, 233, 108, 108, 111])) == "héllo")
            #expect(try decoder.decode(String.self, from: .atom("héllo")) == "héllo")
            #expect(try decoder.decode(String.self, from: []) == "")
            #expect(throws: DecodingError.self) { try decoder.decode(String.self, from: .binary([0xFF])) }
            #expect(throws: DecodingError.self) { try decoder.decode(String.self, from: .atom("nil")) }
            #expect(try decoder.decode(Double.self, from: 3) == 3.0)
            #expect(try decoder.decode(Float.self, from: 3) == 3.0)
            #expect(try decoder.decode([Int].self, from: .tuple([1, 2, 3])) == [1, 2, 3])
            #expect(try encoder.encode("héllo") == .binary(Array("héllo".utf8)))
        }

        @Test("[UInt8] is a binary and decodes from a binary or a list of bytes")
        func bytes() throws {
            let b = Bytes(data: [1, 2, 255], lists: [[], [7]])
            let term = try encoder.encode(b)
            #expect(term == atomMap(["data": .binary([1, 2, 255]), "lists": [.binary([]), .binary([7])]]))
            #expect(try decoder.decode(Bytes.self, from: term) == b)
            #expect(try decoder.decode([UInt8].self, from: [1, 2, 3]) == [1, 2, 3])
            #expect(try decoder.decode([Int].self, from: .binary([1, 2])) == [1, 2])
        }

        @Test("dictionaries: keys are encoded terms (binary, integer, atom); decode accepts atom or binary String keys")
        func dictionaries() throws {
            #expect(try encoder.encode(["a": 1]) == [.string("a"): 1])
            #expect(try encoder.encode([1: "one"]) == [.integer(1): "one"])
            #expect(try encoder.encode([Atom("k"): true]) == [.atom("k"): .atom("true")])
            #expect(try encoder.encode([Status.ok: 1]) == [.atom("ok"): 1])
            #expect(try decoder.decode([String: Int].self, from: [.atom("a"): 1, .string("b"): 2]) == ["a": 1, "b": 2])
            #expect(try decoder.decode([Int: String].self, from: [.integer(1): "one"]) == [1: "one"])
            #expect(try decoder.decode([Atom: Bool].self, from: [.atom("k"): .atom("true")]) == ["k": true])
            #expect(try decoder.decode([Status: Int].self, from: [.atom("ok"): 1]) == [.ok: 1])
            #expect(try decoder.decode([Term: Term].self, from: [.tuple([]): 1]) == [.tuple([]): 1])
            let error = #expect(throws: DecodingError.self) { try decoder.decode([String: Int].self, from: [.atom("a"): "x"]) }
            #expect(path(error!) == ["a"])
        }

        @Test("nested keyed and unkeyed containers")
        func nestedContainers() throws {
            let p = Point(x: 1, y: 2, z: 3, label: "p")
            let term = try encoder.encode(p)
            #expect(term == atomMap(["coords": [1, 2, [3]], "meta": atomMap(["label": "p"])]))
            #expect(try decoder.decode(Point.self, from: term) == p)
        }

        @Test("superEncoder and superDecoder: a subclass keeps its superclass under the super key")
        func superEncoder() throws {
            let term = try encoder.encode(Dog(name: "Rex", breed: "collie"))
            #expect(term == atomMap(["breed": "collie", "super": atomMap(["name": "Rex"])]))
            let dog = try decoder.decode(Dog.self, from: term)
            #expect(dog.name == "Rex" && dog.breed == "collie")
        }

        @Test("a NaN or infinite float throws EncodingError.invalidValue with its path")
        func nonFiniteFloat() throws {
            struct Reading: Encodable { var values: [Double] }
            let error = #expect(throws: EncodingError.self) { try encoder.encode(Reading(values: [1, .nan])) }
            guard case .invalidValue(_, let context) = error else { Issue.record("wrong error"); return }
            #expect(context.codingPath.map(\.stringValue) == ["values", "Index 1"])
            #expect(throws: EncodingError.self) { try encoder.encode(Float.infinity) }
        }

        @Test("a value that encodes nothing at top level throws")
        func encodesNothing() throws {
            struct Nothing: Encodable { func encode(to encoder: any Encoder) throws {} }
            #expect(throws: EncodingError.self) { try encoder.encode(Nothing()) }
            struct Holder: Encodable { var n = Nothing() }
            #expect(try encoder.encode(Holder()) == atomMap(["n": .map([:])]))
        }

        @Test("userInfo reaches encode(to:) and init(from:)")
        func userInfo() throws {
            let key = CodingUserInfoKey(rawValue: "scale")!
            struct Scaled: Codable {
                var v: Int
                init(v: Int) { self.v = v }
                func encode(to encoder: any Encoder) throws {
                    var c = encoder.singleValueContainer()
                    try c.encode(v * (encoder.userInfo[CodingUserInfoKey(rawValue: "scale")!] as! Int))
                }
                init(from decoder: any Decoder) throws {
                    v = try decoder.singleValueContainer().decode(Int.self) / (decoder.userInfo[CodingUserInfoKey(rawValue: "scale")!] as! Int)
                }
            }
            #expect(try TermEncoder(userInfo: [key: 10]).encode([Scaled(v: 2)]) == [20])
            #expect(try TermDecoder(userInfo: [key: 10]).decode(Scaled.self, from: 20).v == 2)
        }

        @Test("Term.converted(to:): itself, a Decodable through TermDecoder, nil when it does not fit")
        func convertedMessage() throws {
            struct Add: Codable, Equatable { let a: Int; let b: Int }
            let request = atomMap(["a": 1, "b": 2])
            #expect(convertMessage(request, to: Add.self) == Add(a: 1, b: 2))
            #expect(convertMessage(request, to: Term.self) == request)
            #expect(convertMessage(Term.integer(7), to: Int.self) == 7)
            #expect(convertMessage(Term.atom("ok"), to: Status.self) == .ok)
            #expect(convertMessage(Term.atom("x"), to: Add.self) == nil)
            #expect(Term.integer(7).converted(to: Process.self) == nil)
        }

        @Test("a GenServer whose Call is a Codable struct takes a Term request, as one from an Erlang node")
        func genServerTakesTerms() async throws {
            struct Adder: GenServer {
                struct Call: Codable, Sendable { let op: Status; let a: Int; let b: Int }
                typealias Reply = Int
                mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
                    .reply(request.op == .ok ? request.a + request.b : -1)
                }
            }
            let server = try Adder().start()
            let reply = try await Gen.call(try #require(server.pid), atomMap(["op": .atom("ok"), "a": 2, "b": 3]), timeout: .seconds(5))
            #expect(reply as? Int == 5)
            try await server.stop()
        }

        @Test("TermConvertible gives the same terms TermEncoder does")
        func termConvertible() throws {
            func same<T: TermConvertible & Encodable>(_ v: T) throws {
                #expect(v.term == (try encoder.encode(v)), "\(v)")
            }
            try same(42)
            try same(Int8(-3))
            try same(UInt64.max)
            try same(Int128.min)
            try same(UInt128.max)
            try same(UInt.max)
            try same(2.5)
            try same(Float(0.5))
            try same(true)
            try same("héllo")
            try same([1, 2, 3])
            try same([UInt8]([1, 2]))
            try same(Int?.none)
            try same(Optional(5))
            try same(["a": 1])
            try same([1: [true]])
            try same(Atom("x"))
            try same(Term.tuple([1]))
            try same(Status.notFound)
            try same(BigInteger(negative: true, magnitude: [1, 2]))
            let ref = Reference.make()
            try same(ref)
            let pid = Process.spawn { _ in }
            try same(pid)
            #expect(([[1], [2, 3]] as [[Int]]).term == [[1], [2, 3]])
        }
    }
}
