/// Capability flags of the distribution protocol (erts/doc/guides/erl_dist_protocol.md,
/// lib/kernel/include/dist.hrl). The connection uses the intersection of both sides' flags.
public struct DistributionFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let published = Self(rawValue: 0x1)
    public static let atomCache = Self(rawValue: 0x2)
    public static let extendedReferences = Self(rawValue: 0x4)
    public static let distMonitor = Self(rawValue: 0x8)
    public static let funTags = Self(rawValue: 0x10)
    public static let distMonitorName = Self(rawValue: 0x20)
    public static let hiddenAtomCache = Self(rawValue: 0x40)
    public static let newFunTags = Self(rawValue: 0x80)
    public static let extendedPidsPorts = Self(rawValue: 0x100)
    public static let exportPtrTag = Self(rawValue: 0x200)
    public static let bitBinaries = Self(rawValue: 0x400)
    public static let newFloats = Self(rawValue: 0x800)
    public static let unicodeIO = Self(rawValue: 0x1000)
    public static let distHeaderAtomCache = Self(rawValue: 0x2000)
    public static let smallAtomTags = Self(rawValue: 0x4000)
    public static let utf8Atoms = Self(rawValue: 0x10000)
    public static let mapTag = Self(rawValue: 0x20000)
    public static let bigCreation = Self(rawValue: 0x40000)
    public static let sendSender = Self(rawValue: 0x80000)
    public static let bigSeqTraceLabels = Self(rawValue: 0x100000)
    public static let exitPayload = Self(rawValue: 0x400000)
    public static let fragments = Self(rawValue: 0x800000)
    public static let handshake23 = Self(rawValue: 0x1000000)
    public static let unlinkId = Self(rawValue: 0x2000000)
    public static let mandatory25Digest = Self(rawValue: 0x4000000)
    public static let spawn = Self(rawValue: 1 << 32)
    public static let nameMe = Self(rawValue: 1 << 33)
    public static let v4NC = Self(rawValue: 1 << 34)
    public static let alias = Self(rawValue: 1 << 35)

    /// Parley's own: this node answers the failure detector's probes, so the peer monitors
    /// it from the moment the connection is up rather than from its first answer (a node
    /// stopped right after connecting would otherwise be left to the net tick). A bit OTP
    /// does not define; OTP's dist_util keeps only the flags both sides set
    /// (`adjust_flags/2` is a band), so Erlang nodes never see it.
    public static let parleyFailureDetector = Self(rawValue: 1 << 62)

    /// What OTP 25 refuses to connect without (dist.hrl's DFLAG_DIST_MANDATORY_25).
    public static let mandatory25: Self = [
        .extendedReferences, .funTags, .newFunTags, .extendedPidsPorts, .exportPtrTag, .bitBinaries,
        .newFloats, .utf8Atoms, .mapTag, .bigCreation, .handshake23,
    ]
    /// What OTP 26 adds to the mandatory set (UNLINK_ID, V4_NC), and OTP 27 (the digest flag).
    public static let mandatory27: Self = mandatory25.union([.unlinkId, .v4NC, .mandatory25Digest])

    /// What a Parley node advertises: the mandatory sets of OTP 25 to 27, monitors (gen_server
    /// calls monitor the callee), small atom tags, sequential-trace labels of any term (a
    /// call's trace context travels as a map label), and the distribution header's atom
    /// cache (frames name their atoms by cache index, as Erlang nodes do between
    /// themselves); no fragments or spawn requests.
    public static let parley: Self = mandatory27.union([.distMonitor, .distMonitorName, .smallAtomTags, .bigSeqTraceLabels,
                                                        .distHeaderAtomCache, .parleyFailureDetector])

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// Why a handshake failed. The connection is closed and this is logged.
public enum HandshakeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The other node's digest did not match: its cookie differs from ours.
    case cookieMismatch(peer: String)
    /// The other side refused (`nok`, `not_allowed`, or `alive` answered false).
    case refused(peer: String, status: String)
    /// The peer lacks flags this node requires.
    case missingFlags(peer: String, missing: DistributionFlags)
    /// A handshake message of the wrong shape or in the wrong order.
    case malformed(String)
    /// The peer named itself differently from the node we dialled.
    case unexpectedName(expected: String, got: String)
    /// The handshake did not finish in time.
    case timeout(peer: String)
    /// Another connection with the peer won: a simultaneous connect settled, or the peer
    /// said its old connection to us still lives (`alive` answered `false`). Nothing is
    /// lost: the connection that won carries the traffic.
    case superseded(peer: String)

    public var description: String {
        switch self {
        case .cookieMismatch(let p): return "connection with \(p) refused: cookie mismatch (its challenge reply did not match our cookie)"
        case .refused(let p, let s): return "connection to \(p) refused by the peer: \(s)"
        case .missingFlags(let p, let m): return "connection with \(p) refused: it lacks required distribution flags \(m)"
        case .malformed(let what): return "malformed handshake: \(what)"
        case .unexpectedName(let e, let g): return "dialled \(e) but the peer is \(g)"
        case .timeout(let p): return "handshake with \(p) timed out"
        case .superseded(let p): return "another connection with \(p) won (simultaneous connect)"
        }
    }
}

/// What the handshake learnt about the peer.
public struct PeerInfo: Sendable, Hashable {
    public let name: String
    public let flags: DistributionFlags
    public let creation: UInt32
    /// Whether the peer is a hidden node (it did not advertise PUBLISHED).
    public var isHidden: Bool { !flags.contains(.published) }
}

/// The distribution handshake (version 6, OTP 23+) as a state machine that returns actions:
/// frames to send, and the outcome. No I/O here; the connection handler drives it with the
/// frames it reads (2-byte length framing, already stripped).
///
/// The digest is `MD5(Cookie ++ integer_to_list(Challenge))` (dist_util.erl's gen_digest).
struct HandshakeMachine {
    enum Action: Equatable {
        case send([UInt8])
        case completed(PeerInfo)
        case failed(HandshakeError)
    }

    /// How the acceptor answers a `send_name` (dist_util's status values).
    enum Status: String {
        case ok, okSimultaneous = "ok_simultaneous", nok, notAllowed = "not_allowed", alive
    }

    enum State {
        case initiatorStart
        case awaitStatus
        case awaitChallenge
        case awaitAck(peer: PeerInfo, ourChallenge: UInt32)
        case acceptorStart
        /// We answered `alive` (we are up with this node) and wait for `true` (its dial is
        /// pending: our connection is stale) or `false`.
        case awaitAliveReply(tag: UInt8, name: String, flags: DistributionFlags)
        case awaitComplement(name: String, flags: DistributionFlags, ourChallenge: UInt32)
        case awaitReply(peer: PeerInfo, ourChallenge: UInt32)
        case done
        case failed
    }

    let ourName: String
    let ourFlags: DistributionFlags
    let creation: UInt32
    let cookie: [UInt8]
    /// The node the initiator dialled (nil for an acceptor).
    let expectedPeer: String?
    var state: State
    var makeChallenge: () -> UInt32 = { UInt32.random(in: 1...UInt32.max) }

    init(initiator ourName: String, flags: DistributionFlags, creation: UInt32, cookie: String, dialling peer: String) {
        self.ourName = ourName
        self.ourFlags = flags
        self.creation = creation
        self.cookie = Array(cookie.utf8)
        self.expectedPeer = peer
        self.state = .initiatorStart
    }

    init(acceptor ourName: String, flags: DistributionFlags, creation: UInt32, cookie: String) {
        self.ourName = ourName
        self.ourFlags = flags
        self.creation = creation
        self.cookie = Array(cookie.utf8)
        self.expectedPeer = nil
        self.state = .acceptorStart
    }

    static func digest(cookie: [UInt8], challenge: UInt32) -> [UInt8] {
        MD5.hash(cookie + Array(String(challenge).utf8))
    }

    /// The initiator's first frame: `send_name` ('N', flags, creation, name). Never the old
    /// 'n' form: OTP 25.0 to 25.2 reject it (erlang/otp#6595).
    mutating func start() -> [Action] {
        guard case .initiatorStart = state else { return [] }
        state = .awaitStatus
        var f: [UInt8] = [UInt8(ascii: "N")]
        put64(&f, ourFlags.rawValue)
        put32(&f, creation)
        put16(&f, UInt16(ourName.utf8.count))
        f += ourName.utf8
        return [.send(f)]
    }

    /// Feeds one frame. `status` decides how an acceptor answers the peer's name (for
    /// simultaneous connects and duplicate connections); `pending` is how an initiator
    /// answers the peer's `alive` (dist_util's `is_pending`: our dial still owns our
    /// connection to the peer, which is not up).
    mutating func receive(_ frame: [UInt8], status: (String) -> Status = { _ in .ok }, pending: () -> Bool = { true }) -> [Action] {
        var r = FrameReader(frame)
        do throws(HandshakeError) {
            switch state {
            case .awaitStatus:
                guard try r.byte() == UInt8(ascii: "s") else { throw .malformed("expected a status ('s') frame") }
                let s = String(decoding: r.rest(), as: UTF8.self)
                switch s {
                case "ok", "ok_simultaneous":
                    // Our dial may have lost its connection meanwhile (the peer's own attempt
                    // took it over or came up): going on would only replace that one.
                    guard pending() else { throw .superseded(peer: expectedPeer ?? "?") }
                    state = .awaitChallenge
                    return []
                case "alive":
                    // The peer is up with us. If our dial still owns our (connecting)
                    // connection, the one the peer sees is stale: `true`, go on and replace
                    // it. Otherwise a simultaneous connect already settled: `false`, and this
                    // attempt ends (dist_util's recv_status).
                    guard pending() else {
                        state = .failed
                        return [.send(Array("sfalse".utf8)), .failed(.superseded(peer: expectedPeer ?? "?"))]
                    }
                    state = .awaitChallenge
                    return [.send(Array("strue".utf8))]
                default:
                    if s.hasPrefix("named:") { throw .malformed("dynamic node names are not supported") }
                    throw .refused(peer: expectedPeer ?? "?", status: s)
                }
            case .awaitChallenge:
                guard try r.byte() == UInt8(ascii: "N") else { throw .malformed("expected a v6 challenge ('N')") }
                let flags = DistributionFlags(rawValue: try r.u64())
                let challenge = try r.u32()
                let peerCreation = try r.u32()
                let n = Int(try r.u16())
                let name = String(decoding: try r.bytes(n), as: UTF8.self)
                // Trailing bytes after the name are allowed and ignored.
                if let expected = expectedPeer, expected != name { throw .unexpectedName(expected: expected, got: name) }
                try checkFlags(flags, peer: name)
                guard pending() else { throw .superseded(peer: name) }
                let ours = makeChallenge()
                state = .awaitAck(peer: PeerInfo(name: name, flags: flags, creation: peerCreation), ourChallenge: ours)
                var f: [UInt8] = [UInt8(ascii: "r")]
                put32(&f, ours)
                f += Self.digest(cookie: cookie, challenge: challenge)
                return [.send(f)]
            case .awaitAck(let peer, let ours):
                guard try r.byte() == UInt8(ascii: "a") else { throw .malformed("expected a challenge ack ('a')") }
                let digest = try r.bytes(16)
                guard digest == Self.digest(cookie: cookie, challenge: ours) else { throw .cookieMismatch(peer: peer.name) }
                state = .done
                return [.completed(peer)]
            case .acceptorStart:
                let tag = try r.byte()
                let flags: DistributionFlags
                let name: String
                if tag == UInt8(ascii: "N") {
                    flags = DistributionFlags(rawValue: try r.u64())
                    _ = try r.u32()  // the peer's creation; its challenge frame is ours to read
                    let n = Int(try r.u16())
                    name = String(decoding: try r.bytes(n), as: UTF8.self)
                } else if tag == UInt8(ascii: "n") {
                    // OTP 23/24 nodes started without epmd may still send the v5 form.
                    _ = try r.u16()
                    flags = DistributionFlags(rawValue: UInt64(try r.u32()))
                    name = String(decoding: r.rest(), as: UTF8.self)
                } else {
                    throw .malformed("expected send_name ('N'), got byte \(tag)")
                }
                guard name.contains("@"), !name.isEmpty else { throw .malformed("bad node name '\(name)'") }
                let answer = status(name)
                var out: [Action] = [.send(Array(("s" + answer.rawValue).utf8))]
                switch answer {
                case .ok, .okSimultaneous:
                    return try challenge(out, tag: tag, name: name, flags: flags)
                case .alive:
                    state = .awaitAliveReply(tag: tag, name: name, flags: flags)
                    return out
                case .nok, .notAllowed:
                    state = .failed
                    out.append(.failed(.refused(peer: name, status: answer.rawValue)))
                    return out
                }
            case .awaitAliveReply(let tag, let name, let flags):
                guard try r.byte() == UInt8(ascii: "s") else { throw .malformed("expected a status reply ('s') to alive") }
                switch String(decoding: r.rest(), as: UTF8.self) {
                case "true": return try challenge([], tag: tag, name: name, flags: flags)
                case "false": throw .superseded(peer: name)
                case let other: throw .malformed("expected true or false in reply to alive, got '\(other)'")
                }
            case .awaitComplement(let name, let low, let ours):
                guard try r.byte() == UInt8(ascii: "c") else { throw .malformed("expected a complement ('c')") }
                let high = UInt64(try r.u32())
                let peerCreation = try r.u32()
                let flags = DistributionFlags(rawValue: high << 32 | low.rawValue)
                try checkFlags(flags, peer: name)
                state = .awaitReply(peer: PeerInfo(name: name, flags: flags, creation: peerCreation), ourChallenge: ours)
                return []
            case .awaitReply(let peer, let ours):
                guard try r.byte() == UInt8(ascii: "r") else { throw .malformed("expected a challenge reply ('r')") }
                let theirs = try r.u32()
                let digest = try r.bytes(16)
                guard digest == Self.digest(cookie: cookie, challenge: ours) else { throw .cookieMismatch(peer: peer.name) }
                state = .done
                var f: [UInt8] = [UInt8(ascii: "a")]
                f += Self.digest(cookie: cookie, challenge: theirs)
                return [.send(f), .completed(peer)]
            case .initiatorStart, .done, .failed:
                throw .malformed("unexpected frame after the handshake ended")
            }
        } catch {
            state = .failed
            return [.failed(error)]
        }
    }

    /// The acceptor's challenge (`send_challenge`) after an accepting status, appended to
    /// `out`; the v5 `n` form then waits for the complement.
    private mutating func challenge(_ out: [Action], tag: UInt8, name: String, flags: DistributionFlags) throws(HandshakeError) -> [Action] {
        var out = out
        if tag == UInt8(ascii: "N") { try checkFlags(flags, peer: name) }
        let ours = makeChallenge()
        var f: [UInt8] = [UInt8(ascii: "N")]
        put64(&f, ourFlags.rawValue)
        put32(&f, ours)
        put32(&f, creation)
        put16(&f, UInt16(ourName.utf8.count))
        f += ourName.utf8
        out.append(.send(f))
        if tag == UInt8(ascii: "n") && !flags.contains(.handshake23) {
            throw .missingFlags(peer: name, missing: .handshake23)
        }
        if tag == UInt8(ascii: "n") {
            state = .awaitComplement(name: name, flags: flags, ourChallenge: ours)
        } else {
            state = .awaitReply(peer: PeerInfo(name: name, flags: flags, creation: 0), ourChallenge: ours)
        }
        return out
    }

    func checkFlags(_ flags: DistributionFlags, peer: String) throws(HandshakeError) {
        let missing = DistributionFlags.mandatory25.subtracting(flags)
        if !missing.isEmpty { throw .missingFlags(peer: peer, missing: missing) }
    }
}

struct FrameReader {
    let bytes: [UInt8]
    var pos = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    mutating func byte() throws(HandshakeError) -> UInt8 {
        guard pos < bytes.count else { throw .malformed("frame too short") }
        defer { pos += 1 }
        return bytes[pos]
    }
    mutating func u16() throws(HandshakeError) -> UInt16 { UInt16(try byte()) << 8 | UInt16(try byte()) }
    mutating func u32() throws(HandshakeError) -> UInt32 { UInt32(try u16()) << 16 | UInt32(try u16()) }
    mutating func u64() throws(HandshakeError) -> UInt64 { UInt64(try u32()) << 32 | UInt64(try u32()) }
    mutating func bytes(_ n: Int) throws(HandshakeError) -> [UInt8] {
        guard n <= bytes.count - pos else { throw .malformed("frame too short") }
        defer { pos += n }
        return Array(bytes[pos..<pos + n])
    }
    mutating func rest() -> [UInt8] {
        defer { pos = bytes.count }
        return Array(bytes[pos...])
    }
}

func put16(_ a: inout [UInt8], _ v: UInt16) { a.append(UInt8(v >> 8)); a.append(UInt8(truncatingIfNeeded: v)) }
func put32(_ a: inout [UInt8], _ v: UInt32) { put16(&a, UInt16(v >> 16)); put16(&a, UInt16(truncatingIfNeeded: v)) }
func put64(_ a: inout [UInt8], _ v: UInt64) { put32(&a, UInt32(v >> 32)); put32(&a, UInt32(truncatingIfNeeded: v)) }
