/// Turns `Encodable` Swift values into ``Term``s shaped the way Elixir and Erlang code
/// expects them, as `JSONEncoder` turns them into JSON.
///
/// | Swift                                  | Term                                         |
/// |----------------------------------------|----------------------------------------------|
/// | struct, class (keyed container)        | map with atom keys: `%{name: "Ann", age: 3}` |
/// | `nil` (an `Optional`)                  | the atom `nil`                               |
/// | `Bool`                                 | the atoms `true` and `false`                 |
/// | `Int`, `Int8`...`UInt64`, `Int128`     | integer (a big integer past 64 bits)         |
/// | `Double`, `Float`                      | float (NaN and infinities throw)             |
/// | `String`                               | UTF-8 binary (an Elixir string)              |
/// | `[UInt8]`                              | binary                                       |
/// | other arrays, sets (unkeyed container) | proper list                                  |
/// | `[K: V]` (any `Encodable` key)         | map whose keys are the encoded keys, so `[String: V]` has binary keys (`%{"a" => 1}`) and `[Atom: V]` atom keys |
/// | `enum E: String` (`Codable`)           | its raw value, a binary                      |
/// | `enum E: String, AtomEnum`             | its raw value as an atom                     |
/// | enum with associated values            | Swift's synthesized form: `%{add: %{_0: 1, _1: 2}}` for `.add(1, 2)` |
/// | ``Term``, ``Atom``, `Pid`, `Reference`, ``Port``, ``BigInteger``, ``Fun`` | themselves |
///
/// An `Optional` property that is `nil` is written as the atom `nil` (not left out), so
/// Elixir code can match on `%{name: nil}`. A type with its own Erlang shape can encode a
/// ``Term`` in a single-value container: it is passed through unchanged.
///
/// ```swift
/// struct User: Codable { let name: String; let age: Int; let email: String? }
/// let term = try TermEncoder().encode(User(name: "Ann", age: 3, email: nil))
/// // %{name: "Ann", age: 3, email: nil}
/// let bytes = try ExternalTermFormat.encode(term)
/// ```
public struct TermEncoder: Sendable {
    /// Handed to every `encode(to:)` as `encoder.userInfo`.
    ///
    /// ```swift
    /// var encoder = TermEncoder()
    /// encoder.userInfo[CodingUserInfoKey(rawValue: "version")!] = 2
    /// ```
    public var userInfo: [CodingUserInfoKey: any Sendable]

    /// An encoder; `userInfo` is handed to the values' `encode(to:)`.
    ///
    /// ```swift
    /// let encoder = TermEncoder()
    /// let term = try encoder.encode(["a": 1])     // %{"a" => 1}
    /// ```
    public init(userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.userInfo = userInfo
    }

    /// `value` as a term.
    ///
    /// ```swift
    /// enum Color: String, AtomEnum { case red, green }
    /// try TermEncoder().encode([Color.red, .green])   // [red, green]
    /// ```
    /// - Throws: `EncodingError.invalidValue` for a value with no term form (a NaN or infinite
    ///   float, a type that encodes nothing, a ``Term`` handed to another encoder), naming
    ///   the coding path to it.
    public func encode<T: Encodable>(_ value: T) throws -> Term {
        let options = TermCodingOptions(userInfo: userInfo)
        if let term = try TermEncoding.passthrough(value, at: [], options: options) { return term }
        let box = EncodingBox()
        try value.encode(to: TermEncodingState(box: box, codingPath: [], options: options))
        guard let term = box.finish() else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(T.self) did not encode any value"))
        }
        return term
    }
}

struct TermCodingOptions {
    let userInfo: [CodingUserInfoKey: Any]
    init(userInfo: [CodingUserInfoKey: any Sendable]) {
        var info: [CodingUserInfoKey: Any] = [:]
        for (k, v) in userInfo { info[k] = v }
        self.userInfo = info
    }
}

/// A coding key for list indices, map entries and `super`.
struct TermCodingKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }
    init(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
    init(index: Int) {
        self.stringValue = "Index \(index)"
        self.intValue = index
    }
    static let `super` = TermCodingKey(stringValue: "super")
}

// MARK: The tree being built

/// Where one value is being encoded: empty until a container or value is written into it.
/// Nested containers and super-encoders hand out boxes that are filled in later, so the
/// tree is made of references and turned into a ``Term`` at the end.
final class EncodingBox {
    enum Content {
        case empty
        case term(Term)
        case keyed(KeyedStore)
        case unkeyed(UnkeyedStore)
    }
    var content: Content = .empty

    func finish() -> Term? {
        switch content {
        case .empty: return nil
        case .term(let t): return t
        case .keyed(let store):
            var map: [Term: Term] = [:]
            map.reserveCapacity(store.entries.count)
            for (key, slot) in store.entries { map[.atom(Atom(key))] = slot.finish() }
            return .map(map)
        case .unkeyed(let store):
            return .list(store.items.map { $0.finish() })
        }
    }
}

/// A finished value, or a box still being filled (a nested container or a super-encoder).
enum EncodingSlot {
    case term(Term)
    case box(EncodingBox)

    func finish() -> Term {
        switch self {
        case .term(let t): return t
        // A nested encoder that wrote nothing: an empty map, as JSONEncoder writes `{}`.
        case .box(let b): return b.finish() ?? .map([:])
        }
    }
}

final class KeyedStore {
    var entries: [String: EncodingSlot] = [:]
}

final class UnkeyedStore {
    var items: [EncodingSlot] = []
}

// MARK: Values

enum TermEncoding {
    /// The types that are their own term, and `[UInt8]` (a binary) and dictionaries (a map
    /// keyed by the encoded keys), which Codable would otherwise write as a list of numbers
    /// and as a keyed container or a flat key, value, key, value list.
    static func passthrough<T: Encodable>(_ value: T, at path: [any CodingKey], options: TermCodingOptions) throws -> Term? {
        if T.self == Term.self { return (value as! Term) }
        if T.self == Atom.self { return .atom(value as! Atom) }
        if T.self == [UInt8].self { return .binary(value as! [UInt8]) }
        if T.self == Pid.self { return .pid(value as! Pid) }
        if T.self == Reference.self { return .reference(value as! Reference) }
        if T.self == Port.self { return .port(value as! Port) }
        if T.self == BigInteger.self { return .bigInteger(value as! BigInteger) }
        if T.self == Fun.self { return .fun(value as! Fun) }
        if let dictionary = value as? any TermMapEncodable {
            return try dictionary.termMap(at: path, options: options)
        }
        return nil
    }

    /// `value` encoded on its own, at `path`.
    static func term<T: Encodable>(for value: T, at path: [any CodingKey], options: TermCodingOptions) throws -> Term {
        if let term = try passthrough(value, at: path, options: options) { return term }
        let box = EncodingBox()
        try value.encode(to: TermEncodingState(box: box, codingPath: path, options: options))
        return box.finish() ?? .map([:])
    }

    static func integer<I: BinaryInteger>(_ value: I) -> Term {
        if let i = Int(exactly: value) { return .integer(i) }
        return .bigInteger(BigInteger(negative: value < 0, magnitude: magnitudeBytes(value)))
    }

    /// The absolute value of `value`, little-endian, without trailing zero bytes.
    static func magnitudeBytes<I: BinaryInteger>(_ value: I) -> [UInt8] {
        var magnitude = value.magnitude
        var bytes: [UInt8] = []
        while magnitude != 0 {
            bytes.append(UInt8(truncatingIfNeeded: magnitude))
            magnitude >>= 8
        }
        return bytes
    }

    static func float(_ value: Double, at path: [any CodingKey]) throws -> Term {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: path, debugDescription: "\(value) has no Erlang float form"))
        }
        return .float(value)
    }

    static func float(_ value: Float, at path: [any CodingKey]) throws -> Term {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: path, debugDescription: "\(value) has no Erlang float form"))
        }
        return .float(Double(value))
    }
}

/// Dictionaries encode as maps whose keys are the encoded keys.
protocol TermMapEncodable {
    func termMap(at path: [any CodingKey], options: TermCodingOptions) throws -> Term
}

extension Dictionary: TermMapEncodable where Key: Encodable, Value: Encodable {
    func termMap(at path: [any CodingKey], options: TermCodingOptions) throws -> Term {
        var map: [Term: Term] = [:]
        map.reserveCapacity(count)
        for (key, value) in self {
            let entryPath = path + [TermCodingKey(stringValue: "\(key)")]
            let k = try TermEncoding.term(for: key, at: entryPath, options: options)
            map[k] = try TermEncoding.term(for: value, at: entryPath, options: options)
        }
        return .map(map)
    }
}

// MARK: Encoder

/// The `Encoder` handed to `encode(to:)`: writes into one box.
final class TermEncodingState: Encoder {
    let box: EncodingBox
    let codingPath: [any CodingKey]
    let options: TermCodingOptions
    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    init(box: EncodingBox, codingPath: [any CodingKey], options: TermCodingOptions) {
        self.box = box
        self.codingPath = codingPath
        self.options = options
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let store: KeyedStore
        if case .keyed(let existing) = box.content {
            store = existing
        } else {
            store = KeyedStore()
            box.content = .keyed(store)
        }
        return KeyedEncodingContainer(TermKeyedEncodingContainer<Key>(store: store, codingPath: codingPath, options: options))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let store: UnkeyedStore
        if case .unkeyed(let existing) = box.content {
            store = existing
        } else {
            store = UnkeyedStore()
            box.content = .unkeyed(store)
        }
        return TermUnkeyedEncodingContainer(store: store, codingPath: codingPath, options: options)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        TermSingleValueEncodingContainer(state: self)
    }
}

struct TermKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let store: KeyedStore
    let codingPath: [any CodingKey]
    let options: TermCodingOptions

    private func put(_ term: Term, _ key: Key) { store.entries[key.stringValue] = .term(term) }
    private func path(_ key: Key) -> [any CodingKey] { codingPath + [key] }

    mutating func encodeNil(forKey key: Key) throws { put(.atom(.nil), key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(value ? .true : .false, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try TermEncoding.float(value, at: path(key)), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(try TermEncoding.float(value, at: path(key)), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(.integer(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: Int128, forKey key: Key) throws { put(TermEncoding.integer(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(TermEncoding.integer(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(.integer(Int(value)), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(TermEncoding.integer(value), key) }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { put(TermEncoding.integer(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(try TermEncoding.term(for: value, at: path(key), options: options), key)
    }

    // Synthesized `encode(to:)` leaves out nil optionals; Elixir code expects the key with
    // the atom `nil`, as a struct always has all its keys.
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int128?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt128?, forKey key: Key) throws { try encodeOptional(value, key) }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try encodeOptional(value, key) }

    private mutating func encodeOptional<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try encode(value, forKey: key) } else { put(.atom(.nil), key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = KeyedStore()
        let box = EncodingBox()
        box.content = .keyed(nested)
        store.entries[key.stringValue] = .box(box)
        return KeyedEncodingContainer(TermKeyedEncodingContainer<NestedKey>(store: nested, codingPath: path(key), options: options))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = UnkeyedStore()
        let box = EncodingBox()
        box.content = .unkeyed(nested)
        store.entries[key.stringValue] = .box(box)
        return TermUnkeyedEncodingContainer(store: nested, codingPath: path(key), options: options)
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: TermCodingKey.super) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key) }

    private func superEncoder(named key: any CodingKey) -> any Encoder {
        let box = EncodingBox()
        store.entries[key.stringValue] = .box(box)
        return TermEncodingState(box: box, codingPath: codingPath + [key], options: options)
    }
}

struct TermUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let store: UnkeyedStore
    let codingPath: [any CodingKey]
    let options: TermCodingOptions
    var count: Int { store.items.count }

    private func put(_ term: Term) { store.items.append(.term(term)) }
    private var nextPath: [any CodingKey] { codingPath + [TermCodingKey(index: count)] }

    mutating func encodeNil() throws { put(.atom(.nil)) }
    mutating func encode(_ value: Bool) throws { put(value ? .true : .false) }
    mutating func encode(_ value: String) throws { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try TermEncoding.float(value, at: nextPath)) }
    mutating func encode(_ value: Float) throws { put(try TermEncoding.float(value, at: nextPath)) }
    mutating func encode(_ value: Int) throws { put(.integer(value)) }
    mutating func encode(_ value: Int8) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int16) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int32) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int64) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int128) throws { put(TermEncoding.integer(value)) }
    mutating func encode(_ value: UInt) throws { put(TermEncoding.integer(value)) }
    mutating func encode(_ value: UInt8) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: UInt16) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: UInt32) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: UInt64) throws { put(TermEncoding.integer(value)) }
    mutating func encode(_ value: UInt128) throws { put(TermEncoding.integer(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        put(try TermEncoding.term(for: value, at: nextPath, options: options))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        let nested = KeyedStore()
        let box = EncodingBox()
        box.content = .keyed(nested)
        store.items.append(.box(box))
        return KeyedEncodingContainer(TermKeyedEncodingContainer<NestedKey>(store: nested, codingPath: path, options: options))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        let nested = UnkeyedStore()
        let box = EncodingBox()
        box.content = .unkeyed(nested)
        store.items.append(.box(box))
        return TermUnkeyedEncodingContainer(store: nested, codingPath: path, options: options)
    }

    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        let box = EncodingBox()
        store.items.append(.box(box))
        return TermEncodingState(box: box, codingPath: path, options: options)
    }
}

struct TermSingleValueEncodingContainer: SingleValueEncodingContainer {
    let state: TermEncodingState
    var codingPath: [any CodingKey] { state.codingPath }

    private func put(_ term: Term) { state.box.content = .term(term) }

    mutating func encodeNil() throws { put(.atom(.nil)) }
    mutating func encode(_ value: Bool) throws { put(value ? .true : .false) }
    mutating func encode(_ value: String) throws { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try TermEncoding.float(value, at: codingPath)) }
    mutating func encode(_ value: Float) throws { put(try TermEncoding.float(value, at: codingPath)) }
    mutating func encode(_ value: Int) throws { put(.integer(value)) }
    mutating func encode(_ value: Int8) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int16) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int32) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int64) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: Int128) throws { put(TermEncoding.integer(value)) }
    mutating func encode(_ value: UInt) throws { put(TermEncoding.integer(value)) }
    mutating func encode(_ value: UInt8) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: UInt16) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: UInt32) throws { put(.integer(Int(value))) }
    mutating func encode(_ value: UInt64) throws { put(TermEncoding.integer(value)) }
    mutating func encode(_ value: UInt128) throws { put(TermEncoding.integer(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        put(try TermEncoding.term(for: value, at: codingPath, options: state.options))
    }
}
