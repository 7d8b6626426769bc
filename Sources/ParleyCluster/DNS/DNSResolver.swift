import CParleyResolv
import Foundation
import ParleyRuntime

/// An SRV record's fields.
public struct SRVRecord: Sendable, Hashable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    /// The target host, without the trailing dot.
    public var target: String
    public init(priority: UInt16, weight: UInt16, port: UInt16, target: String) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
    }
}

/// The DNS lookups the DNS strategies make. ``system`` asks the system's stub resolver
/// (`res_query`, so `/etc/resolv.conf` rules: Kubernetes' cluster DNS in a pod); tests and
/// unusual setups give their own functions, as libcluster's `resolver` option does.
///
/// ```swift
/// let stub = DNSResolver(a: { _ in ["10.0.0.5", "10.0.0.6"] }, aaaa: { _ in [] }, srv: { _ in [] })
/// ```
public struct DNSResolver: Sendable {
    /// The IPv4 addresses of a name, as text.
    public var a: @Sendable (String) async throws -> [String]
    /// The IPv6 addresses of a name, as text.
    public var aaaa: @Sendable (String) async throws -> [String]
    /// The SRV records of a name.
    public var srv: @Sendable (String) async throws -> [SRVRecord]

    public init(a: @escaping @Sendable (String) async throws -> [String],
                aaaa: @escaping @Sendable (String) async throws -> [String],
                srv: @escaping @Sendable (String) async throws -> [SRVRecord]) {
        self.a = a
        self.aaaa = aaaa
        self.srv = srv
    }

    /// The system's resolver. A name that does not exist, or has no records of the type,
    /// gives an empty list; a resolver that cannot be reached throws ``DNSError``.
    public static let system = DNSResolver(
        a: { name in try await DNSMessage.query(name, type: 1).compactMap { if case .a(let ip) = $0 { return ip }; return nil } },
        aaaa: { name in try await DNSMessage.query(name, type: 28).compactMap { if case .aaaa(let ip) = $0 { return ip }; return nil } },
        srv: { name in try await DNSMessage.query(name, type: 33).compactMap { if case .srv(let r) = $0 { return r }; return nil } })
}

/// Why a DNS lookup failed (as opposed to finding nothing).
public enum DNSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The resolver did not answer or answered SERVFAIL (h_errno TRY_AGAIN or NO_RECOVERY).
    case unavailable(name: String, code: Int32)
    /// The answer could not be read.
    case malformedAnswer(name: String)

    public var description: String {
        switch self {
        case .unavailable(let n, let c): return "DNS lookup of \(n) failed (h_errno \(c))"
        case .malformedAnswer(let n): return "DNS answer for \(n) could not be read"
        }
    }
}

/// A DNS answer message (RFC 1035 §4), read as far as the strategies need: A, AAAA and SRV
/// records of the answer section.
enum DNSMessage {
    enum Record: Equatable {
        case a(String)
        case aaaa(String)
        case srv(SRVRecord)
    }

    static func query(_ name: String, type: Int32) async throws -> [Record] {
        try await withCheckedThrowingContinuation { (k: CheckedContinuation<[Record], any Error>) in
            Scheduler.shared.blocking.submit {
                var buffer = [UInt8](repeating: 0, count: 65_536)
                let n = parley_res_query(name, type, &buffer, Int32(buffer.count))
                if n < 0 {
                    let code = parley_h_errno()
                    // HOST_NOT_FOUND (1) and NO_DATA (4): the name has no such records.
                    if code == 1 || code == 4 { return k.resume(returning: []) }
                    return k.resume(throwing: DNSError.unavailable(name: name, code: code))
                }
                guard let records = parse(Array(buffer.prefix(Int(n)))) else {
                    return k.resume(throwing: DNSError.malformedAnswer(name: name))
                }
                k.resume(returning: records)
            }
        }
    }

    /// The answer section's A, AAAA and SRV records; nil if the message is malformed.
    static func parse(_ m: [UInt8]) -> [Record]? {
        guard m.count >= 12 else { return nil }
        func u16(_ i: Int) -> Int? { i + 1 < m.count ? Int(m[i]) << 8 | Int(m[i + 1]) : nil }
        guard let qd = u16(4), let an = u16(6) else { return nil }
        var i = 12
        for _ in 0..<qd {
            guard let end = skipName(m, i) else { return nil }
            i = end + 4
        }
        var out: [Record] = []
        for _ in 0..<an {
            guard let end = skipName(m, i), let type = u16(end), let length = u16(end + 8) else { return nil }
            let data = end + 10
            guard data + length <= m.count else { return nil }
            switch type {
            case 1 where length == 4:
                out.append(.a(m[data..<data + 4].map(String.init).joined(separator: ".")))
            case 28 where length == 16:
                out.append(.aaaa(ipv6(Array(m[data..<data + 16]))))
            case 33 where length >= 7:
                guard let p = u16(data), let w = u16(data + 2), let port = u16(data + 4), let target = readName(m, data + 6) else { return nil }
                out.append(.srv(SRVRecord(priority: UInt16(p), weight: UInt16(w), port: UInt16(port), target: target)))
            default:
                break
            }
            i = data + length
        }
        return out
    }

    /// Where the name at `i` ends (after its last label or its pointer).
    static func skipName(_ m: [UInt8], _ start: Int) -> Int? {
        var i = start
        while i < m.count {
            let len = Int(m[i])
            if len == 0 { return i + 1 }
            if len & 0xC0 == 0xC0 { return i + 2 <= m.count ? i + 2 : nil }
            i += 1 + len
        }
        return nil
    }

    /// The name at `i`, following compression pointers (at most 64 of them).
    static func readName(_ m: [UInt8], _ start: Int) -> String? {
        var labels: [String] = []
        var i = start, jumps = 0
        while i < m.count {
            let len = Int(m[i])
            if len == 0 { return labels.joined(separator: ".") }
            if len & 0xC0 == 0xC0 {
                guard i + 1 < m.count, jumps < 64 else { return nil }
                i = (len & 0x3F) << 8 | Int(m[i + 1])
                jumps += 1
                continue
            }
            guard i + 1 + len <= m.count else { return nil }
            labels.append(String(decoding: m[(i + 1)..<(i + 1 + len)], as: UTF8.self))
            i += 1 + len
        }
        return nil
    }

    static func ipv6(_ b: [UInt8]) -> String {
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: b) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
