import CZlib
#if canImport(Glibc)
import Glibc
#endif
@_spi(Distribution) import Parley

/// The external term format's tags (erl_ext_dist).
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
package struct TermReader {
    private(set) var raw: UnsafeRawBufferPointer
    var pos = 0
    let identity: WireIdentity
    let limits: TermLimits
    var depth = 0
    /// A connection's cache of recent atoms, nodes and local pids (nil: decode from scratch).
    package var cache: DecodeCache? = nil

    package init(_ raw: UnsafeRawBufferPointer, identity: WireIdentity, limits: TermLimits) {
        self.raw = raw
        self.identity = identity
        self.limits = limits
    }

    package var remaining: Int { raw.count - pos }

    /// Starts over on other bytes, keeping identity, limits and cache (one reader for all
    /// the frames of a read).
    package mutating func reset(_ bytes: UnsafeRawBufferPointer) {
        raw = bytes
        pos = 0
        depth = 0
    }

    @inline(__always) mutating func need(_ n: Int) throws(TermDecodingError) {
        if n > remaining { throw .truncated(at: pos) }
    }
    @inline(__always) package mutating func u8() throws(TermDecodingError) -> UInt8 {
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
    package mutating func readVersioned() throws(TermDecodingError) -> Term {
        let v = try u8()
        guard v == ExternalTermFormat.version else { throw .badVersion(v) }
        if remaining > 0, raw[pos] == Tag.compressed {
            pos += 1
            return try readCompressed()
        }
        return try read()
    }

    /// A term without a version byte (or a compressed one): what follows a distribution
    /// header, which stands for the terms' version bytes.
    package mutating func readUnversioned() throws(TermDecodingError) -> Term {
        if remaining > 0, raw[pos] == Tag.compressed {
            pos += 1
            return try readCompressed()
        }
        return try read()
    }

    /// If the next bytes are SEND's control tuple `131 {2, '', Pid}` (without the 131 after a
    /// distribution header: `versioned` false), reads it and returns the pid; otherwise
    /// leaves the position where it was and returns nil.
    package mutating func readSendControl(versioned: Bool = true) throws(TermDecodingError) -> Pid? {
        let start = pos
        let v = versioned ? 1 : 0
        guard remaining >= 7 + v, !versioned || raw[pos] == 131, raw[pos + v] == Tag.smallTuple, raw[pos + v + 1] == 3,
              raw[pos + v + 2] == Tag.smallInteger, raw[pos + v + 3] == 2 else { return nil }
        pos += 4 + v
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
        case Tag.atomCacheRef:
            // A reference to the frame's header: compared by name (an Atom's name is the
            // interned String, so a cached atom compares in a few instructions).
            guard remaining >= 14, let a = cache?.frameAtom(Int(raw[pos + 1])), a.name == identity.name else { return nil }
            pos += 2
            return try localPidAfterNode()
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
        return try localPidAfterNode()
    }

    /// NEW_PID_EXT's id, serial and creation after a node atom that is this node's name.
    @inline(__always)
    mutating func localPidAfterNode() throws(TermDecodingError) -> Pid {
        let id = try u32(), serial = try u32(), creation = try u32()
        guard creation == identity.creation else {
            // This node's name from an earlier incarnation: a pid that is not ours.
            return Pid(node: node(Atom(identity.name)), id: id, serial: serial, creation: creation)
        }
        if let cache { return cache.localPid(id: id, serial: serial, home: identity.home) }
        return identity.home.localPid(id: id, serial: serial)
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
        case Tag.atomCacheRef: return try cachedAtom(at: at)
        default: throw .unknownTag(tag, at: at)
        }
    }

    func node(_ atom: Atom) -> Node { cache?.node(atom) ?? Node.named(atom.name) }

    mutating func pid(nodeAtom: Atom, id: UInt32, serial: UInt32, creation: UInt32) -> Pid {
        if nodeAtom.name == identity.name && creation == identity.creation {
            if let cache { return cache.localPid(id: id, serial: serial, home: identity.home) }
            return identity.home.localPid(id: id, serial: serial)
        }
        let n = node(nodeAtom)
        if let hosted = LocalNode.hostedPid(node: n, id: id, serial: serial, creation: creation) { return hosted }
        return Pid(node: n, id: id, serial: serial, creation: creation)
    }

    mutating func reference(nodeAtom: Atom, creation: UInt32, words: [UInt32], at: Int) throws(TermDecodingError) -> Reference {
        guard (1...5).contains(words.count) else { throw .invalid("a reference has 1 to 5 words, not \(words.count)", at: at) }
        let ours = nodeAtom.name == identity.name && creation == identity.creation
        if words.count == 3 && words[2] == 0 && (ours || LocalNode.isHostedReference(node: node(nodeAtom), creation: creation)) {
            // Made by a node of this OS process: references in memory carry no node.
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
        case Tag.atomCacheRef: return .atom(try cachedAtom(at: at))
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
            // Under a distribution header the fun's atoms may be references to the frame's
            // list, which mean nothing once the fun is sent on: its bytes are made anew with
            // each atom's text.
            if let cache, !cache.frameAtoms.isEmpty { return .fun(Fun(bytes: try funWithAtomTexts(at: at, size: size))) }
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
