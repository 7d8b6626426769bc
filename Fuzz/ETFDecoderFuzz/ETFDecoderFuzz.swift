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
    let first: Term
    do {
        first = try ExternalTermFormat.decode(bytes, limits: limits)
    } catch {
        return nil  // rejected with a typed error: fine
    }
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
