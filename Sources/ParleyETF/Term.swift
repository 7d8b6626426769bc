@_exported import Parley

/// An Erlang atom: a name, compared by its text. Atoms from other nodes are interned in a
/// bounded table (``AtomTable``), so a peer cannot make this node hold unlimited atoms.
///
/// ```swift
/// let ok: Atom = "ok"
/// let reply = Term.tuple([.atom(ok), 42])
/// ```
public struct Atom: Hashable, Sendable, Comparable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The atom's text (at most 255 characters, as on the BEAM).
    public let name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { self.name = value }
    public static func < (a: Atom, b: Atom) -> Bool { a.name < b.name }
    /// Printed as Erlang prints it: quoted when it is not a plain lower-case word.
    public var description: String {
        let plain = name.first.map { $0.isLowercase && $0.isASCII } == true
            && name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" || $0 == "@" }
        return plain ? name : "'" + name.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "\\'") + "'"
    }

    public static let ok: Atom = "ok"
    public static let error: Atom = "error"
    public static let `true`: Atom = "true"
    public static let `false`: Atom = "false"
    public static let `nil`: Atom = "nil"
    public static let undefined: Atom = "undefined"
}

/// An integer too large for `Int`: sign and magnitude, as SMALL_BIG_EXT and LARGE_BIG_EXT
/// carry it (magnitude little-endian, no trailing zero bytes).
public struct BigInteger: Hashable, Sendable, CustomStringConvertible {
    public let negative: Bool
    /// Little-endian bytes of the absolute value, without trailing zeros.
    public let magnitude: [UInt8]
    public init(negative: Bool, magnitude: [UInt8]) {
        var m = magnitude
        while m.last == 0 { m.removeLast() }
        self.negative = negative && !m.isEmpty
        self.magnitude = m
    }
    /// The value in decimal.
    public var description: String {
        var words = magnitude
        if words.isEmpty { return "0" }
        var digits: [UInt8] = []
        while !words.isEmpty {
            var rem = 0
            for i in stride(from: words.count - 1, through: 0, by: -1) {
                let cur = rem << 8 | Int(words[i])
                words[i] = UInt8(cur / 10)
                rem = cur % 10
            }
            digits.append(UInt8(rem) + 48)
            while words.last == 0 { words.removeLast() }
        }
        return (negative ? "-" : "") + String(decoding: digits.reversed(), as: UTF8.self)
    }
}

/// A port identifier from another node (NEW_PORT_EXT, V4_PORT_EXT). Opaque here: Parley has
/// no ports, but it carries them through unchanged.
public struct Port: Hashable, Sendable, CustomStringConvertible {
    public let node: Atom
    public let id: UInt64
    public let creation: UInt32
    public init(node: Atom, id: UInt64, creation: UInt32) {
        self.node = node
        self.id = id
        self.creation = creation
    }
    public var description: String { "#Port<\(node).\(id)>" }
}

/// A fun from another node (NEW_FUN_EXT): opaque, kept byte for byte so it can be sent back.
public struct Fun: Hashable, Sendable, CustomStringConvertible {
    /// The encoded fun, from its tag byte (112) on.
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
    public var description: String { "#Fun<\(bytes.count) bytes>" }
}

// Only the cases with large payloads are boxed: the common ones (integers, atoms, binaries,
// tuples, lists, maps) stay inline, so a term fits a Swift existential's inline buffer and
// decoding allocates only the arrays it must.
/// Any Erlang term, as the external term format carries it: what arrives from another node,
/// and what a Parley process sends to one when it wants exact Erlang shapes.
///
/// Literals make terms easy to write: integers, floats, `true`/`false`, arrays (lists) and
/// dictionaries (maps); a string literal is an Elixir string (a binary). Atoms are
/// `.atom("ok")`.
///
/// ```swift
/// let request: Term = .tuple([.atom("add"), 5])
/// switch request {
/// case .atom("get"): print("get")
/// case .tuple(let t) where t.first == .atom("add"): print("add", t[1].intValue ?? 0)
/// default: print("unknown", request)
/// }
/// ```
public enum Term: Hashable, Sendable {
    case integer(Int)
    indirect case bigInteger(BigInteger)
    case float(Double)
    case atom(Atom)
    case binary([UInt8])
    /// A bitstring whose last byte holds `bits` (1...8) significant high bits.
    case bitBinary([UInt8], bits: UInt8)
    case tuple([Term])
    /// A proper list (`[]` is `.list([])`).
    case list([Term])
    /// A list whose tail is not `[]`, such as `[alias | Ref]`.
    indirect case improperList([Term], tail: Term)
    case map([Term: Term])
    indirect case pid(Pid)
    indirect case port(Port)
    indirect case reference(Reference)
    /// `fun Module:Function/Arity`.
    indirect case export(module: Atom, function: Atom, arity: UInt8)
    case fun(Fun)

    /// `[]`.
    public static let `nil` = Term.list([])
    public static let ok = Term.atom(.ok)
    public static let `true` = Term.atom(.true)
    public static let `false` = Term.atom(.false)

    /// An Elixir string: a UTF-8 binary.
    public static func string(_ s: String) -> Term { .binary(Array(s.utf8)) }

    /// The atom's name, if this is an atom.
    public var atomName: String? { if case .atom(let a) = self { return a.name }; return nil }
    /// The integer, if this is one that fits in `Int`.
    public var intValue: Int? { if case .integer(let i) = self { return i }; return nil }
    /// The binary as UTF-8 text, if this is a binary of valid UTF-8 (an Elixir string).
    public var stringValue: String? {
        if case .binary(let b) = self { return String(validating: b, as: UTF8.self) }
        return nil
    }
    /// The elements, if this is a proper list (`[]` is empty).
    public var listElements: [Term]? { if case .list(let l) = self { return l }; return nil }
    /// The tuple's elements, if this is a tuple.
    public var tupleElements: [Term]? { if case .tuple(let t) = self { return t }; return nil }
    /// The pid, if this is one.
    public var pidValue: Pid? { if case .pid(let p) = self { return p }; return nil }
    /// `true` or `false` atoms as a Bool.
    public var boolValue: Bool? {
        switch self {
        case .atom(.true): return true
        case .atom(.false): return false
        default: return nil
        }
    }
}

extension Term: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(integerLiteral value: Int) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .float(value) }
    public init(booleanLiteral value: Bool) { self = value ? .true : .false }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: Term...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (Term, Term)...) {
        self = .map(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension Term: CustomStringConvertible {
    /// The term as Erlang's `io:format("~p")` would roughly print it.
    public var description: String {
        switch self {
        case .integer(let i): return "\(i)"
        case .bigInteger(let b): return b.description
        case .float(let d): return "\(d)"
        case .atom(let a): return a.description
        case .binary(let b):
            if let s = String(validating: b, as: UTF8.self), s.unicodeScalars.allSatisfy({ $0.value >= 32 || $0 == "\n" }) {
                return "<<\"\(s)\">>"
            }
            return "<<" + b.map(String.init).joined(separator: ",") + ">>"
        case .bitBinary(let b, let bits): return "<<" + b.map(String.init).joined(separator: ",") + ":\(bits)>>"
        case .tuple(let t): return "{" + t.map(\.description).joined(separator: ",") + "}"
        case .list(let l):
            if !l.isEmpty, l.allSatisfy({ if case .integer(let i) = $0 { return (32..<127).contains(i) }; return false }) {
                return "\"" + String(decoding: l.map { UInt8($0.intValue!) }, as: UTF8.self) + "\""
            }
            return "[" + l.map(\.description).joined(separator: ",") + "]"
        case .improperList(let l, let tail): return "[" + l.map(\.description).joined(separator: ",") + "|\(tail)]"
        case .map(let m):
            return "#{" + m.map { "\($0.key) => \($0.value)" }.sorted().joined(separator: ",") + "}"
        case .pid(let p): return p.description
        case .port(let p): return p.description
        case .reference(let r): return r.description
        case .export(let m, let f, let a): return "fun \(m):\(f)/\(a)"
        case .fun(let f): return f.description
        }
    }
}
