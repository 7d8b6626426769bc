#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client for the tour and the tests: one request per connection
/// (`Connection: close`), to a loopback port, with a receive timeout. Not for general use.
package enum LoopbackHTTP {
    package struct Reply: Sendable {
        package let status: Int
        package let headers: [(String, String)]
        package let body: String
        package func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    package enum Failure: Error, Sendable { case connect(Int32), malformed(String) }

    /// Sends one request and reads the whole reply (blocking; call it off the schedulers), or,
    /// with `until`, as much of it as makes `until` true of the raw bytes read (for a stream).
    package static func request(port: Int, method: String = "GET", path: String, headers: [(String, String)] = [],
                                body: String = "", timeoutSeconds: Int = 10, until: ((String) -> Bool)? = nil) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.connect(errno) }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw Failure.connect(errno) }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        if !body.isEmpty || method == "POST" { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure.connect(errno) }
            sent += n
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += chunk[..<n]
            // A stream (server-sent events): stop once what arrived is enough.
            if let until, until(String(decoding: data, as: UTF8.self)) { break }
            // A server that keeps the connection open despite `Connection: close`: stop at
            // the end of a body whose length it gave.
            if let end = find([13, 10, 13, 10], in: data[...]), let length = contentLength(data[..<end]),
               data.count >= end + 4 + length { break }
        }
        return try parse(data)
    }

    static func parse(_ data: [UInt8]) throws -> Reply {
        guard let split = find([13, 10, 13, 10], in: data[...]) else {
            throw Failure.malformed(String(decoding: data.prefix(200), as: UTF8.self))
        }
        // "\r\n" is one Character in Swift, so the head splits on it.
        let head = String(decoding: data[..<split], as: UTF8.self)
        let lines = head.split(separator: "\r\n").map(String.init)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure.malformed(lines.first ?? "") }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
        var body = data[(split + 4)...]
        if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased() == "chunked" }) {
            body = dechunk(body)[...]
        }
        return Reply(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    static func contentLength(_ head: ArraySlice<UInt8>) -> Int? {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" { return Int(parts[1].drop { $0 == " " }) }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in data: ArraySlice<UInt8>) -> Int? {
        guard data.count >= needle.count else { return nil }
        var i = data.startIndex
        while i + needle.count <= data.endIndex {
            if data[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func dechunk(_ data: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var rest = data
        while let lineEnd = find([13, 10], in: rest) {
            guard let size = Int(String(decoding: rest[..<lineEnd], as: UTF8.self), radix: 16), size > 0 else { break }
            let start = lineEnd + 2
            out += rest[start..<min(rest.endIndex, start + size)]
            rest = rest[min(rest.endIndex, start + size + 2)...]
        }
        return out
    }
}
