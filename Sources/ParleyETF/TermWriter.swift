@_spi(Distribution) import Parley

/// Where encoded bytes go: an array, or a connection's stack scratch (``ScratchSink``).
protocol TermSink {
    mutating func put(_ b: UInt8)
    mutating func put16(_ v: UInt16)
    mutating func put32(_ v: UInt32)
    mutating func put<C: Collection>(bytes: C) where C.Element == UInt8
    /// An atom: its text, or a reference to the frame's atom cache entries (``ScratchSink``
    /// under a distribution header).
    mutating func atom(_ name: String) throws(TermEncodingError)
}

extension TermSink {
    mutating func atom(_ name: String) throws(TermEncodingError) { try TermWriter.writeAtom(name, into: &self) }
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
            try out.atom(a.name)
        case .binary(let b):
            out.put(Tag.binary); out.put32(UInt32(b.count)); out.put(bytes: b)
        case .bitBinary(let b, let bits):
            out.put(Tag.bitBinary); out.put32(UInt32(b.count)); out.put(bits); out.put(bytes: b)
        case .pid(let p):
            try writePid(p, into: &out, identity: identity)
        case .port(let p):
            if p.id > UInt64(UInt32.max) {
                out.put(Tag.v4Port); try out.atom(p.node.name)
                out.put32(UInt32(p.id >> 32)); out.put32(UInt32(truncatingIfNeeded: p.id))
            } else {
                out.put(Tag.newPort); try out.atom(p.node.name); out.put32(UInt32(p.id))
            }
            out.put32(p.creation)
        case .reference(let r):
            let words = r.words
            out.put(Tag.newerReference); out.put16(UInt16(words.count))
            try out.atom(r.node?.name ?? identity.name)
            out.put32(r.node == nil ? identity.creation : r.creation)
            for w in words { out.put32(w) }
        case .export(let m, let f, let arity):
            out.put(Tag.export)
            try out.atom(m.name)
            try out.atom(f.name)
            out.put(Tag.smallInteger); out.put(arity)
        case .fun(let f):
            out.put(bytes: f.bytes)
        case .tuple, .list, .improperList, .map:
            try write(term, into: &out, identity: identity)
        }
    }

    static func writeAtom<S: TermSink>(_ name: String, into out: inout S) throws(TermEncodingError) {
        try checkLength(ofAtom: name)
        let utf8 = name.utf8
        if utf8.count < 256 {
            out.put(Tag.smallAtomUTF8); out.put(UInt8(utf8.count))
        } else {
            out.put(Tag.atomUTF8); out.put16(UInt16(utf8.count))
        }
        out.put(bytes: utf8)
    }

    /// Erlang's limit on an atom: 255 characters (a name under 256 bytes is within it).
    @inline(__always)
    static func checkLength(ofAtom name: String) throws(TermEncodingError) {
        guard name.utf8.count < 256 || name.unicodeScalars.count <= 255 else { throw .atomTooLong(name) }
    }
}

/// Encodes into caller-provided scratch memory (a stack allocation for the common small
/// message), spilling into an array only when a term outgrows it: no allocation and no
/// buffer bookkeeping per byte on the send path.
package struct ScratchSink: TermSink {
    // The pointer is valid for the duration of the `withUnsafeTemporaryAllocation` call that
    // made this sink; the sink never escapes it.
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var count = 0
    var spill: [UInt8]? = nil
    /// Under a distribution header (the peer negotiated DFLAG_DIST_HDR_ATOM_CACHE): the
    /// frame's atoms, which its terms name by index (ATOM_CACHE_REF), and no version byte
    /// before the message. Nil: a pass-through frame (`112 131 Control 131 Message`).
    package var refs: AtomRefs? = nil
    /// In a pass-through frame, where the message's version byte is (see ``startMessage()``),
    /// so that a frame encoded before the peer's flags were known can be sent under a
    /// distribution header without it.
    package private(set) var messageAt: Int? = nil

    package init(_ buffer: UnsafeMutableRawBufferPointer) {
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

    @inline(__always) package mutating func put(_ b: UInt8) {
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

    /// Bytes written so far.
    var position: Int { spill?.count ?? count }

    /// An atom: a reference to the frame's atom list if it has room (eight), else its text.
    mutating func atom(_ name: String) throws(TermEncodingError) {
        if refs != nil {
            try TermWriter.checkLength(ofAtom: name)
            if let i = refs!.index(adding: name) {
                put(Tag.atomCacheRef); put(UInt8(i))
                return
            }
        }
        try TermWriter.writeAtom(name, into: &self)
    }

    /// Starts the message after the control message: its version byte in a pass-through
    /// frame (where it is noted), nothing under a distribution header.
    package mutating func startMessage() {
        guard refs == nil else { return }
        messageAt = position
        put(ExternalTermFormat.version)
    }

    /// The bytes written, for the duration of `body`.
    package func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let spill { return try spill.withUnsafeBytes(body) }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}

extension TermWriter {
    /// A pid, as NEW_PID_EXT, without building a term.
    static func writePid<S: TermSink>(_ p: Pid, into out: inout S, identity: WireIdentity) throws(TermEncodingError) {
        out.put(Tag.newPid)
        let (name, creation) = identity.parts(of: p)
        try out.atom(name)
        out.put32(p.id); out.put32(p.serial); out.put32(creation)
    }
}

// The distribution layer's entry points: the generic writer is specialized for the scratch
// sink here, in its own module, so the send path makes no generic calls across modules.
extension ScratchSink {
    /// Writes `term`, without the version byte.
    package mutating func write(_ term: Term, identity: WireIdentity) throws(TermEncodingError) {
        try TermWriter.write(term, into: &self, identity: identity)
    }

    /// SEND's control tuple `{2, '', To}` (erl_dist_protocol), without the version byte, and
    /// without building it as a term: the counterpart of ``TermReader/readSendControl()``.
    package mutating func writeSendControl(to pid: Pid, identity: WireIdentity) throws(TermEncodingError) {
        put(Tag.smallTuple); put(3)
        put(Tag.smallInteger); put(2)
        put(Tag.smallAtomUTF8); put(0)
        try TermWriter.writePid(pid, into: &self, identity: identity)
    }
}
