import Foundation
import ParleyTestSupport
import Testing

import ParleyDistribution

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let epmdBinary = "/usr/bin/epmd"
private let erlBinary = "/usr/bin/erl"
private let haveEPMD = FileManager.default.isExecutableFile(atPath: epmdBinary)
private let haveErl = FileManager.default.isExecutableFile(atPath: erlBinary)
/// The client's timeout in these tests (the API's default is 5 s). Under the thread
/// sanitizer, with every suite starting at once on two cores, one CI run saw all nine
/// embedded-EPMD tests' first requests go unanswered for more than 5 s at the suite's start
/// (the real-epmd tests, whose requests come after starting an OS process, passed): these
/// tests check EPMD's protocol, not how fast a starved process answers.
private let patience: Duration = .seconds(30)

/// The rules checked here are those of erl_dist_protocol's "EPMD Protocol" section, run
/// against Erlang's own `epmd` (OTP 25) and against ``EmbeddedEPMD``, each on a private port
/// so a system epmd on 4369 is never touched.
@Suite("EPMD")
struct EPMDTests {
    // MARK: The same behaviours against both servers

    @Test("real epmd: ALIVE2_REQ gets ALIVE2_X_RESP; PORT_PLEASE2 finds port, type, version 6; NAMES lists it",
        .enabled(if: haveEPMD))
    func realRegisterLookupNames() async throws {
        let epmd = try await RealEPMD.start()
        defer { epmd.stop() }
        try await checkRegisterLookupNames(epmdPort: epmd.port)
    }

    @Test("embedded: ALIVE2_REQ gets ALIVE2_X_RESP; PORT_PLEASE2 finds port, type, version 6; NAMES lists it")
    func embeddedRegisterLookupNames() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        try await checkRegisterLookupNames(epmdPort: epmd.boundPort)
        await epmd.stop()
    }

    @Test("real epmd: closing the ALIVE2 connection unregisters the name", .enabled(if: haveEPMD))
    func realCloseUnregisters() async throws {
        let epmd = try await RealEPMD.start()
        defer { epmd.stop() }
        try await checkCloseUnregisters(epmdPort: epmd.port)
    }

    @Test("embedded: closing the ALIVE2 connection unregisters the name")
    func embeddedCloseUnregisters() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        try await checkCloseUnregisters(epmdPort: epmd.boundPort)
        #expect(epmd.registeredNames.isEmpty)
        await epmd.stop()
    }

    @Test("real epmd: ALIVE2_REQ for a live name is refused (Result 1 → .nameTaken)", .enabled(if: haveEPMD))
    func realNameTaken() async throws {
        let epmd = try await RealEPMD.start()
        defer { epmd.stop() }
        try await checkNameTaken(epmdPort: epmd.port)
    }

    @Test("embedded: ALIVE2_REQ for a live name is refused (Result 1 → .nameTaken)")
    func embeddedNameTaken() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        try await checkNameTaken(epmdPort: epmd.boundPort)
        await epmd.stop()
    }

    @Test("real epmd: PORT_PLEASE2 for an unknown name (PORT2_RESP Result 1) is nil", .enabled(if: haveEPMD))
    func realUnknownName() async throws {
        let epmd = try await RealEPMD.start()
        defer { epmd.stop() }
        #expect(try await EPMDClient.lookup(name: "nobody", epmdPort: epmd.port, timeout: patience) == nil)
    }

    @Test("embedded: PORT_PLEASE2 for an unknown name (PORT2_RESP Result 1) is nil")
    func embeddedUnknownName() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        #expect(try await EPMDClient.lookup(name: "nobody", epmdPort: epmd.boundPort, timeout: patience) == nil)
        await epmd.stop()
    }

    // MARK: Embedded server against Erlang's own programs

    @Test("embedded: a real erl node registers with it (ERL_EPMD_PORT) and is found by PORT_PLEASE2 and NAMES",
        .enabled(if: haveErl), .timeLimit(.minutes(2)))
    func erlNodeRegistersWithEmbedded() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        let erl = Foundation.Process()
        erl.executableURL = URL(fileURLWithPath: erlBinary)
        erl.arguments = [
            "-sname", "probe", "-setcookie", "x", "-noshell", "-start_epmd", "false",
            "-eval", "timer:sleep(60000)",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["ERL_EPMD_PORT"] = String(epmd.boundPort)
        erl.environment = environment
        erl.standardOutput = FileHandle.nullDevice
        erl.standardError = FileHandle.nullDevice
        try erl.run()
        defer { hardStop(erl) }
        let info = try await poll(for: .seconds(40)) { try await EPMDClient.lookup(name: "probe", epmdPort: epmd.boundPort, timeout: patience) }
        let found = try #require(info)
        #expect(found.name == "probe")
        #expect(found.nodeType == .normal)
        #expect(found.protocol == 0)
        #expect(found.highestVersion == 6)
        #expect(found.port > 0)
        let names = try await EPMDClient.names(epmdPort: epmd.boundPort, timeout: patience)
        #expect(names.contains(EPMDNameEntry(name: "probe", port: found.port)))

        // The node's death closes its ALIVE2 connection, which unregisters it.
        hardStop(erl)
        let gone = try await poll(for: .seconds(20)) {
            try await EPMDClient.lookup(name: "probe", epmdPort: epmd.boundPort, timeout: patience) == nil ? true : nil
        }
        #expect(gone == true)
        await epmd.stop()
    }

    @Test("embedded: `epmd -names` (Erlang's own NAMES_REQ client) prints our registrations", .enabled(if: haveEPMD))
    func epmdNamesCLIReadsEmbedded() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        let a = try await EPMDClient.register(name: "alpha", port: 5555, hidden: false, epmdPort: epmd.boundPort, timeout: patience)
        let b = try await EPMDClient.register(name: "beta", port: 6666, hidden: true, epmdPort: epmd.boundPort, timeout: patience)
        let output = try await runChild([epmdBinary, "-port", String(epmd.boundPort), "-names"]).output
        #expect(output.contains("up and running on port \(epmd.boundPort)"))
        #expect(output.contains("name alpha at port 5555"))
        #expect(output.contains("name beta at port 6666"))
        await a.close()
        await b.close()
        await epmd.stop()
    }

    // MARK: Embedded server: creation, bad input, lifecycle

    @Test("real epmd: creation is non-zero and differs on every re-registration of a name", .enabled(if: haveEPMD))
    func realCreationChanges() async throws {
        let epmd = try await RealEPMD.start()
        defer { epmd.stop() }
        try await checkCreationChanges(epmdPort: epmd.port)
    }

    @Test("embedded: creation is non-zero and differs on every re-registration of a name")
    func embeddedCreationChanges() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        try await checkCreationChanges(epmdPort: epmd.boundPort)
        await epmd.stop()
    }

    @Test("embedded: garbage, a 65535 length, a bad ALIVE2, an unknown request and a stalled client are closed; lookups still work")
    func embeddedSurvivesBadInput() async throws {
        // 10 s for a request: under the thread sanitizer's crowded start, a good client once
        // took over 1 s between its connect and its ALIVE2_REQ, and on a machine loaded by two
        // busy loops beside the whole suite, over 5 s; either was closed as stalled.
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1", requestTimeout: .seconds(10))
        let port = epmd.boundPort
        let keep = try await EPMDClient.register(name: "steady", port: 4242, hidden: false, epmdPort: port, timeout: patience)

        // Garbage: "hello..." reads as a length of 26725, over the 1 KiB request limit.
        #expect(await rawSession(port: port, send: Array("hello world\r\n".utf8)).closed)
        // A length of 65535 with no body: refused at once, no 64 KiB buffered.
        #expect(await rawSession(port: port, send: [0xFF, 0xFF]).closed)
        // The same, and the client hangs up first.
        _ = await rawSession(port: port, send: [0xFF, 0xFF], wait: .zero)
        // A zero length.
        #expect(await rawSession(port: port, send: [0, 0]).closed)
        // ALIVE2_REQ whose body is cut short.
        #expect(await rawSession(port: port, send: [0, 3, 120, 1, 2]).closed)
        // Unknown request type 'A'.
        let unknown = await rawSession(port: port, send: [0, 1, 0x41])
        #expect(unknown.closed && unknown.reply.isEmpty)
        // Stalled: connects and sends nothing; half a request then nothing (both at once: each
        // is closed after the 10 s request timeout).
        async let silent = rawSession(port: port, send: [], wait: .seconds(30))
        async let half = rawSession(port: port, send: [0, 10, 122], wait: .seconds(30))
        #expect(await silent.closed)
        #expect(await half.closed)

        let info = try await EPMDClient.lookup(name: "steady", epmdPort: port, timeout: patience)
        #expect(info?.port == 4242)
        #expect(keep.isActive)
        await keep.close()
        await epmd.stop()
    }

    @Test("embedded: stop() closes the ALIVE2 connections, so every name is unregistered")
    func embeddedStopUnregisters() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        let registration = try await EPMDClient.register(name: "s", port: 1234, hidden: false, epmdPort: epmd.boundPort, timeout: patience)
        await epmd.stop()
        let closed = try await poll(for: .seconds(20)) { registration.isActive ? nil : true }
        #expect(closed == true)
        await #expect(throws: EPMDError.self) { try await EPMDClient.names(epmdPort: epmd.boundPort, timeout: patience) }
    }

    @Test("ensureRunning: nil when an EPMD already listens on the port, a new server when none does")
    func ensureRunning() async throws {
        let existing = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        #expect(try await EmbeddedEPMD.ensureRunning(port: existing.boundPort, host: "127.0.0.1") == nil)
        // A second server cannot bind the same port (what ensureRunning's race fallback relies on).
        await #expect(throws: (any Error).self) {
            let second = try await EmbeddedEPMD.start(port: existing.boundPort, host: "127.0.0.1")
            await second.stop()
        }
        await existing.stop()

        let port = freePort()
        let started = try #require(try await EmbeddedEPMD.ensureRunning(port: port, host: "127.0.0.1"))
        #expect(started.boundPort == port)
        #expect(try await EPMDClient.names(epmdPort: port, timeout: patience).isEmpty)
        await started.stop()
    }

    /// Erlang's `epmd` listens on every interface unless `ERL_EPMD_ADDRESS` names others;
    /// a node's embedded EPMD does the same unless `embeddedEPMDAddress` names one.
    @Test("embeddedEPMDAddress 127.0.0.1: the node's embedded EPMD listens on loopback only, and the node registers with it")
    func embeddedEPMDOnLoopbackOnly() async throws {
        let port = freePort()
        let node = try LocalNode(name: "epmd_loopback_\(port)@127.0.0.1")
        var config = Distribution.Configuration(name: node.name, cookie: "epmd-loopback")
        config.epmdPort = port
        config.embeddedEPMDAddress = "127.0.0.1"
        try await node.startDistribution(config)
        let listening = listeningAddresses(port: port)
        let names = try? await EPMDClient.names(epmdPort: port, timeout: patience)
        await node.stopDistribution()
        #expect(listening == ["127.0.0.1"], "listening on \(listening)")
        #expect(names?.contains { $0.name == "epmd_loopback_\(port)" } == true)
    }

    // MARK: Client errors

    @Test("client: no EPMD on the port is .unreachable")
    func clientUnreachable() async throws {
        let port = freePort()
        await #expect {
            _ = try await EPMDClient.lookup(name: "x", epmdPort: port, timeout: patience)
        } throws: { error in
            guard case .unreachable(_, let p, let why) = error as? EPMDError else { return false }
            return p == port && why.contains("refused")
        }
    }

    @Test("client: an EPMD that never answers is .timeout, not a hang")
    func clientTimeout() async throws {
        // A listening socket nobody accepts on: the kernel completes the connect, no reply ever comes.
        let (fd, port) = listeningSocket()
        defer { close(fd) }
        let started = ContinuousClock.now
        await #expect(throws: EPMDError.timeout) {
            _ = try await EPMDClient.register(
                name: "x", port: 1, hidden: false, epmdPort: port, timeout: .milliseconds(300))
        }
        // A hang never ends; 15 s leaves room for the thread sanitizer's start, when every
        // suite begins at once on two cores (7 s was seen there).
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test("EPMDError descriptions name the problem")
    func errorDescriptions() {
        #expect(EPMDError.nameTaken("foo").description.contains("'foo'"))
        #expect(EPMDError.unreachable(host: "h", port: 4369, underlying: "refused").description.contains("h:4369"))
        #expect(EPMDError.timeout.description.contains("in time"))
    }

    @Test("client: ALIVE2_REQ names are 1 to 255 bytes (Nlen); others fail before any I/O")
    func clientRejectsInvalidNames() async {
        await #expect(throws: EPMDError.invalidName("")) {
            _ = try await EPMDClient.register(name: "", port: 1, hidden: false, epmdPort: 1, timeout: patience)
        }
        let long = String(repeating: "n", count: 256)
        await #expect(throws: EPMDError.invalidName(long)) {
            _ = try await EPMDClient.register(name: long, port: 1, hidden: false, epmdPort: 1, timeout: patience)
        }
    }

    @Test("client: dropping the last reference to a registration unregisters it")
    func droppedRegistrationUnregisters() async throws {
        let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
        do {
            let registration = try await EPMDClient.register(name: "dropped", port: 1, hidden: false, epmdPort: epmd.boundPort, timeout: patience)
            #expect(registration.isActive)
        }
        let gone = try await poll(for: .seconds(20)) { epmd.registeredNames.isEmpty ? true : nil }
        #expect(gone == true)
        await epmd.stop()
    }

    // MARK: Shared checks

    private func checkRegisterLookupNames(epmdPort: Int) async throws {
        let normal = try await EPMDClient.register(name: "parleya", port: 45001, hidden: false, epmdPort: epmdPort, timeout: patience)
        let hidden = try await EPMDClient.register(name: "parleyb", port: 45002, hidden: true, epmdPort: epmdPort, timeout: patience)
        // Real epmd may give two different names the same creation: it only has to differ
        // between incarnations of one name (checkCreationChanges).
        #expect(normal.creation != 0 && hidden.creation != 0)

        let a = try #require(try await EPMDClient.lookup(name: "parleya", epmdPort: epmdPort, timeout: patience))
        #expect(a == EPMDNodeInfo(name: "parleya", port: 45001, nodeType: .normal, highestVersion: 6, lowestVersion: 6))
        // The host part of a full node name is not sent.
        let b = try #require(try await EPMDClient.lookup(name: "parleyb@somewhere", epmdPort: epmdPort, timeout: patience))
        #expect(b.port == 45002 && b.nodeType == .hidden)

        let names = try await EPMDClient.names(epmdPort: epmdPort, timeout: patience)
        #expect(Set(names) == [EPMDNameEntry(name: "parleya", port: 45001), EPMDNameEntry(name: "parleyb", port: 45002)])
        await normal.close()
        await hidden.close()
    }

    private func checkCloseUnregisters(epmdPort: Int) async throws {
        let registration = try await EPMDClient.register(name: "transient", port: 45003, hidden: false, epmdPort: epmdPort, timeout: patience)
        #expect(try await EPMDClient.lookup(name: "transient", epmdPort: epmdPort, timeout: patience) != nil)
        await registration.close()
        #expect(!registration.isActive)
        let gone = try await poll(for: .seconds(20)) {
            try await EPMDClient.lookup(name: "transient", epmdPort: epmdPort, timeout: patience) == nil ? true : nil
        }
        #expect(gone == true)
        // Closing twice is harmless.
        await registration.close()
    }

    private func checkCreationChanges(epmdPort: Int) async throws {
        var creations: [UInt32] = []
        for _ in 0..<3 {
            let registration = try await EPMDClient.register(name: "again", port: 7000, hidden: false, epmdPort: epmdPort, timeout: patience)
            creations.append(registration.creation)
            await registration.close()
            // Wait for EPMD to see the close, or the next ALIVE2_REQ is refused as taken.
            _ = try await poll(for: .seconds(20)) {
                try await EPMDClient.lookup(name: "again", epmdPort: epmdPort, timeout: patience) == nil ? true : nil
            }
        }
        #expect(!creations.contains(0))
        #expect(Set(creations).count == 3)
    }

    private func checkNameTaken(epmdPort: Int) async throws {
        let first = try await EPMDClient.register(name: "taken", port: 45004, hidden: false, epmdPort: epmdPort, timeout: patience)
        await #expect(throws: EPMDError.nameTaken("taken")) {
            _ = try await EPMDClient.register(name: "taken", port: 45005, hidden: false, epmdPort: epmdPort, timeout: patience)
        }
        // The refusal leaves the first registration in place.
        #expect(try await EPMDClient.lookup(name: "taken", epmdPort: epmdPort, timeout: patience)?.port == 45004)
        await first.close()
    }
}

// MARK: Helpers

/// Erlang's `epmd` as a child process on a private port.
private struct RealEPMD {
    let process: Foundation.Process
    let port: Int

    static func start() async throws -> RealEPMD {
        let port = freePort()
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: epmdBinary)
        process.arguments = ["-port", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let epmd = RealEPMD(process: process, port: port)
        let up = try? await poll(for: .seconds(20)) { (try? await EPMDClient.names(epmdPort: port, timeout: patience)) != nil ? true : nil }
        if up != true {
            epmd.stop()
            throw EPMDError.unreachable(host: "127.0.0.1", port: port, underlying: "epmd did not start")
        }
        return epmd
    }

    func stop() { hardStop(process) }
}

/// Kills `process` with SIGKILL and reaps it (``killAndReap(_:)``).
private func hardStop(_ process: Foundation.Process) { killAndReap(process) }

/// Calls `body` until it returns non-nil or `limit` passes (then nil).
/// Calls `body` until it gives a value or `limit` passes. A request that timed out counts as
/// "not yet": at the crowded start of a CI run (every suite at once on two cores) one EPMD
/// round trip has taken more than the client's 5 s, and the rule under test is about what
/// the server answers, not how fast.
private func poll<T>(for limit: Duration, _ body: () async throws -> T?) async throws -> T? {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        do {
            if let value = try await body() { return value }
        } catch EPMDError.timeout {
            continue
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    return nil
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
    return address
}

private func tcpSocket() -> Int32 {
    #if canImport(Glibc)
    socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    socket(AF_INET, SOCK_STREAM, 0)
    #endif
}

/// A bound, listening socket on a kernel-chosen loopback port that never accepts.
private func listeningSocket() -> (Int32, Int) {
    let fd = tcpSocket()
    var address = loopback(port: 0)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    _ = listen(fd, 8)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A loopback port nothing listens on (right now).
private func freePort() -> Int {
    let (fd, port) = listeningSocket()
    close(fd)
    return port
}

/// Connects to 127.0.0.1:`port`, sends `send`, and reads until the server closes or `wait`
/// passes, on a thread of its own (blocking calls stay off the concurrency pool).
/// `closed` is whether the server closed the connection within `wait`.
private func rawSession(port: Int, send bytes: [UInt8], wait: Duration = .seconds(3)) async -> (reply: [UInt8], closed: Bool) {
    await withCheckedContinuation { continuation in
        Thread {
            let fd = tcpSocket()
            defer { close(fd) }
            var address = loopback(port: port)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { return continuation.resume(returning: ([], false)) }
            if !bytes.isEmpty { _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
            guard wait > .zero else { return continuation.resume(returning: ([], false)) }
            var timeout = timeval(tv_sec: Int(wait.components.seconds), tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var reply: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 512)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    reply += chunk[0..<n]
                } else {
                    // 0: orderly close; ECONNRESET: closed with our bytes unread; EAGAIN: timed out.
                    let closed = n == 0 || errno == ECONNRESET
                    return continuation.resume(returning: (reply, closed))
                }
            }
        }.start()
    }
}

/// The IPv4 addresses with a socket listening on TCP `port`, from /proc/net/tcp (Linux; an
/// empty list elsewhere).
private func listeningAddresses(port: Int) -> [String] {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return [] }
    var out: [String] = []
    for line in table.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard fields.count > 3, fields[3] == "0A" else { continue }  // 0A: LISTEN
        let local = fields[1].split(separator: ":")
        guard local.count == 2, Int(local[1], radix: 16) == port, let raw = UInt32(local[0], radix: 16) else { continue }
        // The address is in the kernel's byte order (little-endian here): 0100007F is 127.0.0.1.
        out.append([raw & 0xff, raw >> 8 & 0xff, raw >> 16 & 0xff, raw >> 24].map { "\($0)" }.joined(separator: "."))
    }
    return out
}
