import CParleyShims
import Parley

#if canImport(Glibc)
import Glibc
#endif

/// Seconds since `start` (a MonotonicClock reading).
func seconds(since start: UInt64) -> Double { Double(MonotonicClock.now - start) / 1e9 }

/// Resident memory of this OS process, from /proc/self/status.
func rssBytes() -> Double {
    guard let f = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if s.hasPrefix("VmRSS:") {
            let digits = s.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0"
            return (Double(digits) ?? 0) * 1024
        }
    }
    return 0
}

/// Gives memory freed by earlier work back to the system, so RSS deltas mean something.
func trimHeap() { parley_malloc_trim() }

/// `s` padded with spaces to `width` characters.
func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

/// Blocks the calling OS thread (for demonstrations of the blocking pool).
func blockFor(milliseconds: Int) {
    #if canImport(Glibc)
    usleep(UInt32(milliseconds * 1000))
    #endif
}
