/// Turns ``Term``s into `Decodable` Swift values, as `JSONDecoder` turns JSON into them: the
/// mirror of ``TermEncoder``, and lenient in the ways Erlang and Elixir data varies.
///
/// - A struct or class decodes from a map with atom keys (`%{name: "Ann"}`) or binary keys
///   (`%{"name" => "Ann"}`), or from a keyword list (`[name: "Ann"]`). A missing key of an
///   `Optional` property decodes as `nil`.
/// - `nil` and `undefined` (atoms) decode as `nil`. A non-optional value that finds one throws
///   `DecodingError.valueNotFound`.
/// - Integers are range-checked: `300` into a `UInt8` throws `DecodingError.dataCorrupted`.
/// - `Double` and `Float` also accept integers.
/// - `String` accepts a UTF-8 binary, a charlist (`'abc'`, a list of code points) or an atom.
/// - Arrays accept lists and tuples (and a binary, as a list of bytes); `[UInt8]` accepts a
///   binary or a list of bytes.
/// - Dictionaries decode from maps, each key decoded as the dictionary's `Key` (so
///   `[String: V]` takes atom or binary keys).
/// - ``Term``, ``Atom``, `Pid`, `Reference`, ``Port``, ``BigInteger`` and ``Fun`` take the term
///   as it is. An ``AtomEnum`` accepts an atom (or a binary) naming one of its cases.
///
/// Errors are the standard `DecodingError` cases, with the coding path to the bad value and a
/// description such as `expected an integer, found {ok,1}`.
///
/// ```swift
/// struct User: Codable { let name: String; let age: Int }
/// let term: Term = [.atom("name"): "Ann", .atom("age"): 3]   // %{name: "Ann", age: 3}
/// let user = try TermDecoder().decode(User.self, from: term)
/// ```
public struct TermDecoder: Sendable {
    /// Handed to every `init(from:)` as `decoder.userInfo`.
    ///
    /// ```swift
    /// var decoder = TermDecoder()
    /// decoder.userInfo[CodingUserInfoKey(rawValue: "version")!] = 2
    /// ```
    public var userInfo: [CodingUserInfoKey: any Sendable]

    /// A decoder; `userInfo` is handed to the values' `init(from:)`.
    ///
    /// ```swift
    /// let n = try TermDecoder().decode(Int.self, from: 42)
    /// ```
    public init(userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.userInfo = userInfo
    }

    /// `term` as a `T`.
    ///
    /// ```swift
    /// let pair = try TermDecoder().decode([Int].self, from: .tuple([1, 2]))   // [1, 2]
    /// ```
    /// - Throws: `DecodingError` naming the coding path to the value that did not fit.
    public func decode<T: Decodable>(_ type: T.Type, from term: Term) throws -> T {
        try TermDecoding.value(type, from: term, at: [], options: TermCodingOptions(userInfo: userInfo))
    }
}

// MARK: Values

enum TermDecoding {
    /// How error messages show a term: Erlang syntax, cut short. Only the first few elements
    /// of a large term are printed at all, so an error costs little however big the term.
    static func show(_ term: Term) -> String {
        var elided = false
        let text = preview(term, depth: 4, elided: &elided).description
        if text.count > 80 { return String(text.prefix(77)) + "..." }
        return elided ? text + "..." : text
    }

    /// `term` with at most 8 elements per container, 4 levels deep, and 40 bytes per binary.
    private static func preview(_ term: Term, depth: Int, elided: inout Bool) -> Term {
        let width = 8
        func few(_ items: [Term]) -> [Term] {
            if items.count > width || (depth == 0 && !items.isEmpty) { elided = true }
            return depth == 0 ? [] : items.prefix(width).map { preview($0, depth: depth - 1, elided: &elided) }
        }
        switch term {
        case .tuple(let items): return .tuple(few(items))
        case .list(let items): return .list(few(items))
        case .improperList(let items, let tail):
            return .improperList(few(items), tail: depth == 0 ? .nil : preview(tail, depth: depth - 1, elided: &elided))
        case .map(let m):
            if m.count > width || (depth == 0 && !m.isEmpty) { elided = true }
            var small: [Term: Term] = [:]
            if depth > 0 {
                for (k, v) in m.prefix(width) {
                    small[preview(k, depth: depth - 1, elided: &elided)] = preview(v, depth: depth - 1, elided: &elided)
                }
            }
            return .map(small)
        case .binary(let b) where b.count > 40:
            elided = true
            return .binary(Array(b.prefix(40)))
        default: return term
        }
    }

    static func isNil(_ term: Term) -> Bool { term == .atom(.nil) || term == .atom(.undefined) }

    /// The error for `term` where a `type` (described as `expected`) was wanted: a value
    /// missing if it is `nil`/`undefined`, else a type mismatch.
    static func mismatch(_ type: Any.Type, _ expected: String, _ term: Term, _ path: [any CodingKey]) -> DecodingError {
        let context = DecodingError.Context(codingPath: path, debugDescription: "expected \(expected), found \(show(term))")
        return isNil(term) ? .valueNotFound(type, context) : .typeMismatch(type, context)
    }

    static func value<T: Decodable>(_ type: T.Type, from term: Term, at path: [any CodingKey], options: TermCodingOptions) throws -> T {
        if T.self == Term.self { return term as! T }
        if T.self == Atom.self { return try atom(term, at: path) as! T }
        if T.self == [UInt8].self, case .binary(let bytes) = term { return bytes as! T }
        if T.self == Pid.self {
            guard case .pid(let p) = term else { throw mismatch(type, "a pid", term, path) }
            return p as! T
        }
        if T.self == Reference.self {
            guard case .reference(let r) = term else { throw mismatch(type, "a reference", term, path) }
            return r as! T
        }
        if T.self == Port.self {
            guard case .port(let p) = term else { throw mismatch(type, "a port", term, path) }
            return p as! T
        }
        if T.self == Fun.self {
            guard case .fun(let f) = term else { throw mismatch(type, "a fun", term, path) }
            return f as! T
        }
        if T.self == BigInteger.self {
            switch term {
            case .bigInteger(let b): return b as! T
            case .integer(let i): return BigInteger(negative: i < 0, magnitude: TermEncoding.magnitudeBytes(i)) as! T
            default: throw mismatch(type, "an integer", term, path)
            }
        }
        if case .map(let entries) = term, let dictionary = T.self as? any TermMapDecodable.Type {
            return try dictionary.fromTermMap(entries, at: path, options: options) as! T
        }
        return try T(from: TermDecodingState(term: term, codingPath: path, options: options))
    }

    static func atom(_ term: Term, at path: [any CodingKey]) throws -> Atom {
        switch term {
        case .atom(let a): return a
        case .binary(let bytes):
            if let s = String(validating: bytes, as: UTF8.self) { return Atom(s) }
        default: break
        }
        throw mismatch(Atom.self, "an atom", term, path)
    }

    static func bool(_ term: Term, at path: [any CodingKey]) throws -> Bool {
        switch term {
        case .atom(.true): return true
        case .atom(.false): return false
        default: throw mismatch(Bool.self, "a boolean (true or false)", term, path)
        }
    }

    static func string(_ term: Term, at path: [any CodingKey]) throws -> String {
        switch term {
        case .binary(let bytes):
            if let s = String(validating: bytes, as: UTF8.self) { return s }
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "binary \(show(term)) is not valid UTF-8"))
        case .list(let items):
            // A charlist: a list of code points ('abc' in Erlang, ~c"abc" in Elixir).
            var scalars = String.UnicodeScalarView()
            for item in items {
                guard case .integer(let c) = item, let code = UInt32(exactly: c), let scalar = Unicode.Scalar(code) else {
                    throw mismatch(String.self, "a string (a UTF-8 binary, a charlist or an atom)", term, path)
                }
                scalars.append(scalar)
            }
            return String(scalars)
        case .atom(let a) where !isNil(term):
            return a.name
        default:
            throw mismatch(String.self, "a string (a UTF-8 binary, a charlist or an atom)", term, path)
        }
    }

    static func double(_ term: Term, at path: [any CodingKey]) throws -> Double {
        switch term {
        case .float(let d): return d
        case .integer(let i): return Double(i)
        case .bigInteger(let b):
            var d = 0.0
            for byte in b.magnitude.reversed() { d = d * 256 + Double(byte) }
            return b.negative ? -d : d
        default: throw mismatch(Double.self, "a float", term, path)
        }
    }

    static func float(_ term: Term, at path: [any CodingKey]) throws -> Float {
        let d = try double(term, at: path)
        guard d.magnitude <= Double(Float.greatestFiniteMagnitude) else {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "\(show(term)) does not fit in Float"))
        }
        return Float(d)
    }

    static func integer<I: FixedWidthInteger>(_ type: I.Type, _ term: Term, at path: [any CodingKey]) throws -> I {
        let fits: I?
        switch term {
        case .integer(let i): fits = I(exactly: i)
        case .bigInteger(let b): fits = integer(I.self, negative: b.negative, magnitude: b.magnitude)
        default: throw mismatch(type, "an integer", term, path)
        }
        guard let fits else {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "integer \(show(term)) does not fit in \(I.self)"))
        }
        return fits
    }

    /// A big integer as an `I`, if it fits (at most 128 bits).
    static func integer<I: FixedWidthInteger>(_ type: I.Type, negative: Bool, magnitude: [UInt8]) -> I? {
        guard magnitude.count <= 16 else { return nil }
        var m: UInt128 = 0
        for byte in magnitude.reversed() { m = m << 8 | UInt128(byte) }
        if !negative { return I(exactly: m) }
        guard m <= UInt128(Int128.max) + 1 else { return nil }
        return I(exactly: Int128(bitPattern: 0 &- m))
    }
}

/// Dictionaries decode from maps, each key decoded as the dictionary's key type.
protocol TermMapDecodable {
    static func fromTermMap(_ entries: [Term: Term], at path: [any CodingKey], options: TermCodingOptions) throws -> Self
}

extension Dictionary: TermMapDecodable where Key: Decodable, Value: Decodable {
    static func fromTermMap(_ entries: [Term: Term], at path: [any CodingKey], options: TermCodingOptions) throws -> Self {
        var result: [Key: Value] = [:]
        result.reserveCapacity(entries.count)
        for (k, v) in entries {
            let entryPath = path + [TermCodingKey(stringValue: k.stringValue ?? k.atomName ?? k.description)]
            let key = try TermDecoding.value(Key.self, from: k, at: entryPath, options: options)
            result[key] = try TermDecoding.value(Value.self, from: v, at: entryPath, options: options)
        }
        return result
    }
}

// MARK: Decoder

/// The `Decoder` handed to `init(from:)`: reads one term.
final class TermDecodingState: Decoder {
    let term: Term
    let codingPath: [any CodingKey]
    let options: TermCodingOptions
    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    init(term: Term, codingPath: [any CodingKey], options: TermCodingOptions) {
        self.term = term
        self.codingPath = codingPath
        self.options = options
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try TermKeyedDecodingContainer<Key>(term: term, codingPath: codingPath, options: options))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try TermUnkeyedDecodingContainer(term: term, codingPath: codingPath, options: options)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        TermSingleValueDecodingContainer(term: term, codingPath: codingPath, options: options)
    }
}

struct TermKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let term: Term
    let codingPath: [any CodingKey]
    let options: TermCodingOptions
    /// Entries by key text: atom keys by name, binary keys as UTF-8, integer keys in decimal.
    /// An atom key wins over a binary key with the same text.
    let entries: [String: (key: Term, value: Term)]

    init(term: Term, codingPath: [any CodingKey], options: TermCodingOptions) throws {
        self.term = term
        self.codingPath = codingPath
        self.options = options
        var entries: [String: (key: Term, value: Term)] = [:]
        func add(_ k: Term, _ v: Term) {
            let name: String
            switch k {
            case .atom(let a): name = a.name
            case .binary(let bytes):
                guard let s = String(validating: bytes, as: UTF8.self) else { return }
                name = s
            case .integer(let i): name = "\(i)"
            default: return
            }
            if case .atom = k {
                entries[name] = (k, v)
            } else if entries[name] == nil {
                entries[name] = (k, v)
            }
        }
        switch term {
        case .map(let m):
            entries.reserveCapacity(m.count)
            for (k, v) in m { add(k, v) }
        case .list(let items):
            // A keyword list ([name: "Ann"] in Elixir): {atom, value} pairs.
            for item in items {
                guard case .tuple(let pair) = item, pair.count == 2, case .atom = pair[0] else {
                    throw TermDecoding.mismatch([String: Any].self, "a map (or a keyword list)", term, codingPath)
                }
                if entries[pair[0].atomName!] == nil { add(pair[0], pair[1]) }
            }
        default:
            throw TermDecoding.mismatch([String: Any].self, "a map (or a keyword list)", term, codingPath)
        }
        self.entries = entries
    }

    var allKeys: [Key] {
        entries.compactMap { name, entry in
            if case .integer(let i) = entry.key, let key = Key(intValue: i) { return key }
            return Key(stringValue: name)
        }
    }

    func contains(_ key: Key) -> Bool { entries[key.stringValue] != nil }

    private func path(_ key: Key) -> [any CodingKey] { codingPath + [key] }

    private func value(_ key: Key) throws -> Term {
        guard let entry = entries[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(
                codingPath: codingPath,
                debugDescription: "no key \(key.stringValue) (an atom or a binary) in \(TermDecoding.show(term))"))
        }
        return entry.value
    }

    func decodeNil(forKey key: Key) throws -> Bool { TermDecoding.isNil(try value(key)) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try TermDecoding.bool(try value(key), at: path(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try TermDecoding.string(try value(key), at: path(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try TermDecoding.double(try value(key), at: path(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try TermDecoding.float(try value(key), at: path(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try TermDecoding.integer(type, try value(key), at: path(key)) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try TermDecoding.value(type, from: try value(key), at: path(key), options: options)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(try TermKeyedDecodingContainer<NestedKey>(term: try value(key), codingPath: path(key), options: options))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TermUnkeyedDecodingContainer(term: try value(key), codingPath: path(key), options: options)
    }

    func superDecoder() throws -> any Decoder {
        let t = entries[TermCodingKey.super.stringValue]?.value ?? .atom(.nil)
        return TermDecodingState(term: t, codingPath: codingPath + [TermCodingKey.super], options: options)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        TermDecodingState(term: entries[key.stringValue]?.value ?? .atom(.nil), codingPath: path(key), options: options)
    }
}

struct TermUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let term: Term
    let items: [Term]
    let codingPath: [any CodingKey]
    let options: TermCodingOptions
    private(set) var currentIndex = 0

    init(term: Term, codingPath: [any CodingKey], options: TermCodingOptions) throws {
        switch term {
        case .list(let l): items = l
        case .tuple(let t): items = t
        case .binary(let b): items = b.map { .integer(Int($0)) }
        default: throw TermDecoding.mismatch([Any].self, "a list or a tuple", term, codingPath)
        }
        self.term = term
        self.codingPath = codingPath
        self.options = options
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private var path: [any CodingKey] { codingPath + [TermCodingKey(index: currentIndex)] }

    /// The next element, consumed only if `read` succeeds.
    private mutating func next<T>(_ type: T.Type, _ read: (Term, [any CodingKey]) throws -> T) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(
                codingPath: path, debugDescription: "\(TermDecoding.show(term)) has only \(items.count) elements"))
        }
        let value = try read(items[currentIndex], path)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw DecodingError.valueNotFound(Any?.self, .init(codingPath: path, debugDescription: "no more elements")) }
        if TermDecoding.isNil(items[currentIndex]) {
            currentIndex += 1
            return true
        }
        return false
    }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type, TermDecoding.bool) }
    mutating func decode(_ type: String.Type) throws -> String { try next(type, TermDecoding.string) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type, TermDecoding.double) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type, TermDecoding.float) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try next(type) { try TermDecoding.integer(type, $0, at: $1) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let options = options
        return try next(type) { try TermDecoding.value(type, from: $0, at: $1, options: options) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let options = options
        return try next(KeyedDecodingContainer<NestedKey>.self) {
            KeyedDecodingContainer(try TermKeyedDecodingContainer<NestedKey>(term: $0, codingPath: $1, options: options))
        }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let options = options
        return try next((any UnkeyedDecodingContainer).self) {
            try TermUnkeyedDecodingContainer(term: $0, codingPath: $1, options: options)
        }
    }

    mutating func superDecoder() throws -> any Decoder {
        let options = options
        return try next((any Decoder).self) { TermDecodingState(term: $0, codingPath: $1, options: options) }
    }
}

struct TermSingleValueDecodingContainer: SingleValueDecodingContainer {
    let term: Term
    let codingPath: [any CodingKey]
    let options: TermCodingOptions

    func decodeNil() -> Bool { TermDecoding.isNil(term) }
    func decode(_ type: Bool.Type) throws -> Bool { try TermDecoding.bool(term, at: codingPath) }
    func decode(_ type: String.Type) throws -> String { try TermDecoding.string(term, at: codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try TermDecoding.double(term, at: codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try TermDecoding.float(term, at: codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: Int128.Type) throws -> Int128 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try TermDecoding.integer(type, term, at: codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try TermDecoding.value(type, from: term, at: codingPath, options: options)
    }
}
