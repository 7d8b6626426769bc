// libFuzzer entry point for the external term format decoder. A library target, so every
// `swift build` compiles it against ParleyETF; `Fuzz/run` builds it with
// `-sanitize=fuzzer,address` and links it with libFuzzer's `main`, and the distribution tests
// replay the checked-in corpus (Fuzz/corpus) through `checkDecoderInput`.
//
// Every input must either throw a TermDecodingError or decode to a term that encodes and
// decodes again to the same term. Anything else (a trap, a sanitizer report, a round trip
// that differs) is a bug.
import ParleyETF

/// Byte-exact comparison of two decodes: re-encode both. Term equality alone would be fooled
/// by floats (NaN != NaN) and is looser than the bytes for references (equality ignores how
/// many words a reference had on the wire).
private func sameEncoding(_ a: Term, _ b: Term) -> Bool {
    (try? ExternalTermFormat.encode(a)) == (try? ExternalTermFormat.encode(b))
}

/// A small atom table: it bounds the memory that millions of inputs' new atoms (and the
/// node names made of them) take, and makes `atomTableFull` one of the paths fuzzed.
private let smallAtomTable: Void = { AtomTable.limit = 50_000 }()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = smallAtomTable
    if let failure = decoderRoundTripFailure(Array(UnsafeBufferPointer(start: data, count: size))) {
        fatalError(failure)
    }
    return 0
}

/// Decodes `bytes`; if they decode, encodes the term and decodes it again. Returns what went
/// wrong if the second decode fails or gives another term; `nil` if the round trip held or
/// the input was rejected with a typed error (which is fine).
///
/// ```swift
/// decoderRoundTripFailure([131, 97, 42])   // nil: 42 survives the round trip
/// ```
public func decoderRoundTripFailure(_ bytes: [UInt8]) -> String? {
    // A depth and inflate limit small enough that libFuzzer's default RSS limit is never the
    // thing that stops an input.
    let limits = TermLimits(maxDepth: 500, maxInflatedSize: 1 << 20)
    // `131 68`: a distribution frame with its header (the atom cache), as a connection reads
    // it; each of its terms must survive the round trip as a plain term.
    if bytes.count >= 2, bytes[0] == ExternalTermFormat.version, bytes[1] == 68 {
        guard let terms = try? distributionFrame(bytes, limits: limits) else { return nil }
        for t in terms {
            if let failure = roundTripFailure(t) { return "in a frame with a distribution header: \(failure)" }
        }
        return nil
    }
    let first: Term
    do {
        first = try ExternalTermFormat.decode(bytes, limits: limits)
    } catch {
        return nil  // rejected with a typed error: fine
    }
    return roundTripFailure(first)
}

/// Reads a frame after its length as a connection does once both nodes set
/// DFLAG_DIST_HDR_ATOM_CACHE: `131 68`, the header, then terms without version bytes. The
/// fuzzer gives each input a fresh connection cache, so its header must set every entry it
/// uses; the header tests pass one cache through a sequence of frames.
package func distributionFrame(_ bytes: [UInt8], limits: TermLimits, cache: DecodeCache = DecodeCache()) throws(TermDecodingError) -> [Term] {
    try bytes.withUnsafeBytes { raw in
        Result { () throws(TermDecodingError) -> [Term] in
            var r = TermReader(raw, identity: .current, limits: limits)
            r.cache = cache
            guard try r.u8() == ExternalTermFormat.version, try r.u8() == 68 else { throw .badVersion(0) }
            try r.readDistHeader()
            var terms: [Term] = []
            while r.remaining > 0 { terms.append(try r.readUnversioned()) }
            return terms
        }
    }.get()
}

/// Encodes `first` and decodes it again: what went wrong, or nil if it came back the same.
private func roundTripFailure(_ first: Term) -> String? {
    let encoded: [UInt8]
    do {
        encoded = try ExternalTermFormat.encode(first)
    } catch {
        return "decoded \(first) but could not encode it again: \(error)"
    }
    let second: Term
    do {
        second = try ExternalTermFormat.decode(encoded, limits: TermLimits(maxDepth: 500, maxInflatedSize: 1 << 30))
    } catch {
        return "re-encoded \(first) as \(encoded) but could not decode it: \(error)"
    }
    if first != second && !sameEncoding(first, second) {
        return "round trip changed \(first) into \(second)"
    }
    return nil
}
