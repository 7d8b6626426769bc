import CZlib
#if canImport(Glibc)
import Glibc
#endif
@_spi(Distribution) import Parley

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
public enum ExternalTermFormat {
    public static let version: UInt8 = 131

    /// Encodes `term` with the version byte, as `term_to_binary/1` does.
    public static func encode(_ term: Term) throws(TermEncodingError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        out.append(version)
        try TermWriter.write(term, into: &out, identity: .current)
        return out
    }

    /// Decodes one complete term (version byte first), as `binary_to_term/1` does.
    /// - Throws: ``TermDecodingError`` for anything malformed, over a limit, or left over.
    public static func decode(_ bytes: [UInt8], limits: TermLimits = TermLimits()) throws(TermDecodingError) -> Term {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(TermDecodingError) -> Term in
                var reader = TermReader(raw, identity: .current, limits: limits)
                let t = try reader.readVersioned()
                if reader.pos != raw.count { throw .trailingBytes(raw.count - reader.pos) }
                return t
            }
        }.get()
    }
}

/// This node's name and creation as they appear in pids on the wire.
struct WireIdentity: Sendable {
    let name: String
    let creation: UInt32
    /// The name's bytes when it is ASCII (then the same in every atom encoding): pids of
    /// this node are recognised on the wire by comparing bytes, without making an atom.
    let asciiName: [UInt8]?

    init(name: String, creation: UInt32) {
        self.name = name
        self.creation = creation
        self.asciiName = name.utf8.allSatisfy { $0 < 0x80 } ? Array(name.utf8) : nil
    }
    static var current: WireIdentity { WireIdentity(name: Node.localNodeName, creation: currentCreation()) }
}

func currentCreation() -> UInt32 { Remote.creation }

// MARK: Decoding

enum Tag {
    static let newFloat: UInt8 = 70, bitBinary: UInt8 = 77, compressed: UInt8 = 80, atomCacheRef: UInt8 = 82
    static let newPid: UInt8 = 88, newPort: UInt8 = 89, newerReference: UInt8 = 90
    static let smallInteger: UInt8 = 97, integer: UInt8 = 98, float: UInt8 = 99, atom: UInt8 = 100
    static let reference: UInt8 = 101, port: UInt8 = 102, pid: UInt8 = 103, smallTuple: UInt8 = 104
    static let largeTuple: UInt8 = 105, nilList: UInt8 = 106, string: UInt8 = 107, list: UInt8 = 108
    static let binary: UInt8 = 109, smallBig: UInt8 = 110, largeBig: UInt8 = 111, newFun: UInt8 = 112
    static let export: UInt8 = 113, newReference: UInt8 = 114, smallAtom: UInt8 = 115, map: UInt8 = 116
    static let atomUTF8: UInt8 = 118, smallAtomUTF8: UInt8 = 119, v4Port: UInt8 = 120
}

/// Reads terms from raw bytes. Every length is checked against what remains before anything
/// is allocated, so a huge stated length costs nothing.
struct TermReader {
    private(set) var raw: UnsafeRawBufferPointer
    var pos = 0
    let identity: WireIdentity
    let limits: TermLimits
    var depth = 0
    /// A connection's cache of recent atoms, nodes and local pids (nil: decode from scratch).
    var cache: DecodeCache? = nil

    init(_ raw: UnsafeRawBufferPointer, identity: WireIdentity, limits: TermLimits) {
        self.raw = raw
        self.identity = identity
        self.limits = limits
    }

    var remaining: Int { raw.count - pos }

    /// Starts over on other bytes, keeping identity, limits and cache (one reader for all
    /// the frames of a read).
    mutating func reset(_ bytes: UnsafeRawBufferPointer) {
        raw = bytes
        pos = 0
        depth = 0
    }

    @inline(__always) mutating func need(_ n: Int) throws(TermDecodingError) {
        if n > remaining { throw .truncated(at: pos) }
    }
    @inline(__always) mutating func u8() throws(TermDecodingError) -> UInt8 {
        try need(1)
        defer { pos += 1 }
        return raw[pos]
    }
    @inline(__always) mutating func u16() throws(TermDecodingError) -> UInt16 {
        try need(2)
        defer { pos += 2 }
        return UInt16(raw[pos]) << 8 | UInt16(raw[pos + 1])
    }
    @inline(__always) mutating func u32() throws(TermDecodingError) -> UInt32 {
        try need(4)
        defer { pos += 4 }
        return UInt32(raw[pos]) << 24 | UInt32(raw[pos + 1]) << 16 | UInt32(raw[pos + 2]) << 8 | UInt32(raw[pos + 3])
    }
    mutating func u64() throws(TermDecodingError) -> UInt64 {
        let hi = UInt64(try u32())
        return hi << 32 | UInt64(try u32())
    }
    mutating func bytes(_ n: Int) throws(TermDecodingError) -> [UInt8] {
        try need(n)
        defer { pos += n }
        return Array(UnsafeRawBufferPointer(rebasing: raw[pos..<pos + n]))
    }
    /// A count of items each at least `minSize` bytes long: refused if the rest cannot hold them.
    mutating func count(_ n: Int, minSize: Int, at: Int) throws(TermDecodingError) -> Int {
        if n > remaining / max(minSize, 1) { throw .lengthTooLarge(n, at: at) }
        return n
    }

    /// A version byte, then a term (or a compressed term).
    mutating func readVersioned() throws(TermDecodingError) -> Term {
        let v = try u8()
        guard v == ExternalTermFormat.version else { throw .badVersion(v) }
        if remaining > 0, raw[pos] == Tag.compressed {
            pos += 1
            return try readCompressed()
        }
        return try read()
    }

    /// If the next bytes are SEND's control tuple `131 {2, '', Pid}`, reads it and returns the
    /// pid; otherwise leaves the position where it was and returns nil.
    mutating func readSendControl() throws(TermDecodingError) -> Pid? {
        let start = pos
        guard remaining >= 8, raw[pos] == 131, raw[pos + 1] == Tag.smallTuple, raw[pos + 2] == 3,
              raw[pos + 3] == Tag.smallInteger, raw[pos + 4] == 2 else { return nil }
        pos += 5
        // The unused cookie, '': its usual encodings are skipped without reading an atom.
        if raw[pos] == Tag.smallAtomUTF8 || raw[pos] == Tag.smallAtom, raw[pos + 1] == 0 {
            pos += 2
        } else {
            _ = try readAtom()
        }
        guard remaining > 0, raw[pos] == Tag.newPid else {
            pos = start
            return nil
        }
        pos += 1
        if let local = identity.asciiName, let pid = try readLocalPid(named: local) { return pid }
        let n = try readAtom()
        let id = try u32(), serial = try u32(), creation = try u32()
        return pid(nodeAtom: n, id: id, serial: serial, creation: creation)
    }

    /// After NEW_PID_EXT's tag: if the node atom is this node's name (bytes compared, no
    /// atom made), reads the rest and returns the local pid; otherwise reads nothing.
    @inline(__always)
    mutating func readLocalPid(named local: [UInt8]) throws(TermDecodingError) -> Pid? {
        guard remaining >= 2 else { return nil }
        let header: Int, length: Int
        switch raw[pos] {
        case Tag.smallAtomUTF8, Tag.smallAtom: header = 2; length = Int(raw[pos + 1])
        case Tag.atomUTF8, Tag.atom:
            guard remaining >= 3 else { return nil }
            header = 3; length = Int(raw[pos + 1]) << 8 | Int(raw[pos + 2])
        default: return nil
        }
        guard length == local.count, remaining >= header + length + 12 else { return nil }
        let same = local.withUnsafeBytes { memcmp($0.baseAddress!, raw.baseAddress! + pos + header, length) == 0 }
        guard same else { return nil }
        pos += header + length
        let id = try u32(), serial = try u32(), creation = try u32()
        guard creation == identity.creation else {
            // This node's name from an earlier incarnation: a pid that is not ours.
            return Pid(node: node(Atom(identity.name)), id: id, serial: serial, creation: creation)
        }
        if let cache { return cache.localPid(id: id, serial: serial) }
        return Remote.localPid(id: id, serial: serial)
    }

    mutating func readCompressed() throws(TermDecodingError) -> Term {
        let at = pos
        let size = Int(try u32())
        if size > limits.maxInflatedSize { throw .inflatedTooLarge(size, limit: limits.maxInflatedSize) }
        let source = UnsafeRawBufferPointer(rebasing: raw[pos...])
        // Deflate inflates at most 1032:1, and no term is empty: a size that these bytes
        // cannot make is refused before allocating it (a 10-byte message claiming 256 MB).
        guard size > 0, size <= source.count * 1032 + 64 else { throw .badCompression }
        var inflated = [UInt8](repeating: 0, count: size)
        var destLen = uLongf(size)
        let rc = inflated.withUnsafeMutableBytes { out in
            uncompress(out.baseAddress!.assumingMemoryBound(to: Bytef.self), &destLen,
                       source.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(source.count))
        }
        guard rc == Z_OK, destLen == uLongf(size) else { throw .badCompression }
        _ = at
        pos = raw.count
        let (identity, limits, depth) = (identity, limits, depth)
        return try inflated.withUnsafeBytes { inner in
            Result { () throws(TermDecodingError) -> Term in
                var r = TermReader(inner, identity: identity, limits: limits)
                r.depth = depth + 1
                let t = try r.read()
                if r.pos != inner.count { throw .trailingBytes(inner.count - r.pos) }
                return t
            }
        }.get()
    }

    mutating func atomText(length n: Int, utf8: Bool) throws(TermDecodingError) -> Atom {
        let at = pos
        try need(n)
        let slice = UnsafeRawBufferPointer(rebasing: raw[pos..<pos + n])
        pos += n
        if utf8, let cached = cache?.atom(slice) { return cached }
        let name: String
        if utf8 {
            if !slice.contains(where: { $0 >= 0x80 }) {
                guard n <= 255 else { throw .invalidAtom(at: at) }
                name = String(decoding: slice, as: UTF8.self)  // ASCII: valid, one scalar per byte
            } else {
                guard let s = String(validating: slice, as: UTF8.self), n <= 255 || s.unicodeScalars.count <= 255 else { throw .invalidAtom(at: at) }
                name = s
            }
        } else {
            // Latin-1: one byte per character, and an atom has at most 255 (as in erts).
            guard n <= 255 else { throw .invalidAtom(at: at) }
            var scalars = String.UnicodeScalarView()
            for b in slice { scalars.append(Unicode.Scalar(b)) }
            name = String(scalars)
        }
        let atom = try AtomTable.intern(name)
        if utf8 { cache?.remember(slice, atom) }
        return atom
    }

    /// Any atom form (the node of a pid, the module of an export).
    mutating func readAtom() throws(TermDecodingError) -> Atom {
        let at = pos
        let tag = try u8()
        switch tag {
        case Tag.atomUTF8: return try atomText(length: Int(try u16()), utf8: true)
        case Tag.smallAtomUTF8: return try atomText(length: Int(try u8()), utf8: true)
        case Tag.atom: return try atomText(length: Int(try u16()), utf8: false)
        case Tag.smallAtom: return try atomText(length: Int(try u8()), utf8: false)
        default: throw .unknownTag(tag, at: at)
        }
    }

    func node(_ atom: Atom) -> Node { cache?.node(atom) ?? Node.named(atom.name) }

    mutating func pid(nodeAtom: Atom, id: UInt32, serial: UInt32, creation: UInt32) -> Pid {
        if nodeAtom.name == identity.name && creation == identity.creation {
            if let cache { return cache.localPid(id: id, serial: serial) }
            return Remote.localPid(id: id, serial: serial)
        }
        return Pid(node: node(nodeAtom), id: id, serial: serial, creation: creation)
    }

    mutating func reference(nodeAtom: Atom, creation: UInt32, words: [UInt32], at: Int) throws(TermDecodingError) -> Reference {
        guard (1...5).contains(words.count) else { throw .invalid("a reference has 1 to 5 words, not \(words.count)", at: at) }
        if nodeAtom.name == identity.name && creation == identity.creation && words.count == 3 && words[2] == 0 {
            return Remote.localReference(id: UInt64(words[0]) | UInt64(words[1]) << 32)
        }
        return Reference(node: node(nodeAtom), creation: creation, words: words)
    }

    /// One term. Only the containers recurse, and only they are handled here: in a debug
    /// build every case's locals get their own stack slots, and with all cases in one function
    /// a nesting level took ~10 KB of stack, so 100,000 nested tuples overflowed an event
    /// loop thread's 8 MB stack (at ~850 levels) before ``TermLimits/maxDepth`` was reached.
    /// Leaves are read by ``readLeaf(_:at:)``, outside the recursion: ~1.7 KB a level in a
    /// debug build, 3.4 MB at the default limit of 2000.
    mutating func read() throws(TermDecodingError) -> Term {
        let at = pos
        let tag = try u8()
        switch tag {
        case Tag.smallTuple, Tag.largeTuple:
            let arity = tag == Tag.smallTuple ? Int(try u8()) : Int(try u32())
            return .tuple(try nested(try count(arity, minSize: 1, at: at)))
        case Tag.list:
            let items = try nested(try count(Int(try u32()), minSize: 1, at: at))
            let tail = try nested(1)[0]
            if case .list(let l) = tail, l.isEmpty { return .list(items) }
            return .improperList(items, tail: tail)
        case Tag.map:
            return try readMap(at: at)
        default:
            return try readLeaf(tag, at: at)
        }
    }

    mutating func readMap(at: Int) throws(TermDecodingError) -> Term {
        let n = try count(Int(try u32()), minSize: 2, at: at)
        try enter()
        defer { depth -= 1 }
        var m: [Term: Term] = [:]
        m.reserveCapacity(n)
        for _ in 0..<n {
            let k = try read()
            m[k] = try read()
        }
        return .map(m)
    }

    /// A term that holds no other terms.
    @inline(never)
    mutating func readLeaf(_ tag: UInt8, at: Int) throws(TermDecodingError) -> Term {
        switch tag {
        case Tag.smallInteger: return .integer(Int(try u8()))
        case Tag.integer: return .integer(Int(Int32(bitPattern: try u32())))
        case Tag.smallBig, Tag.largeBig:
            let n = tag == Tag.smallBig ? Int(try u8()) : Int(try u32())
            let sign = try u8()
            if n > remaining { throw .lengthTooLarge(n, at: at) }
            let mag = try bytes(n)
            return Self.integer(negative: sign != 0, magnitude: mag)
        case Tag.newFloat:
            // NaN and infinities have no Erlang form: binary_to_term refuses them too.
            let d = Double(bitPattern: try u64())
            guard d.isFinite else { throw .invalid("non-finite float", at: at) }
            return .float(d)
        case Tag.float:
            let text = try bytes(31)
            let s = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
            guard let d = Double(s.filter { $0 != " " }), d.isFinite else { throw .invalid("FLOAT_EXT '\(s)'", at: at) }
            return .float(d)
        case Tag.atomUTF8: return .atom(try atomText(length: Int(try u16()), utf8: true))
        case Tag.smallAtomUTF8: return .atom(try atomText(length: Int(try u8()), utf8: true))
        case Tag.atom: return .atom(try atomText(length: Int(try u16()), utf8: false))
        case Tag.smallAtom: return .atom(try atomText(length: Int(try u8()), utf8: false))
        case Tag.newPid, Tag.pid:
            let n = try readAtom()
            let id = try u32(), serial = try u32()
            let creation = tag == Tag.newPid ? try u32() : UInt32(try u8())
            return .pid(pid(nodeAtom: n, id: id, serial: serial, creation: creation))
        case Tag.newPort, Tag.port, Tag.v4Port:
            let n = try readAtom()
            let id = tag == Tag.v4Port ? try u64() : UInt64(try u32())
            let creation = tag == Tag.port ? UInt32(try u8()) : try u32()
            return .port(Port(node: n, id: id, creation: creation))
        case Tag.newerReference, Tag.newReference:
            let len = Int(try u16())
            let n = try readAtom()
            let creation = tag == Tag.newerReference ? try u32() : UInt32(try u8())
            guard (1...5).contains(len) else { throw .invalid("a reference has 1 to 5 words, not \(len)", at: at) }
            var words: [UInt32] = []
            for _ in 0..<len { words.append(try u32()) }
            return .reference(try reference(nodeAtom: n, creation: creation, words: words, at: at))
        case Tag.reference:
            let n = try readAtom()
            let id = try u32()
            let creation = UInt32(try u8())
            return .reference(try reference(nodeAtom: n, creation: creation, words: [id], at: at))
        case Tag.nilList: return .list([])
        case Tag.string:
            let n = Int(try u16())
            try need(n)
            var items: [Term] = []
            items.reserveCapacity(n)
            for i in 0..<n { items.append(.integer(Int(raw[pos + i]))) }
            pos += n
            return .list(items)
        case Tag.binary:
            let n = Int(try u32())
            if n > remaining { throw .lengthTooLarge(n, at: at) }
            return .binary(try bytes(n))
        case Tag.bitBinary:
            let n = Int(try u32())
            let bits = try u8()
            if n > remaining { throw .lengthTooLarge(n, at: at) }
            guard (1...8).contains(bits) || (n == 0 && bits == 0) else { throw .invalid("bitstring with \(bits) bits in its last byte", at: at) }
            let data = try bytes(n)
            return bits == 8 || n == 0 ? .binary(data) : .bitBinary(data, bits: bits)
        case Tag.export:
            let m = try readAtom()
            let f = try readAtom()
            let arityAt = pos
            guard try u8() == Tag.smallInteger else { throw .invalid("export arity is not a small integer", at: arityAt) }
            return .export(module: m, function: f, arity: try u8())
        case Tag.newFun:
            let size = Int(try u32())
            // Size counts itself: the fun is `size` bytes from the size field on.
            guard size >= 4 else { throw .invalid("fun of size \(size)", at: at) }
            if size - 4 > remaining { throw .lengthTooLarge(size, at: at) }
            pos = at
            return .fun(Fun(bytes: try bytes(size + 1)))
        default:
            throw .unknownTag(tag, at: at)
        }
    }

    mutating func enter() throws(TermDecodingError) {
        depth += 1
        if depth > limits.maxDepth { throw .tooDeep(limit: limits.maxDepth) }
    }

    mutating func nested(_ n: Int) throws(TermDecodingError) -> [Term] {
        try enter()
        defer { depth -= 1 }
        var items: [Term] = []
        items.reserveCapacity(n)
        for _ in 0..<n { items.append(try read()) }
        return items
    }

    static func integer(negative: Bool, magnitude: [UInt8]) -> Term {
        var m = magnitude
        while m.last == 0 { m.removeLast() }
        if m.count <= 8 {
            var v: UInt64 = 0
            for (i, b) in m.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
            if !negative, v <= UInt64(Int.max) { return .integer(Int(v)) }
            if negative, v <= UInt64(Int.max) + 1 { return .integer(v == UInt64(Int.max) + 1 ? Int.min : -Int(v)) }
        }
        return .bigInteger(BigInteger(negative: negative, magnitude: m))
    }
}

// MARK: Encoding

/// Where encoded bytes go: an array, or a SwiftNIO buffer (the connection writes terms
/// straight into its outgoing buffer).
protocol TermSink {
    mutating func put(_ b: UInt8)
    mutating func put16(_ v: UInt16)
    mutating func put32(_ v: UInt32)
    mutating func put<C: Collection>(bytes: C) where C.Element == UInt8
}

extension Array: TermSink where Element == UInt8 {
    @inline(__always) mutating func put(_ b: UInt8) { append(b) }
    @inline(__always) mutating func put16(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(truncatingIfNeeded: v)) }
    @inline(__always) mutating func put32(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }
    @inline(__always) mutating func put<C: Collection>(bytes: C) where C.Element == UInt8 { append(contentsOf: bytes) }
}

enum TermWriter {
    /// Writes `term`. Only the terms that nest (tuples, lists, maps) are written here, the rest
    /// in ``writeLeaf(_:into:identity:)``, to keep the recursion's stack frame small (as
    /// ``TermReader/read()`` does).
    static func write<S: TermSink>(_ term: Term, into out: inout S, identity: WireIdentity) throws(TermEncodingError) {
        switch term {
        case .tuple(let items):
            if items.count <= 255 {
                out.put(Tag.smallTuple); out.put(UInt8(items.count))
            } else {
                out.put(Tag.largeTuple); out.put32(UInt32(items.count))
            }
            for t in items { try write(t, into: &out, identity: identity) }
        case .list(let items):
            if items.isEmpty { out.put(Tag.nilList); return }
            if items.count <= 65535, items.allSatisfy({ if case .integer(let i) = $0 { return (0...255).contains(i) }; return false }) {
                out.put(Tag.string); out.put16(UInt16(items.count))
                for t in items { if case .integer(let i) = t { out.put(UInt8(i)) } }
                return
            }
            out.put(Tag.list); out.put32(UInt32(items.count))
            for t in items { try write(t, into: &out, identity: identity) }
            out.put(Tag.nilList)
        case .improperList(let items, let tail):
            out.put(Tag.list); out.put32(UInt32(items.count))
            for t in items { try write(t, into: &out, identity: identity) }
            try write(tail, into: &out, identity: identity)
        case .map(let m):
            out.put(Tag.map); out.put32(UInt32(m.count))
            for (k, v) in m {
                try write(k, into: &out, identity: identity)
                try write(v, into: &out, identity: identity)
            }
        default:
            try writeLeaf(term, into: &out, identity: identity)
        }
    }

    @inline(never)
    static func writeLeaf<S: TermSink>(_ term: Term, into out: inout S, identity: WireIdentity) throws(TermEncodingError) {
        switch term {
        case .integer(let i):
            if (0...255).contains(i) {
                out.put(Tag.smallInteger); out.put(UInt8(i))
            } else if let v = Int32(exactly: i) {
                out.put(Tag.integer); out.put32(UInt32(bitPattern: v))
            } else {
                var mag = i.magnitude
                var bytes: [UInt8] = []
                while mag > 0 { bytes.append(UInt8(truncatingIfNeeded: mag)); mag >>= 8 }
                out.put(Tag.smallBig); out.put(UInt8(bytes.count)); out.put(i < 0 ? 1 : 0); out.put(bytes: bytes)
            }
        case .bigInteger(let b):
            if b.magnitude.count <= 255 {
                out.put(Tag.smallBig); out.put(UInt8(b.magnitude.count))
            } else {
                out.put(Tag.largeBig); out.put32(UInt32(b.magnitude.count))
            }
            out.put(b.negative ? 1 : 0); out.put(bytes: b.magnitude)
        case .float(let d):
            guard d.isFinite else { throw .nonFiniteFloat(d) }
            let bits = d.bitPattern
            out.put(Tag.newFloat); out.put32(UInt32(bits >> 32)); out.put32(UInt32(truncatingIfNeeded: bits))
        case .atom(let a):
            try writeAtom(a.name, into: &out)
        case .binary(let b):
            out.put(Tag.binary); out.put32(UInt32(b.count)); out.put(bytes: b)
        case .bitBinary(let b, let bits):
            out.put(Tag.bitBinary); out.put32(UInt32(b.count)); out.put(bits); out.put(bytes: b)
        case .pid(let p):
            out.put(Tag.newPid)
            try writeAtom(p.node?.name ?? identity.name, into: &out)
            out.put32(p.id); out.put32(p.serial); out.put32(p.node == nil ? identity.creation : p.creation)
        case .port(let p):
            if p.id > UInt64(UInt32.max) {
                out.put(Tag.v4Port); try writeAtom(p.node.name, into: &out)
                out.put32(UInt32(p.id >> 32)); out.put32(UInt32(truncatingIfNeeded: p.id))
            } else {
                out.put(Tag.newPort); try writeAtom(p.node.name, into: &out); out.put32(UInt32(p.id))
            }
            out.put32(p.creation)
        case .reference(let r):
            let words = r.words
            out.put(Tag.newerReference); out.put16(UInt16(words.count))
            try writeAtom(r.node?.name ?? identity.name, into: &out)
            out.put32(r.node == nil ? identity.creation : r.creation)
            for w in words { out.put32(w) }
        case .export(let m, let f, let arity):
            out.put(Tag.export)
            try writeAtom(m.name, into: &out)
            try writeAtom(f.name, into: &out)
            out.put(Tag.smallInteger); out.put(arity)
        case .fun(let f):
            out.put(bytes: f.bytes)
        case .tuple, .list, .improperList, .map:
            try write(term, into: &out, identity: identity)
        }
    }

    static func writeAtom<S: TermSink>(_ name: String, into out: inout S) throws(TermEncodingError) {
        let utf8 = name.utf8
        if utf8.count < 256 {
            out.put(Tag.smallAtomUTF8); out.put(UInt8(utf8.count))
        } else {
            guard name.unicodeScalars.count <= 255 else { throw .atomTooLong(name) }
            out.put(Tag.atomUTF8); out.put16(UInt16(utf8.count))
        }
        out.put(bytes: utf8)
    }
}

/// Encodes into caller-provided scratch memory (a stack allocation for the common small
/// message), spilling into an array only when a term outgrows it: no allocation and no
/// buffer bookkeeping per byte on the send path.
struct ScratchSink: TermSink {
    // The pointer is valid for the duration of the `withUnsafeTemporaryAllocation` call that
    // made this sink; the sink never escapes it.
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var count = 0
    var spill: [UInt8]? = nil

    init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    @inline(__always) private mutating func reserve(_ n: Int) -> Bool {
        if spill == nil, count + n <= capacity { return true }
        if spill == nil {
            var a = [UInt8]()
            a.reserveCapacity(max(capacity * 2, count + n))
            a.append(contentsOf: UnsafeRawBufferPointer(start: base, count: count))
            spill = a
        }
        return false
    }

    @inline(__always) mutating func put(_ b: UInt8) {
        if reserve(1) { base.storeBytes(of: b, toByteOffset: count, as: UInt8.self); count += 1 } else { spill!.append(b) }
    }
    @inline(__always) mutating func put16(_ v: UInt16) {
        if reserve(2) { base.storeBytes(of: v.bigEndian, toByteOffset: count, as: UInt16.self); count += 2 } else { spill!.put16(v) }
    }
    @inline(__always) mutating func put32(_ v: UInt32) {
        if reserve(4) { base.storeBytes(of: v.bigEndian, toByteOffset: count, as: UInt32.self); count += 4 } else { spill!.put32(v) }
    }
    @inline(__always) mutating func put<C: Collection>(bytes: C) where C.Element == UInt8 {
        let n = bytes.count
        if reserve(n) {
            let target = base + count
            // Arrays and native strings' UTF-8 are contiguous: one memcpy, not a byte loop.
            let copied: Void? = bytes.withContiguousStorageIfAvailable { src in
                if let from = src.baseAddress { target.copyMemory(from: from, byteCount: n) }
            }
            if copied == nil {
                _ = UnsafeMutableRawBufferPointer(start: target, count: n).initializeMemory(as: UInt8.self, from: bytes)
            }
            count += n
        } else {
            spill!.append(contentsOf: bytes)
        }
    }

    /// The bytes written, for the duration of `body`.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let spill { return try spill.withUnsafeBytes(body) }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}

extension TermWriter {
    /// A pid, as NEW_PID_EXT, without building a term.
    static func writePid<S: TermSink>(_ p: Pid, into out: inout S, identity: WireIdentity) throws(TermEncodingError) {
        out.put(Tag.newPid)
        try writeAtom(p.node?.name ?? identity.name, into: &out)
        out.put32(p.id); out.put32(p.serial); out.put32(p.node == nil ? identity.creation : p.creation)
    }
}

/// What one connection decodes over and over: the same atoms (`msg`, `'$gen_call'`, node
/// names), the same nodes, the same local pids. Direct-mapped and small; a hit skips the
/// atom table's lock and hashing, or the process table's. Owned by one connection and used
/// only on its event loop.
final class DecodeCache {
    // Only the owning connection's event loop thread touches these (see the class comment),
    // so the dynamic exclusivity checks are redundant.
    @exclusivity(unchecked) private var atoms = [(key: [UInt8], atom: Atom)?](repeating: nil, count: 64)
    @exclusivity(unchecked) private var nodes: [Atom: Node] = [:]
    @exclusivity(unchecked) private var pids = [Pid?](repeating: nil, count: 64)

    @inline(__always) private func slot(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let first = bytes.first, let last = bytes.last else { return 0 }
        return (bytes.count &* 31 &+ Int(first) &* 7 &+ Int(last)) & 63
    }

    func atom(_ bytes: UnsafeRawBufferPointer) -> Atom? {
        guard let e = atoms[slot(bytes)], e.key.count == bytes.count else { return nil }
        guard let b = bytes.baseAddress, !e.key.isEmpty else { return e.key.isEmpty ? e.atom : nil }
        return e.key.withUnsafeBytes { memcmp($0.baseAddress!, b, bytes.count) == 0 } ? e.atom : nil
    }

    func remember(_ bytes: UnsafeRawBufferPointer, _ atom: Atom) {
        atoms[slot(bytes)] = (Array(bytes), atom)
    }

    func node(_ atom: Atom) -> Node {
        if let n = nodes[atom] { return n }
        let n = Node.named(atom.name)
        if nodes.count < 1024 { nodes[atom] = n }
        return n
    }

    /// A local pid. A cached pid whose process has died is still the right answer: sends to
    /// it are dropped, as they must be, and ids are never reused while a pid could be cached.
    func localPid(id: UInt32, serial: UInt32) -> Pid {
        let i = Int((id ^ serial &* 16_777_619) & 63)
        if let p = pids[i], p.id == id, p.serial == serial { return p }
        let p = Remote.localPid(id: id, serial: serial)
        if p.isAlive { pids[i] = p }
        return p
    }
}
