/// The distribution header's atom cache (erl_ext_dist, "Distribution Header"): when both
/// nodes set DFLAG_DIST_HDR_ATOM_CACHE, every frame starts `131 68`, lists the atoms its
/// terms use, and the terms name them by index (ATOM_CACHE_REF, tag 82). Each listed atom is
/// either a new entry of the connection's 2,048-entry cache (its index and text) or an entry
/// the receiver already holds (its index alone), so a node name or `'$gen_call'` crosses the
/// wire, and is looked up in the receiver's atom table, once per cache entry rather than
/// once per message. The sender decides new or held in the order frames go on the wire,
/// which is the order the receiver applies them in.
///
/// ```swift
/// var refs = AtomRefs()
/// refs.index(adding: "node@host")   // 0: the frame's terms write `82 0` for it
/// ```
package struct AtomRefs: Sendable {
    /// The most atoms one frame lists here; its other atoms are written as text.
    package static let capacity = 8
    /// The entries of the connection's cache (erts' `ERTS_ATOM_CACHE_SIZE`).
    package static let cacheSize = 2048

    package private(set) var count = 0
    // Eight names inline, so that a frame's list allocates nothing.
    private var n0 = "", n1 = "", n2 = "", n3 = "", n4 = "", n5 = "", n6 = "", n7 = ""
    /// Each name's cache index, computed as it is added (outside the connection's lock).
    package private(set) var cacheIndex = SIMD8<UInt16>()

    package init() {}

    package subscript(i: Int) -> String {
        switch i {
        case 0: n0
        case 1: n1
        case 2: n2
        case 3: n3
        case 4: n4
        case 5: n5
        case 6: n6
        default: n7
        }
    }

    /// The index of `name` in this frame's list, added if it is not there yet; nil when the
    /// list is full or another atom of the frame has its cache index (the atom is then
    /// written as text). One atom per cache index per frame, as erts's `insert_acache_map`
    /// keeps it: the receiver applies a header's entries in order, so a new entry listed
    /// before a held one at the same index would make the held one read as the new atom.
    package mutating func index(adding name: String) -> Int? {
        for i in 0..<count where self[i] == name { return i }
        guard count < Self.capacity else { return nil }
        let c = Self.cacheIndex(of: name)
        for i in 0..<count where cacheIndex[i] == c { return nil }
        switch count {
        case 0: n0 = name
        case 1: n1 = name
        case 2: n2 = name
        case 3: n3 = name
        case 4: n4 = name
        case 5: n5 = name
        case 6: n6 = name
        default: n7 = name
        }
        cacheIndex[count] = c
        count += 1
        return count - 1
    }

    /// Where `name` lives in a connection's cache: FNV-1a of its UTF-8, modulo the size.
    /// Any mapping works (the receiver stores each entry where the header says); a stable
    /// one lets a hot atom keep its entry.
    package static func cacheIndex(of name: String) -> UInt16 {
        var h: UInt32 = 2_166_136_261
        for b in name.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return UInt16(truncatingIfNeeded: h) & UInt16(cacheSize - 1)
    }
}

/// The sending side's copy of what the peer's cache holds, kept under the connection's lock
/// as frames are queued in wire order.
package struct AtomCacheOut: Sendable {
    private var slots: [String?] = []

    package init() {}

    /// What a frame's header will hold: which references are new entries, whether a new
    /// text is over 255 bytes (LongAtoms: two-byte lengths), and the header's size.
    package struct Plan: Sendable {
        package let isNew: UInt8
        package let long: Bool
        package let size: Int
    }

    /// The header for a frame whose terms use `refs`, not yet written.
    package func plan(_ refs: AtomRefs) -> Plan {
        let n = refs.count
        guard n > 0 else { return Plan(isNew: 0, long: false, size: 3) }
        var isNew: UInt8 = 0
        var long = false
        var texts = 0
        for i in 0..<n where slots.isEmpty || slots[Int(refs.cacheIndex[i])] != refs[i] {
            isNew |= 1 << i
            let length = refs[i].utf8.count
            if length > 255 { long = true }
            texts += length
        }
        let newCount = isNew.nonzeroBitCount
        return Plan(isNew: isNew, long: long, size: 3 + (n / 2 + 1) + n + newCount * (long ? 2 : 1) + texts)
    }

    /// Writes the planned header, `131 68 N Flags Refs`, through `put` (called with its
    /// pieces in order), and records the new entries as held by the peer.
    package mutating func write(_ refs: AtomRefs, _ plan: Plan, _ put: (UnsafeRawBufferPointer) -> Void) {
        let n = refs.count
        var head: (UInt8, UInt8, UInt8) = (131, 68, UInt8(n))
        withUnsafeBytes(of: &head) { put($0) }
        guard n > 0 else { return }
        if slots.isEmpty { slots = [String?](repeating: nil, count: AtomRefs.cacheSize) }
        // Flags: a half byte per reference, low half first (NewCacheEntryFlag, then the
        // segment: the index's bits above the low 8), then the LongAtoms half byte.
        var flags = SIMD16<UInt8>()
        for i in 0..<n {
            let nib = (plan.isNew & (1 << i) != 0 ? 8 : 0) | UInt8(refs.cacheIndex[i] >> 8)
            flags[i / 2] |= nib << UInt8((i & 1) * 4)
        }
        if plan.long { flags[n / 2] |= 1 << UInt8((n & 1) * 4) }
        withUnsafeBytes(of: &flags) { put(UnsafeRawBufferPointer(rebasing: $0[0..<(n / 2 + 1)])) }
        for i in 0..<n {
            let c = refs.cacheIndex[i]
            var low = UInt8(truncatingIfNeeded: c)
            withUnsafeBytes(of: &low) { put($0) }
            guard plan.isNew & (1 << i) != 0 else { continue }
            var name = refs[i]
            slots[Int(c)] = name
            let length = name.utf8.count
            if plan.long {
                var l = UInt16(length).bigEndian
                withUnsafeBytes(of: &l) { put($0) }
            } else {
                var l = UInt8(length)
                withUnsafeBytes(of: &l) { put($0) }
            }
            name.withUTF8 { put(UnsafeRawBufferPointer($0)) }
        }
    }

    /// The header as bytes (tests).
    package mutating func header(for refs: AtomRefs) -> [UInt8] {
        let p = plan(refs)
        var out: [UInt8] = []
        write(refs, p) { out.append(contentsOf: $0) }
        return out
    }
}

extension DecodeCache {
    /// The atoms the current frame's header listed, for its ATOM_CACHE_REFs.
    func frameAtom(_ i: Int) -> Atom? { i < frameAtoms.count ? frameAtoms[i] : nil }
}

extension TermReader {
    /// After a frame's `131 68`: reads the distribution header's atom cache references,
    /// storing new entries in the connection's cache and listing the frame's atoms for the
    /// ATOM_CACHE_REFs that follow (erl_ext_dist, "Distribution Header").
    /// - Throws: ``TermDecodingError`` for a truncated header, an index past the cache, a
    ///   reference to an entry never set, or an atom that is not valid UTF-8.
    package mutating func readDistHeader() throws(TermDecodingError) {
        guard let cache else { throw .unknownTag(68, at: pos) }
        cache.frameAtoms.removeAll(keepingCapacity: true)
        let n = Int(try u8())
        guard n > 0 else { return }
        let flagBytes = n / 2 + 1
        try need(flagBytes)
        let flagsAt = pos
        pos += flagBytes
        let long = raw[flagsAt + n / 2] >> UInt8((n & 1) * 4) & 1 == 1
        for i in 0..<n {
            let at = pos
            let nib = raw[flagsAt + i / 2] >> UInt8((i & 1) * 4) & 0xF
            let index = Int(nib & 7) << 8 | Int(try u8())
            guard index < AtomRefs.cacheSize else { throw .invalid("atom cache index \(index)", at: at) }
            if nib & 8 != 0 {
                let length = long ? Int(try u16()) : Int(try u8())
                let atom = try atomText(length: length, utf8: true)
                cache.setDistAtom(index, atom)
                cache.frameAtoms.append(atom)
            } else {
                guard let atom = cache.distAtom(index) else { throw .invalid("atom cache entry \(index) was never set", at: at) }
                cache.frameAtoms.append(atom)
            }
        }
    }

    /// NEW_FUN_EXT (tag at `at`, `size` read, `pos` after it) rewritten with every atom as
    /// text: `Arity Uniq Index NumFree` as they are, then the module, OldIndex, OldUniq, the
    /// creator's pid and the free variables, decoded (references resolved) and encoded again.
    mutating func funWithAtomTexts(at: Int, size: Int) throws(TermDecodingError) -> [UInt8] {
        let end = at + 1 + size
        try need(25)
        var out: [UInt8] = [Tag.newFun, 0, 0, 0, 0]
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[pos..<pos + 25]))
        let free = Int(raw[pos + 21]) << 24 | Int(raw[pos + 22]) << 16 | Int(raw[pos + 23]) << 8 | Int(raw[pos + 24])
        pos += 25
        try enter()
        defer { depth -= 1 }
        var parts: [Term] = [.atom(try readAtom())]
        for _ in 0..<3 { parts.append(try read()) }
        for _ in 0..<(try count(free, minSize: 1, at: at)) { parts.append(try read()) }
        guard pos == end else { throw .invalid("fun of size \(size) ends at \(pos - at - 1)", at: at) }
        do {
            for p in parts { try TermWriter.write(p, into: &out, identity: identity) }
        } catch {
            throw .invalid("fun that cannot be encoded again: \(error)", at: at)
        }
        let n = UInt32(out.count - 1)
        out[1] = UInt8(n >> 24); out[2] = UInt8(truncatingIfNeeded: n >> 16)
        out[3] = UInt8(truncatingIfNeeded: n >> 8); out[4] = UInt8(truncatingIfNeeded: n)
        return out
    }

    /// A frame without a distribution header: no ATOM_CACHE_REF in it is valid.
    package mutating func forgetFrameAtoms() {
        if let cache, !cache.frameAtoms.isEmpty { cache.frameAtoms.removeAll(keepingCapacity: true) }
    }

    /// An ATOM_CACHE_REF's atom (after its tag).
    mutating func cachedAtom(at: Int) throws(TermDecodingError) -> Atom {
        let i = Int(try u8())
        guard let a = cache?.frameAtom(i) else { throw .unknownTag(Tag.atomCacheRef, at: at) }
        return a
    }
}
