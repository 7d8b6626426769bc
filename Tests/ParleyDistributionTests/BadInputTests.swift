import Foundation
import ParleyTestSupport
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: A raw client

enum RawError: Error, CustomStringConvertible {
    case socket(Int32)
    case closed
    case timeout

    var description: String {
        switch self {
        case .socket(let e): return "socket error \(e) (\(String(cString: strerror(e))))"
        case .closed: return "the node closed the connection"
        case .timeout: return "nothing arrived in time"
        }
    }
}

/// A TCP client on plain blocking POSIX sockets, for saying to the node what no well-behaved
/// peer would. Receives time out every 100 ms so that every wait has a deadline. One thread
/// uses a client at a time (tests run it through ``offThread(_:)``).
final class RawClient: @unchecked Sendable {
    let fd: Int32
    private var isClosed = false
    private var pending: [UInt8] = []

    init(port: Int, host: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            isClosed = true
            throw RawError.socket(errno)
        }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sendTimeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { throw RawError.socket(errno) }  // deinit closes the socket
    }

    deinit { close() }

    func close() {
        if isClosed { return }
        isClosed = true
        Glibc.close(fd)
    }

    /// This end's port: how the node's log lines name us before the handshake names a node.
    var localPort: Int {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Sends all of `bytes`; false if the node has closed the connection meanwhile.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// A handshake message: 2-byte length, then the bytes.
    func send16(_ body: [UInt8]) { send(Wire.be16(body.count) + body) }
    /// A message after the handshake: 4-byte length, then the bytes.
    func send32(_ body: [UInt8]) { send(Wire.be32(body.count) + body) }

    /// No more bytes from us (the node sees EOF).
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    enum Read { case data([UInt8]), eof, nothing }

    func read() -> Read {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { return .data(Array(buf[..<n])) }
        if n == 0 { return .eof }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return .nothing }
        return .eof  // ECONNRESET: the node closed with our bytes unread
    }

    func readExactly(_ n: Int, within limit: Duration = .seconds(5)) throws -> [UInt8] {
        let deadline = ContinuousClock.now + limit
        while pending.count < n {
            guard ContinuousClock.now < deadline else { throw RawError.timeout }
            switch read() {
            case .data(let d): pending += d
            case .eof: throw RawError.closed
            case .nothing: continue
            }
        }
        defer { pending.removeFirst(n) }
        return Array(pending[..<n])
    }

    /// The next message after the handshake that is not a tick, nor a Parley failure
    /// detector's probe (a REG_SEND to `parley_fd`, which this fake node, like an Erlang
    /// node, has no process for).
    func readMessage(within limit: Duration = .seconds(5)) throws -> [UInt8] {
        let deadline = ContinuousClock.now + limit
        while true {
            let len = try readExactly(4, within: deadline - ContinuousClock.now)
            let n = Int(len[0]) << 24 | Int(len[1]) << 16 | Int(len[2]) << 8 | Int(len[3])
            if n == 0 { continue }
            let m = try readExactly(n, within: deadline - ContinuousClock.now)
            if Self.isProbe(m) { continue }
            return m
        }
    }

    static let probeName: [UInt8] = [119, 9] + Array("parley_fd".utf8)

    static func isProbe(_ m: [UInt8]) -> Bool {
        guard m.count > probeName.count else { return false }
        return (0...(m.count - probeName.count)).contains { i in m[i..<(i + probeName.count)].elementsEqual(probeName) }
    }

    /// Reads and drops whatever arrives (ticks, replies) until the node closes the connection.
    /// Returns how long that took, or nil if it was still open after `limit`.
    func waitForClose(within limit: Duration) -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
            if case .eof = read() { return ContinuousClock.now - start }
        }
        return nil
    }

    /// A Parley node's flags without the failure detector's (this fake node answers no
    /// probes, as an Erlang node does not, so it is not monitored) and without the
    /// distribution header's atom cache (it reads frames as `112 131 ...`; erts, like Parley,
    /// sends the header only to a node that sets the flag).
    static let flags = DistributionFlags.parley.subtracting([.parleyFailureDetector, .distHeaderAtomCache])

    /// The status frames the node sent in the last handshake (`ok`, `alive`, ...).
    private(set) var statuses: [String] = []

    /// The v6 handshake as the initiator, driven by the node's own state machine. `pending`
    /// is the answer to an `alive` status (dist_util's `is_pending`).
    @discardableResult
    func handshake(as name: String, with node: String, cookie: String = Cluster.cookie, pending: Bool = true) throws -> PeerInfo {
        var machine = HandshakeMachine(initiator: name, flags: Self.flags, creation: 1, cookie: cookie, dialling: node)
        var actions = machine.start()
        statuses = []
        while true {
            for action in actions {
                switch action {
                case .send(let frame): send16(frame)
                case .completed(let peer): return peer
                case .failed(let error): throw error
                }
            }
            let len = try readExactly(2)
            let frame = try readExactly(Int(len[0]) << 8 | Int(len[1]))
            if case .awaitStatus = machine.state { statuses.append(String(decoding: frame.dropFirst(), as: UTF8.self)) }
            actions = machine.receive(frame, pending: { pending })
        }
    }
}

/// Bytes of the distribution protocol.
enum Wire {
    static func be16(_ n: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)] }
    static func be32(_ n: Int) -> [UInt8] { be16(n >> 16) + be16(n) }

    /// A message without its length: `112 131 Control [131 Payload]`.
    static func message(_ control: Term, _ payload: Term? = nil) throws -> [UInt8] {
        var out: [UInt8] = [112]
        out += try ExternalTermFormat.encode(control)
        if let payload { out += try ExternalTermFormat.encode(payload) }
        return out
    }

    /// A pid on the fake node `name`.
    static func pid(on name: String, id: UInt32 = 1) -> Pid { Pid(node: Node.named(name), id: id, serial: 0, creation: 1) }

    /// SEND: `{2, '', To}`.
    static func send(to pid: Pid) -> Term { .tuple([.integer(Control.send), .atom(""), .pid(pid)]) }

    /// REG_SEND: `{6, From, '', Name}`.
    static func regSend(from name: String, to registered: String) -> Term {
        .tuple([.integer(Control.regSend), .pid(pid(on: name)), .atom(""), .atom(Atom(registered))])
    }
}

// MARK: The suite

/// "Bad input: truncated frames, unknown tags, huge lengths, deep nesting, atom floods, a
/// handshake that stalls. The connection closes with a log line; the node and its processes
/// keep running." Every test talks to this process's node over a raw socket, checks that the
/// node closed that connection and said why, and then that the node still works: a local
/// process answers, and a well-behaved node (with the same name, where one was given) still
/// connects and delivers.
extension DistributionTests {
@Suite("Distribution bad input", .serialized)
struct BadInputTests {
    static let counter = Atomic<Int>(0)

    static func evilName() -> String { "evil_\(counter.wrappingAdd(1, ordering: .relaxed).oldValue)@127.0.0.1" }

    /// Whether one captured log line contains all of `parts`.
    static func logged(_ parts: String...) -> Bool {
        Cluster.logs.records.withLock { lines in lines.contains { line in parts.allSatisfy { line.contains($0) } } }
    }

    /// Waits (up to 2 s) for a log line containing all of `parts`. A close noticed in
    /// `channelInactive` is logged just after the socket closes, so the line may trail our EOF.
    static func logs(_ parts: String...) async -> Bool {
        await eventually(within: .seconds(2)) {
            Cluster.logs.records.withLock { lines in lines.contains { line in parts.allSatisfy { line.contains($0) } } }
        }
    }

    static func lastLines() -> String { Cluster.logs.records.withLock { $0.suffix(5).joined(separator: "\n") } }

    // MARK: Helpers

    /// Connects, sends `bytes` (framing included) before any handshake, and waits for the node
    /// to close the connection. Returns our port (how the node names us) and how long it took.
    func beforeHandshake(_ bytes: [UInt8], thenShutdown: Bool = false, within limit: Duration = .seconds(5)) async throws -> (port: Int, closedAfter: Duration?) {
        let port = try #require(Distribution.port)
        return try await offThread {
            let c = try RawClient(port: port)
            defer { c.close() }
            c.send(bytes)
            if thenShutdown { c.shutdownWrite() }
            return (c.localPort, c.waitForClose(within: limit))
        }
    }

    /// Completes a handshake as a fresh fake node, sends `message(name)` (framing included),
    /// and waits for the node to close the connection. Returns the fake node's name and how
    /// long the close took (nil: still open after `limit`).
    ///
    /// `limit` stays under the net tick timeout (four tick periods of 1 s in the tests), so a
    /// close seen here is the node's answer to the bytes, not to silence.
    func afterHandshake(within limit: Duration = .seconds(3), _ message: @escaping @Sendable (String) throws -> [UInt8]) async throws -> (name: String, closedAfter: Duration?) {
        let port = try #require(Distribution.port)
        let node = Distribution.nodeName
        let name = Self.evilName()
        let closed = try await offThread { () throws -> Duration? in
            let c = try RawClient(port: port)
            defer { c.close() }
            try c.handshake(as: name, with: node)
            c.send(try message(name))
            return c.waitForClose(within: limit)
        }
        return (name, closed)
    }

    /// The node still works: a local process answers, and a well-behaved peer connects (as
    /// `name` if given: the failed connection left nothing behind that refuses it) and its
    /// REG_SEND arrives.
    func nodeStillWorks(reconnectingAs name: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let answer = try await Parley.Process.run { (me: Parley.Process) async throws -> Term? in
            let echo = me.spawn { p in
                let m = try await p.receive(Term.self)
                if case .tuple(let t) = m, t.count == 2, case .pid(let from) = t[0] { p.send(t[1], to: from) }
            }
            me.send(Term.tuple([.pid(me.pid), .atom("still_here")]), to: echo)
            return try await me.receive(Term.self, after: .seconds(5))
        }
        #expect(answer == .atom("still_here"), "a local process did not answer", sourceLocation: sourceLocation)
        let delivered = try await freshConnectionDelivers(as: name ?? Self.evilName())
        #expect(delivered, "a well-behaved peer could not connect and deliver a message", sourceLocation: sourceLocation)
    }

    /// A well-behaved peer connects as `name` and sends REG_SEND to a registered process.
    func freshConnectionDelivers(as name: String) async throws -> Bool {
        let port = try #require(Distribution.port)
        let node = Distribution.nodeName
        let sink = "badinput_sink_\(Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue)"
        let token: Term = .tuple([.atom("hello_from"), .atom(Atom(name))])
        return try await Parley.Process.run(SpawnOptions(name: sink)) { (me: Parley.Process) async throws -> Bool in
            try await offThread {
                let c = try RawClient(port: port)
                defer { c.close() }
                try c.handshake(as: name, with: node)
                c.send32(try Wire.message(Wire.regSend(from: name, to: sink), token))
                // Read before EOF: the node handles the message before it sees us go.
            }
            return try await me.receive(Term.self, after: .seconds(5)) == token
        }
    }

    // MARK: 1. The handshake

    @Test("Handshake: garbage bytes (an HTTP request) are a malformed send_name: closed with a log line")
    func handshakeGarbage() async throws {
        _ = try await Cluster.node()
        // "GE" reads as a length of 18245: the garbage that follows fills that frame, whose
        // first byte 'T' is not a send_name.
        var junk = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        var rng = SystemRandomNumberGenerator()
        junk += (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let (port, closed) = try await beforeHandshake(junk)
        #expect(closed != nil, "the node kept a connection that sent garbage")
        #expect(await Self.logs(":\(port)", "malformed handshake: expected send_name ('N'), got byte 84"), "\(Self.lastLines())")
        try await nodeStillWorks()
    }

    @Test("Handshake: an unknown first byte ('x') is refused at once")
    func handshakeUnknownFirstByte() async throws {
        _ = try await Cluster.node()
        let (port, closed) = try await beforeHandshake(Wire.be16(5) + Array("xhello".utf8.prefix(5)))
        #expect(closed.map { $0 < .seconds(2) } == true, "closed after \(String(describing: closed))")
        #expect(await Self.logs(":\(port)", "got byte 120"), "\(Self.lastLines())")
        try await nodeStillWorks()
    }

    @Test("Handshake: a send_name truncated by its sender's EOF closes with a log line")
    func handshakeTruncatedThenEOF() async throws {
        _ = try await Cluster.node()
        let name = Self.evilName()
        var sendName: [UInt8] = [UInt8(ascii: "N")]
        put64(&sendName, RawClient.flags.rawValue)
        put32(&sendName, 1)
        put16(&sendName, UInt16(name.utf8.count))
        sendName += name.utf8
        // The length covers the whole message; only half of it comes, then EOF.
        let (port, closed) = try await beforeHandshake(Wire.be16(sendName.count) + sendName.prefix(10), thenShutdown: true)
        #expect(closed.map { $0 < .seconds(2) } == true, "closed after \(String(describing: closed))")
        #expect(await Self.logs(":\(port)", "closed the connection during the handshake"), "\(Self.lastLines())")
        // And a complete frame holding a truncated send_name: refused as malformed.
        let (port2, closed2) = try await beforeHandshake(Wire.be16(10) + sendName.prefix(10))
        #expect(closed2.map { $0 < .seconds(2) } == true, "closed after \(String(describing: closed2))")
        #expect(await Self.logs(":\(port2)", "malformed handshake: frame too short"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Handshake: send_name without '@' in the name, or without the mandatory flags, is refused")
    func handshakeBadSendName() async throws {
        _ = try await Cluster.node()
        func sendName(_ name: String, flags: DistributionFlags) -> [UInt8] {
            var f: [UInt8] = [UInt8(ascii: "N")]
            put64(&f, flags.rawValue)
            put32(&f, 1)
            put16(&f, UInt16(name.utf8.count))
            f += name.utf8
            return Wire.be16(f.count) + f
        }
        let (port, closed) = try await beforeHandshake(sendName("no_at_sign", flags: RawClient.flags))
        #expect(closed != nil)
        #expect(await Self.logs(":\(port)", "bad node name 'no_at_sign'"), "\(Self.lastLines())")
        let name = Self.evilName()
        let (_, closed2) = try await beforeHandshake(sendName(name, flags: [.published]))
        #expect(closed2 != nil)
        #expect(await Self.logs(name, "lacks required distribution flags"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Handshake: a 2-byte length of 65535 with a few bytes, then silence: closed by the handshake timeout")
    func handshakeHugeLengthThenSilence() async throws {
        _ = try await Cluster.node()
        let (port, closed) = try await beforeHandshake(Wire.be16(65535) + Array("Nabc".utf8), within: .seconds(6))
        let after = try #require(closed, "the node kept a stalled handshake open")
        #expect(after < .seconds(5), "closed after \(after)")
        #expect(await Self.logs(":\(port)", "timed out"), "\(Self.lastLines())")
        try await nodeStillWorks()
    }

    @Test("Handshake: a connection that sends nothing is closed within the handshake timeout (3 s in the tests)")
    func handshakeStalls() async throws {
        _ = try await Cluster.node()
        let (port, closed) = try await beforeHandshake([], within: .seconds(6))
        let after = try #require(closed, "the node kept a silent connection open")
        #expect(after > .seconds(2) && after < .seconds(5), "closed after \(after)")
        #expect(await Self.logs("handshake with", ":\(port)", "timed out"), "\(Self.lastLines())")
        try await nodeStillWorks()
    }

    @Test("Handshake: a valid send_name and then silence is closed by the timeout, and that name can connect again")
    func handshakeStallsAfterSendName() async throws {
        _ = try await Cluster.node()
        let name = Self.evilName()
        var f: [UInt8] = [UInt8(ascii: "N")]
        put64(&f, RawClient.flags.rawValue)
        put32(&f, 1)
        put16(&f, UInt16(name.utf8.count))
        f += name.utf8
        let (_, closed) = try await beforeHandshake(Wire.be16(f.count) + f, within: .seconds(6))
        let after = try #require(closed, "the node kept a stalled handshake open")
        #expect(after < .seconds(5), "closed after \(after)")
        #expect(await Self.logs("handshake with \(name) timed out"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Handshake: a challenge reply with a wrong digest (another cookie) is refused: cookie mismatch")
    func handshakeWrongCookie() async throws {
        _ = try await Cluster.node()
        let port = try #require(Distribution.port)
        let node = Distribution.nodeName
        let name = Self.evilName()
        let outcome = try await offThread { () -> (String, Duration?) in
            let c = try RawClient(port: port)
            defer { c.close() }
            do {
                try c.handshake(as: name, with: node, cookie: "not-the-cookie")
                return ("completed", nil)
            } catch {
                return ("\(error)", c.waitForClose(within: .seconds(3)))
            }
        }
        #expect(outcome.0 == "\(RawError.closed)", "the handshake ended with \(outcome.0)")
        #expect(await Self.logs("connection with \(name) refused: cookie mismatch"), "\(Self.lastLines())")
        #expect(Cluster.logs.contains("cookie mismatch"))
        try await nodeStillWorks(reconnectingAs: name)
    }

    // MARK: 2. After the handshake

    @Test("Connected: a message whose pass-through byte is not 112 closes the connection")
    func unknownPassThrough() async throws {
        _ = try await Cluster.node()
        let (name, closed) = try await afterHandshake { name in
            let m = try Wire.message(Wire.send(to: Wire.pid(on: name)), .atom("x"))
            return Wire.be32(m.count) + [66] + m.dropFirst()
        }
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): unknown tag 66 at byte 0"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: a control message with an unknown term tag closes the connection")
    func unknownTermTag() async throws {
        _ = try await Cluster.node()
        let (name, closed) = try await afterHandshake { _ in
            let m: [UInt8] = [112, 131, 104, 2, 97, 2, 200, 0, 0]
            return Wire.be32(m.count) + m
        }
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): unknown tag 200 at byte 6"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: a truncated term inside a correctly sized message closes the connection")
    func truncatedTerm() async throws {
        _ = try await Cluster.node()
        let (name, closed) = try await afterHandshake { name in
            // SEND's control, cut short in the pid's node name; the length counts what is sent.
            let full = try Wire.message(Wire.send(to: Wire.pid(on: name)))
            let m = Array(full.prefix(12))
            return Wire.be32(m.count) + m
        }
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): truncated term at byte"), "\(Self.lastLines())")
        // And a payload list whose stated length is far beyond the message.
        let (name2, closed2) = try await afterHandshake { name in
            let m = try Wire.message(Wire.send(to: Wire.pid(on: name))) + [131, 108, 0x7F, 0xFF, 0xFF, 0xFF, 106]
            return Wire.be32(m.count) + m
        }
        #expect(closed2 != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name2): length 2147483647 at byte", "exceeds the bytes that remain"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: a 4-byte length of 0xFFFFFFF0 (over maxFrameSize) closes the connection at once")
    func hugeLength() async throws {
        _ = try await Cluster.node()
        let (name, closed) = try await afterHandshake { _ in [0xFF, 0xFF, 0xFF, 0xF0, 112, 131, 104] }
        let after = try #require(closed, "the node kept the connection open")
        #expect(after < .seconds(2), "closed after \(after)")
        #expect(await Self.logs("frame of 4294967280 bytes from \(name) exceeds the limit of \(128 << 20)"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: 100,000 nested 1-tuples are refused at the depth limit, without overflowing the stack")
    func deepNesting() async throws {
        _ = try await Cluster.node()
        let live = try #require(Parley.Process.whereis("test_io_sink"))
        let (name, closed) = try await afterHandshake { _ in
            var m = try Wire.message(Wire.send(to: live))
            m.reserveCapacity(m.count + 200_010)
            m.append(131)
            for _ in 0..<100_000 { m += [104, 1] }
            m.append(106)
            return Wire.be32(m.count) + m
        }
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): term nested deeper than 2000"), "\(Self.lastLines())")
        // Lists (in the tail) and maps nest too.
        let (name2, closed2) = try await afterHandshake { _ in
            var m = try Wire.message(Wire.send(to: live))
            m.append(131)
            for i in 0..<100_000 { m += i % 2 == 0 ? [108, 0, 0, 0, 1, 97, 1] : [116, 0, 0, 0, 1, 97, 1] }
            m.append(106)
            return Wire.be32(m.count) + m
        }
        #expect(closed2 != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name2): term nested deeper than 2000"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: terms nested just under the depth limit are accepted, logged, hashed and delivered without exhausting the stack")
    func deepButLegal() async throws {
        _ = try await Cluster.node()
        let port = try #require(Distribution.port)
        let node = Distribution.nodeName
        let name = Self.evilName()
        let sink = "badinput_sink_\(Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue)"
        let depth = 1990
        func deep(_ leaf: [UInt8]) -> [UInt8] { Array(repeating: [104, 1], count: depth).flatMap { $0 } + leaf }
        // A control message of unknown shape (logged with the term), a map with a deep key,
        // and a deep payload for a registered process.
        let deepControl = Wire.be32(1 + 1 + depth * 2 + 1) + [112, 131] + deep([106])
        let deepKey = try Wire.message(Wire.regSend(from: name, to: "nobody_\(sink)")) + [131, 116, 0, 0, 0, 1] + deep([106]) + [97, 1]
        let deepPayload = try Wire.message(Wire.regSend(from: name, to: sink)) + [131] + deep([100, 0, 4] + Array("leaf".utf8))
        let (received, stillOpen) = try await Parley.Process.run(SpawnOptions(name: sink)) { (me: Parley.Process) async throws -> (Term?, Bool) in
            let stillOpen = try await offThread { () throws -> Bool in
                let c = try RawClient(port: port)
                defer { c.close() }
                try c.handshake(as: name, with: node)
                c.send(deepControl)
                c.send32(deepKey)
                c.send32(deepPayload)
                return c.waitForClose(within: .milliseconds(500)) == nil
            }
            return (try await me.receive(Term.self, after: .seconds(5)), stillOpen)
        }
        #expect(stillOpen, "the node closed the connection: \(Self.lastLines())")
        var level = 0
        var t = try #require(received)
        while case .tuple(let items) = t, items.count == 1 {
            level += 1
            t = items[0]
        }
        #expect(level == depth && t == .atom("leaf"))
        // Logged in brief: a few levels, not 1990.
        #expect(await Self.logs("ignored a control message of unknown shape from \(name): {{{{{{...}}}}}}"), "\(Self.lastLines())")
        try await nodeStillWorks()
    }

    @Test("Connected: an atom flood stops at AtomTable.limit; the connection closes and the table stays bounded")
    func atomFlood() async throws {
        _ = try await Cluster.node()
        let live = try #require(Parley.Process.whereis("test_io_sink"))
        let saved = AtomTable.limit
        defer { AtomTable.limit = saved }
        AtomTable.limit = AtomTable.count + 50
        let limit = AtomTable.limit
        let uuid = UUID().uuidString
        let atoms: [Term] = (0..<200).map { .atom(Atom("evil_atom_\(uuid)_\($0)")) }
        let (name, closed) = try await afterHandshake { _ in
            let m = try Wire.message(Wire.send(to: live), .list(atoms))
            return Wire.be32(m.count) + m
        }
        #expect(AtomTable.count <= limit, "the table holds \(AtomTable.count) atoms, over its limit of \(limit)")
        AtomTable.limit = saved
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): atom table full (\(limit) atoms)"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: an atom longer than 255 characters (ATOM_EXT of 65535 Latin-1 bytes) closes the connection")
    func overlongAtom() async throws {
        _ = try await Cluster.node()
        let live = try #require(Parley.Process.whereis("test_io_sink"))
        let (name, closed) = try await afterHandshake { _ in
            var m = try Wire.message(Wire.send(to: live))
            m += [131, 100, 0xFF, 0xFF]
            m += [UInt8](repeating: UInt8(ascii: "a"), count: 65535)
            return Wire.be32(m.count) + m
        }
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): invalid atom at byte"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: compressed terms claiming 4 GiB, nothing, or far more than their bytes can inflate to close the connection")
    func compressedClaims() async throws {
        _ = try await Cluster.node()
        let live = try #require(Parley.Process.whereis("test_io_sink"))
        let zlibJunk: [UInt8] = [0x78, 0x9C, 0x4B, 0x4C, 0x4A, 0x06, 0x00, 0x02, 0x4D, 0x01, 0x27]
        func compressed(claiming size: UInt32) -> @Sendable (String) throws -> [UInt8] {
            { _ in
                var m = try Wire.message(Wire.send(to: live))
                m += [131, 80]
                put32(&m, size)
                m += zlibJunk
                return Wire.be32(m.count) + m
            }
        }
        let (name, closed) = try await afterHandshake(compressed(claiming: 0xFFFF_FFFF))
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): compressed term claims 4294967295 bytes, over the limit"), "\(Self.lastLines())")

        let (name2, closed2) = try await afterHandshake(compressed(claiming: 0))
        #expect(closed2 != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name2): compressed term does not inflate to its stated size"), "\(Self.lastLines())")

        // 200 MB from 11 bytes is past deflate's 1032:1: refused before anything is allocated.
        let (name3, closed3) = try await afterHandshake(compressed(claiming: 200_000_000))
        let after = try #require(closed3, "the node kept the connection open")
        #expect(after < .seconds(2))
        #expect(await Self.logs("undecodable message from \(name3): compressed term does not inflate to its stated size"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    @Test("Connected: bytes after the payload close the connection")
    func trailingBytes() async throws {
        _ = try await Cluster.node()
        let live = try #require(Parley.Process.whereis("test_io_sink"))
        let (name, closed) = try await afterHandshake { _ in
            let m = try Wire.message(Wire.send(to: live), .atom("ok")) + [131, 106]
            return Wire.be32(m.count) + m
        }
        #expect(closed != nil, "the node kept the connection open")
        #expect(await Self.logs("undecodable message from \(name): 2 bytes after the end of the term"), "\(Self.lastLines())")
        try await nodeStillWorks(reconnectingAs: name)
    }

    // MARK: 3. Well-formed messages nobody expects

    @Test("Connected: unknown control messages, sends to dead pids and unknown names are dropped; the connection stays up")
    func unknownButWellFormed() async throws {
        _ = try await Cluster.node()
        let port = try #require(Distribution.port)
        let node = Distribution.nodeName
        let name = Self.evilName()
        let sink = "badinput_sink_\(Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue)"
        let token: Term = .tuple([.atom("after_the_junk"), .atom(Atom(name))])
        let dead = try await Parley.Process.run { (me: Parley.Process) async throws -> Pid in
            let (pid, _) = me.spawnMonitor { _ in }
            _ = try await me.receive(DownMessage.self)
            return pid
        }
        let neverBorn = Pid(node: Node.named(node), id: 0x7FFF_FFF0, serial: 12345, creation: LocalNode.default.wireCreation)
        let oldIncarnation = Pid(node: Node.named(node), id: 1, serial: 0, creation: LocalNode.default.wireCreation &+ 1)
        let thirdNode = Wire.pid(on: "nobody@10.9.8.7")
        let evil = Wire.pid(on: name)
        let junk: [(Term, Term?)] = [
            (.tuple([.integer(99), .atom("x")]), nil),                                      // unknown operation
            (.tuple([.integer(99), .atom("x")]), .atom("with_a_payload")),
            (.tuple([]), nil),                                                                // no operation at all
            (.atom("not_a_tuple"), nil),
            (.tuple([.atom("send"), .atom(""), .pid(dead)]), .atom("x")),                     // operation not an integer
            (.tuple([.integer(Control.send), .atom(""), .atom("not_a_pid")]), .atom("x")),   // SEND of the wrong shape
            (.tuple([.integer(Control.send), .atom(""), .pid(dead)]), nil),                  // SEND without a payload
            (Wire.send(to: dead), .atom("to_the_dead")),
            (Wire.send(to: neverBorn), .atom("to_the_unborn")),
            (Wire.send(to: oldIncarnation), .atom("to_an_old_incarnation")),
            (Wire.send(to: thirdNode), .atom("to_another_node")),
            (.tuple([.integer(Control.sendTT), .atom(""), .pid(dead), .atom("trace_token")]), .atom("x")),
            (Wire.regSend(from: name, to: "rex"), .tuple([.atom("call"), .atom("erlang"), .atom("node"), .list([]), .pid(evil)])),
            (Wire.regSend(from: name, to: "global_name_server"), .tuple([.atom("init_connect"), .integer(6)])),
            (Wire.regSend(from: name, to: "no_such_name_\(sink)"), .atom("to_nobody")),
            (.tuple([.integer(Control.regSend), .pid(evil), .atom(""), .integer(5)]), .atom("x")),  // name not an atom
            (.tuple([.integer(Control.exit), .pid(evil), .pid(dead), .atom("bye")]), nil),
            (.tuple([.integer(Control.exit2), .pid(evil), .pid(neverBorn), .atom("kill")]), nil),
            (.tuple([.integer(Control.unlinkId), .integer(7), .pid(evil), .pid(dead)]), nil),
            (.tuple([.integer(Control.unlinkIdAck), .integer(7), .pid(evil), .pid(dead)]), nil),
            (.tuple([.integer(Control.demonitorP), .pid(evil), .pid(dead), .reference(Reference.make())]), nil),
            (.tuple([.integer(Control.monitorPExit), .pid(thirdNode), .pid(evil), .reference(Reference.make()), .atom("x")]), nil),
            (.tuple([.integer(Control.groupLeader), .pid(evil), .pid(dead)]), nil),
            (.tuple([.integer(Control.link), .atom("x"), .atom("y")]), nil),
            (.tuple([.integer(Control.monitorP), .pid(evil), .integer(3), .reference(Reference.make())]), nil),
        ]
        let messages = try junk.map { try Wire.message($0.0, $0.1) }
        let link = try Wire.message(.tuple([.integer(Control.link), .pid(evil), .pid(dead)]))
        let monitor = try Wire.message(.tuple([.integer(Control.monitorP), .pid(evil), .atom("no_such_name"), .reference(Reference.make())]))
        let valid = try Wire.message(Wire.regSend(from: name, to: sink), token)

        let (arrived, replies, stillOpen) = try await Parley.Process.run(SpawnOptions(name: sink)) {
            (me: Parley.Process) async throws -> (Term?, [Term], Bool) in
            let (replies, stillOpen) = try await offThread { () throws -> ([Term], Bool) in
                let c = try RawClient(port: port)
                defer { c.close() }
                try c.handshake(as: name, with: node)
                for m in messages { c.send32(m) }
                // LINK to a dead process and MONITOR_P of a name nobody has are answered at
                // once, as UNLINK_ID (among the junk) is.
                c.send32(link)
                c.send32(monitor)
                var replies: [Term] = []
                for _ in 0..<3 { replies.append(try ExternalTermFormat.decode(Array(try c.readMessage().dropFirst()))) }
                c.send32(valid)
                return (replies, c.waitForClose(within: .milliseconds(500)) == nil)
            }
            return (try await me.receive(Term.self, after: .seconds(5)), replies, stillOpen)
        }
        #expect(arrived == token, "the REG_SEND after the junk did not arrive")
        #expect(stillOpen, "the node closed the connection: \(Self.lastLines())")
        // EXIT {3, Dead, Evil, noproc}, MONITOR_P_EXIT {21, no_such_name, Evil, Ref, noproc},
        // UNLINK_ID_ACK {36, 7, Dead, Evil}.
        let byOp = Dictionary(replies.compactMap { r -> (Int, [Term])? in
            if case .tuple(let t) = r, case .integer(let op) = t.first { return (op, t) }
            return nil
        }, uniquingKeysWith: { a, _ in a })
        #expect(byOp.keys.sorted() == [Control.exit, Control.monitorPExit, Control.unlinkIdAck], "replies: \(replies)")
        #expect(byOp[Control.exit]?.last == .atom("noproc"), "replies: \(replies)")
        #expect(byOp[Control.monitorPExit]?.last == .atom("noproc"), "replies: \(replies)")
        #expect(byOp[Control.unlinkIdAck]?[1] == .integer(7), "replies: \(replies)")
        #expect(!Self.logged("undecodable message from \(name)"))
        try await nodeStillWorks()
    }

    // MARK: Other connections

    @Test("Bad input on one connection leaves the others alone: a real Erlang node stays connected and answers",
          .enabled(if: Cluster.erlInstalled))
    func otherConnectionsUnaffected() async throws {
        _ = try await Cluster.node()
        let erl = try await ExternalNode.erlang()
        defer { erl.kill() }
        #expect(await Distribution.ping(erl.name))
        let live = try #require(Parley.Process.whereis("test_io_sink"))
        let (name, closed) = try await afterHandshake { _ in
            var m = try Wire.message(Wire.send(to: live))
            m.append(131)
            for _ in 0..<100_000 { m += [104, 1] }
            m.append(106)
            return Wire.be32(m.count) + m
        }
        #expect(closed != nil)
        #expect(await Self.logs("undecodable message from \(name): term nested deeper than 2000"))
        #expect(Distribution.nodes.contains(erl.name))
        #expect(await Distribution.ping(erl.name))
        #expect(try await erl.rpc("erlang", "node", []) == .atom(Atom(erl.name)))
    }
}
}
