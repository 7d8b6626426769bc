/// A Swift value with a fixed Erlang form: how outgoing messages become terms without going
/// through `Codable`. Conform your own types to send them as exact Erlang shapes.
///
/// | Swift                                   | Term                                    |
/// |-----------------------------------------|-----------------------------------------|
/// | ``Term``                                | itself                                  |
/// | ``Atom``, ``AtomEnum``                  | atom                                    |
/// | `Int`, `Int8`...`UInt64`, `Int128`, `UInt128` | integer (a big integer past 64 bits) |
/// | `Double`, `Float`                       | float                                   |
/// | `Bool`                                  | the atoms `true` and `false`            |
/// | `String`                                | UTF-8 binary (an Elixir string)         |
/// | `[UInt8]`                               | binary                                  |
/// | other arrays                            | proper list                             |
/// | `Optional`                              | the value, or the atom `nil`            |
/// | `Dictionary`                            | map                                     |
/// | `Pid`, `Reference`, ``Port``, ``BigInteger``, ``Fun`` | themselves                |
///
/// These match what ``TermEncoder`` produces for the same values.
///
/// ```swift
/// struct Point: TermConvertible {
///     let x: Int, y: Int
///     var term: Term { .tuple([.atom("point"), x.term, y.term]) }   // {point, X, Y}
/// }
/// let message: Term = ["id": 7, "tags": ["a", "b"].term]
/// ```
public protocol TermConvertible: Sendable {
    /// This value as a term.
    var term: Term { get }
}

extension Term: TermConvertible {
    /// The term itself.
    ///
    /// ```swift
    /// Term.atom("ok").term   // ok
    /// ```
    public var term: Term { self }
}

extension Atom: TermConvertible {
    /// The atom as a term.
    ///
    /// ```swift
    /// Atom("ok").term   // .atom("ok")
    /// ```
    public var term: Term { .atom(self) }
}

extension Pid: TermConvertible {
    /// The pid as a term.
    ///
    /// ```swift
    /// let reply: Term = .tuple([.atom("from"), pid.term])
    /// ```
    public var term: Term { .pid(self) }
}

extension Reference: TermConvertible {
    /// The reference as a term.
    ///
    /// ```swift
    /// let tagged: Term = .tuple([Reference.make().term, 42])
    /// ```
    public var term: Term { .reference(self) }
}

extension Port: TermConvertible {
    /// The port as a term.
    ///
    /// ```swift
    /// let t = port.term   // .port(port)
    /// ```
    public var term: Term { .port(self) }
}

extension BigInteger: TermConvertible {
    /// The integer as a term (`.bigInteger`, even if it would fit in an `Int`).
    ///
    /// ```swift
    /// BigInteger(negative: false, magnitude: [0, 0, 0, 0, 0, 0, 0, 0, 1]).term   // 2^64
    /// ```
    public var term: Term { .bigInteger(self) }
}

extension Fun: TermConvertible {
    /// The fun as a term.
    ///
    /// ```swift
    /// let t = fun.term   // .fun(fun)
    /// ```
    public var term: Term { .fun(self) }
}

extension Bool: TermConvertible {
    /// The atom `true` or `false`.
    ///
    /// ```swift
    /// true.term   // .atom("true")
    /// ```
    public var term: Term { self ? .true : .false }
}

extension String: TermConvertible {
    /// The string as a UTF-8 binary (an Elixir string).
    ///
    /// ```swift
    /// "héllo".term   // <<"héllo">>
    /// ```
    public var term: Term { .string(self) }
}

extension Double: TermConvertible {
    /// The float. NaN and infinities have no Erlang form: encoding the term throws.
    ///
    /// ```swift
    /// 1.5.term   // .float(1.5)
    /// ```
    public var term: Term { .float(self) }
}

extension Float: TermConvertible {
    /// The float, widened to a `Double`.
    ///
    /// ```swift
    /// Float(0.5).term   // .float(0.5)
    /// ```
    public var term: Term { .float(Double(self)) }
}

extension Int: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// 42.term   // .integer(42)
    /// ```
    public var term: Term { .integer(self) }
}

extension Int8: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// Int8(-1).term   // .integer(-1)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension Int16: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// Int16(300).term   // .integer(300)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension Int32: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// Int32.max.term   // .integer(2147483647)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension Int64: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// Int64.min.term   // .integer(-9223372036854775808)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension Int128: TermConvertible {
    /// The integer: `.integer` if it fits in an `Int`, else `.bigInteger`.
    ///
    /// ```swift
    /// (Int128(1) << 100).term   // a big integer
    /// ```
    public var term: Term { TermEncoding.integer(self) }
}

extension UInt: TermConvertible {
    /// The integer: `.integer` if it fits in an `Int`, else `.bigInteger`.
    ///
    /// ```swift
    /// UInt.max.term   // .bigInteger(18446744073709551615)
    /// ```
    public var term: Term { TermEncoding.integer(self) }
}

extension UInt8: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// UInt8(255).term   // .integer(255)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension UInt16: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// UInt16(65535).term   // .integer(65535)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension UInt32: TermConvertible {
    /// The integer.
    ///
    /// ```swift
    /// UInt32.max.term   // .integer(4294967295)
    /// ```
    public var term: Term { .integer(Int(self)) }
}

extension UInt64: TermConvertible {
    /// The integer: `.integer` if it fits in an `Int`, else `.bigInteger`.
    ///
    /// ```swift
    /// UInt64.max.term   // .bigInteger(18446744073709551615)
    /// ```
    public var term: Term { TermEncoding.integer(self) }
}

extension UInt128: TermConvertible {
    /// The integer: `.integer` if it fits in an `Int`, else `.bigInteger`.
    ///
    /// ```swift
    /// UInt128.max.term   // a big integer
    /// ```
    public var term: Term { TermEncoding.integer(self) }
}

extension Array: TermConvertible where Element: TermConvertible {
    /// A proper list of the elements' terms; `[UInt8]` is a binary instead, as with
    /// ``TermEncoder``.
    ///
    /// ```swift
    /// [1, 2, 3].term            // [1, 2, 3]
    /// ([1, 2] as [UInt8]).term  // <<1, 2>>
    /// ```
    public var term: Term {
        if Element.self == UInt8.self { return .binary(self as! [UInt8]) }
        return .list(map(\.term))
    }
}

extension Optional: TermConvertible where Wrapped: TermConvertible {
    /// The wrapped value's term, or the atom `nil` (Elixir's `nil`).
    ///
    /// ```swift
    /// let missing: Int? = nil
    /// missing.term   // .atom("nil")
    /// ```
    public var term: Term { self?.term ?? .atom(.nil) }
}

extension Dictionary: TermConvertible where Key: TermConvertible, Value: TermConvertible {
    /// A map of the keys' and values' terms. If two keys have the same term, one of them wins.
    ///
    /// ```swift
    /// ["a": 1].term                    // %{"a" => 1}
    /// [Atom("a"): 1].term              // %{a: 1}
    /// ```
    public var term: Term {
        var map: [Term: Term] = [:]
        map.reserveCapacity(count)
        for (k, v) in self { map[k.term] = v.term }
        return .map(map)
    }
}
