/// Why bytes could not be decoded as a term. The connection that sent them is closed with
/// a log line naming this error; nothing else is affected.
public enum TermDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes end before the term does.
    case truncated(at: Int)
    /// The first byte is not the format version 131.
    case badVersion(UInt8)
    /// A tag this node does not know (or did not negotiate, such as an atom cache reference).
    case unknownTag(UInt8, at: Int)
    /// Nesting deeper than ``TermLimits/maxDepth``.
    case tooDeep(limit: Int)
    /// A length or count larger than the bytes that remain could hold.
    case lengthTooLarge(Int, at: Int)
    /// A new atom while ``AtomTable`` is full.
    case atomTableFull(limit: Int)
    /// An atom that is not valid UTF-8 or is longer than 255 characters.
    case invalidAtom(at: Int)
    /// A compressed term that zlib could not inflate to its stated size.
    case badCompression
    /// A compressed term whose stated size is over ``TermLimits/maxInflatedSize``.
    case inflatedTooLarge(Int, limit: Int)
    /// A value that breaks the format's rules (a reference with 6 words, a bitstring with 0 bits...).
    case invalid(String, at: Int)
    /// Bytes left over after a complete term.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .truncated(let at): return "truncated term at byte \(at)"
        case .badVersion(let v): return "bad version byte \(v) (expected 131)"
        case .unknownTag(let t, let at): return "unknown tag \(t) at byte \(at)"
        case .tooDeep(let limit): return "term nested deeper than \(limit)"
        case .lengthTooLarge(let n, let at): return "length \(n) at byte \(at) exceeds the bytes that remain"
        case .atomTableFull(let limit): return "atom table full (\(limit) atoms): refusing a new atom"
        case .invalidAtom(let at): return "invalid atom at byte \(at)"
        case .badCompression: return "compressed term does not inflate to its stated size"
        case .inflatedTooLarge(let n, let limit): return "compressed term claims \(n) bytes, over the limit of \(limit)"
        case .invalid(let what, let at): return "invalid term at byte \(at): \(what)"
        case .trailingBytes(let n): return "\(n) bytes after the end of the term"
        }
    }
}

/// Why a term could not be encoded.
public enum TermEncodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// NaN and infinities have no Erlang form.
    case nonFiniteFloat(Double)
    /// An atom longer than 255 characters.
    case atomTooLong(String)
    /// A Swift value with no term form (not a ``Term``, ``TermConvertible`` or `Encodable`).
    case notEncodable(String)

    public var description: String {
        switch self {
        case .nonFiniteFloat(let d): return "\(d) has no Erlang float form"
        case .atomTooLong(let a): return "atom '\(a.prefix(40))...' is longer than 255 characters"
        case .notEncodable(let t): return "\(t) cannot be sent to another node: make it Encodable or TermConvertible, or send a Term"
        }
    }
}

/// Bounds the decoder enforces on bytes from other nodes.
public struct TermLimits: Sendable, Hashable {
    /// Deepest nesting of tuples, lists (in their elements), maps and compressed terms.
    public var maxDepth: Int = 2000
    /// Largest size a compressed term may inflate to.
    public var maxInflatedSize: Int = 256 << 20
    public init(maxDepth: Int = 2000, maxInflatedSize: Int = 256 << 20) {
        self.maxDepth = maxDepth
        self.maxInflatedSize = maxInflatedSize
    }
}

/// The external term format (version 131): Erlang's wire and `term_to_binary` format.
///
/// ```swift
/// let bytes = try ExternalTermFormat.encode(.tuple([.atom("ok"), 42]))
/// let term = try ExternalTermFormat.decode(bytes)     // {ok,42}
/// ```
