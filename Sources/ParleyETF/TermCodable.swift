/// An enum whose cases travel as atoms: `:red` in Elixir, `red` in Erlang, rather than the
/// binaries `"red"` that plain `String` enums become. Conform a `String`-backed enum; its
/// raw values are the atoms' names.
///
/// With ``TermEncoder`` and ``TermDecoder`` the cases are atoms (decoding also accepts a
/// binary naming a case); with other coders, such as `JSONEncoder`, they are strings. As a
/// ``TermConvertible``, a case's ``TermConvertible/term`` is its atom.
///
/// ```swift
/// enum Status: String, AtomEnum { case ok, error, not_found }
/// struct Reply: Codable { let status: Status; let count: Int }
/// try TermEncoder().encode(Reply(status: .ok, count: 2))    // %{status: :ok, count: 2}
/// Status.not_found.term                                     // .atom("not_found")
/// ```
public protocol AtomEnum: RawRepresentable, Codable, TermConvertible where RawValue == String {}

extension AtomEnum {
    /// The case's atom.
    ///
    /// ```swift
    /// enum Color: String, AtomEnum { case red }
    /// Color.red.term        // .atom("red")
    /// ```
    public var term: Term { .atom(Atom(rawValue)) }

    /// Encodes the case as its atom (a string with encoders other than ``TermEncoder``).
    ///
    /// ```swift
    /// enum Color: String, AtomEnum { case red }
    /// try TermEncoder().encode(Color.red)   // .atom("red")
    /// ```
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Atom(rawValue))
    }

    /// Decodes the case its atom (or binary, or with other decoders string) names.
    ///
    /// ```swift
    /// enum Color: String, AtomEnum { case red }
    /// try TermDecoder().decode(Color.self, from: .atom("red"))   // .red
    /// ```
    /// - Throws: `DecodingError.dataCorrupted` for a name that is not one of the cases.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let atom = try container.decode(Atom.self)
        guard let value = Self(rawValue: atom.name) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(atom) is not a case of \(Self.self)")
        }
        self = value
    }
}

/// An atom encodes as itself with ``TermEncoder`` and as its name (a string) with other
/// encoders; it decodes from an atom or a UTF-8 binary with ``TermDecoder``, and from a
/// string with other decoders.
///
/// ```swift
/// struct Event: Codable { let kind: Atom; let at: Int }
/// try TermEncoder().encode(Event(kind: "tick", at: 3))   // %{kind: :tick, at: 3}
/// ```
extension Atom: Codable {
    /// Encodes the atom as an atom with ``TermEncoder``, as its name with other encoders.
    ///
    /// ```swift
    /// try TermEncoder().encode(Atom("ok"))            // .atom("ok")
    /// ```
    public func encode(to encoder: any Encoder) throws {
        if let state = encoder as? TermEncodingState {
            state.box.content = .term(.atom(self))
        } else {
            var container = encoder.singleValueContainer()
            try container.encode(name)
        }
    }

    /// Decodes an atom (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// try TermDecoder().decode(Atom.self, from: .atom("ok"))   // ok
    /// ```
    public init(from decoder: any Decoder) throws {
        if let state = decoder as? TermDecodingState {
            self = try TermDecoding.atom(state.term, at: state.codingPath)
        } else {
            self.init(try decoder.singleValueContainer().decode(String.self))
        }
    }
}

/// A ``Term`` inside a `Codable` value passes through ``TermEncoder`` and ``TermDecoder``
/// unchanged: the way to carry data with no fixed shape. Other coders cannot handle it and
/// throw.
///
/// ```swift
/// struct Envelope: Codable { let tag: Atom; let payload: Term }
/// let t = try TermEncoder().encode(Envelope(tag: "raw", payload: .tuple([1, 2])))
/// // %{tag: :raw, payload: {1, 2}}
/// ```
extension Term: Codable {
    /// Encodes the term as itself, with ``TermEncoder`` only.
    ///
    /// ```swift
    /// try TermEncoder().encode([Term.tuple([1, 2])])   // [{1, 2}]
    /// ```
    public func encode(to encoder: any Encoder) throws {
        try encodeAsTerm(self, to: encoder)
    }

    /// Decodes any term as itself (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// try TermDecoder().decode([Term].self, from: [1, .atom("a")])
    /// ```
    public init(from decoder: any Decoder) throws {
        self = try decodeAsTerm(Term.self, from: decoder) { $0 }
    }
}

/// A pid inside a `Codable` value is the term's pid, with ``TermEncoder`` and ``TermDecoder``
/// only (other coders throw).
///
/// ```swift
/// struct Subscribe: Codable { let subscriber: Pid; let topic: String }
/// ```
extension Pid: Codable {
    /// Encodes the pid as itself, with ``TermEncoder`` only.
    ///
    /// ```swift
    /// try TermEncoder().encode([pid])                 // [.pid(pid)]
    /// ```
    public func encode(to encoder: any Encoder) throws {
        try encodeAsTerm(.pid(self), to: encoder)
    }

    /// Decodes a pid (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// let pid = try TermDecoder().decode(Pid.self, from: term)
    /// ```
    public init(from decoder: any Decoder) throws {
        self = try decodeAsTerm(Pid.self, from: decoder) { if case .pid(let p) = $0 { p } else { nil } }
    }
}

/// A reference inside a `Codable` value is the term's reference, with ``TermEncoder`` and
/// ``TermDecoder`` only (other coders throw).
///
/// ```swift
/// struct Request: Codable { let tag: Reference; let body: String }
/// ```
extension Reference: Codable {
    /// Encodes the reference as itself, with ``TermEncoder`` only.
    ///
    /// ```swift
    /// try TermEncoder().encode([ref])                 // [.reference(ref)]
    /// ```
    public func encode(to encoder: any Encoder) throws {
        try encodeAsTerm(.reference(self), to: encoder)
    }

    /// Decodes a reference (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// let ref = try TermDecoder().decode(Reference.self, from: term)
    /// ```
    public init(from decoder: any Decoder) throws {
        self = try decodeAsTerm(Reference.self, from: decoder) { if case .reference(let r) = $0 { r } else { nil } }
    }
}

/// A port inside a `Codable` value is the term's port, with ``TermEncoder`` and
/// ``TermDecoder`` only (other coders throw).
///
/// ```swift
/// struct Owner: Codable { let port: Port }
/// ```
extension Port: Codable {
    /// Encodes the port as itself, with ``TermEncoder`` only.
    ///
    /// ```swift
    /// try TermEncoder().encode([port])                // [.port(port)]
    /// ```
    public func encode(to encoder: any Encoder) throws {
        try encodeAsTerm(.port(self), to: encoder)
    }

    /// Decodes a port (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// let port = try TermDecoder().decode(Port.self, from: term)
    /// ```
    public init(from decoder: any Decoder) throws {
        self = try decodeAsTerm(Port.self, from: decoder) { if case .port(let p) = $0 { p } else { nil } }
    }
}

/// A big integer inside a `Codable` value is the term's integer, with ``TermEncoder`` and
/// ``TermDecoder`` only (other coders throw). It decodes from any integer term.
///
/// ```swift
/// struct Balance: Codable { let amount: BigInteger }
/// ```
extension BigInteger: Codable {
    /// Encodes the integer as itself, with ``TermEncoder`` only.
    ///
    /// ```swift
    /// try TermEncoder().encode([big])                 // [.bigInteger(big)]
    /// ```
    public func encode(to encoder: any Encoder) throws {
        try encodeAsTerm(.bigInteger(self), to: encoder)
    }

    /// Decodes a big integer (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// let big = try TermDecoder().decode(BigInteger.self, from: 42)
    /// ```
    public init(from decoder: any Decoder) throws {
        self = try decodeAsTerm(BigInteger.self, from: decoder) {
            switch $0 {
            case .bigInteger(let b): b
            case .integer(let i): BigInteger(negative: i < 0, magnitude: TermEncoding.magnitudeBytes(i))
            default: nil
            }
        }
    }
}

/// A fun inside a `Codable` value is the term's fun, with ``TermEncoder`` and ``TermDecoder``
/// only (other coders throw).
///
/// ```swift
/// struct Job: Codable { let run: Fun }
/// ```
extension Fun: Codable {
    /// Encodes the fun as itself, with ``TermEncoder`` only.
    ///
    /// ```swift
    /// try TermEncoder().encode([fun])                 // [.fun(fun)]
    /// ```
    public func encode(to encoder: any Encoder) throws {
        try encodeAsTerm(.fun(self), to: encoder)
    }

    /// Decodes a fun (see the conformance above for what each decoder accepts).
    ///
    /// ```swift
    /// let fun = try TermDecoder().decode(Fun.self, from: term)
    /// ```
    public init(from decoder: any Decoder) throws {
        self = try decodeAsTerm(Fun.self, from: decoder) { if case .fun(let f) = $0 { f } else { nil } }
    }
}

private func encodeAsTerm(_ term: Term, to encoder: any Encoder) throws {
    guard let state = encoder as? TermEncodingState else {
        throw EncodingError.invalidValue(term, .init(
            codingPath: encoder.codingPath, debugDescription: "\(term) can only be encoded by TermEncoder"))
    }
    state.box.content = .term(term)
}

private func decodeAsTerm<T>(_ type: T.Type, from decoder: any Decoder, _ extract: (Term) -> T?) throws -> T {
    guard let state = decoder as? TermDecodingState else {
        throw DecodingError.typeMismatch(type, .init(
            codingPath: decoder.codingPath, debugDescription: "a \(T.self) can only be decoded by TermDecoder"))
    }
    guard let value = extract(state.term) else {
        throw TermDecoding.mismatch(type, "a \(T.self)", state.term, state.codingPath)
    }
    return value
}

/// A term from another node turns into the Swift type a process asks for: itself for
/// ``Term``, else a `Decodable` type through ``TermDecoder`` (nil if it does not fit). This
/// is how a GenServer whose `Call` is a `Codable` type takes requests from Erlang and
/// Elixir nodes.
///
/// ```swift
/// struct Add: Codable { let a: Int; let b: Int }
/// let request: Term = [.atom("a"): 1, .atom("b"): 2]      // %{a: 1, b: 2}
/// let add = convertMessage(request, to: Add.self)         // Add(a: 1, b: 2)
/// ```
extension Term: ConvertibleMessage {
    /// Itself if `T` is ``Term``; else, if `T` is `Decodable`, the term decoded with
    /// ``TermDecoder``; else nil (and nil if decoding fails).
    ///
    /// ```swift
    /// Term.integer(7).converted(to: Int.self)      // 7
    /// Term.atom("x").converted(to: Int.self)      // nil
    /// ```
    public func converted<T>(to type: T.Type) -> T? {
        if let same = self as? T { return same }
        guard let decodable = T.self as? any Decodable.Type else { return nil }
        return (try? TermDecoder().decode(decodable, from: self)) as? T
    }
}

