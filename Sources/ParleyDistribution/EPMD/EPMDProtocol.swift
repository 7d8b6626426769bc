import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an EPMD request failed.
///
/// ```swift
/// do {
///     _ = try await EPMDClient.register(name: "worker", port: 9100, hidden: false)
/// } catch .nameTaken(let name) {
///     print("\(name) is already running on this host")
/// } catch {
///     print(error)   // e.g. "EPMD at 127.0.0.1:4369 is unreachable: connection refused"
/// }
/// ```
public enum EPMDError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No EPMD answered at `host`:`port` (connection refused, no route, name resolution, reset).
    case unreachable(host: String, port: Int, underlying: String)
    /// EPMD refused the registration: a live node already holds this name on that host.
    case nameTaken(String)
    /// The name cannot be registered: it is empty or longer than 255 bytes.
    case invalidName(String)
    /// EPMD answered something this client cannot parse.
    case malformedReply(String)
    /// EPMD did not answer within the timeout.
    case timeout

    public var description: String {
        switch self {
        case .unreachable(let host, let port, let underlying):
            "EPMD at \(host):\(port) is unreachable: \(underlying) (is epmd or a Parley EmbeddedEPMD running?)"
        case .nameTaken(let name):
            "EPMD refused the name '\(name)': a node with that name is already registered on this host"
        case .invalidName(let name):
            "'\(name)' is not a valid node name for EPMD: it must have 1 to 255 bytes"
        case .malformedReply(let what):
            "EPMD sent a malformed reply: \(what)"
        case .timeout:
            "EPMD did not answer in time"
        }
    }
}

/// A node's kind as EPMD records it: normal nodes (77, `M`) connect to the whole cluster,
/// hidden ones (72, `H`, e.g. `erl -hidden`, remote shells, C nodes) only where asked.
///
/// ```swift
/// if info.nodeType == .hidden { print("a hidden node") }
/// ```
public enum EPMDNodeType: Sendable, Hashable {
    case normal
    case hidden
    /// Any other byte (pre-R6 nodes used 110 and 104).
    case other(UInt8)

    /// The byte on the wire.
    ///
    /// ```swift
    /// EPMDNodeType.hidden.rawValue   // 72
    /// ```
    public var rawValue: UInt8 {
        switch self {
        case .normal: 77
        case .hidden: 72
        case .other(let byte): byte
        }
    }

    /// The node type for a byte on the wire.
    ///
    /// ```swift
    /// EPMDNodeType(rawValue: 77)   // .normal
    /// ```
    public init(rawValue: UInt8) {
        switch rawValue {
        case 77: self = .normal
        case 72: self = .hidden
        default: self = .other(rawValue)
        }
    }
}

/// What EPMD knows of a registered node: the `PORT2_RESP` to a `PORT_PLEASE2_REQ`.
///
/// ```swift
/// if let info = try await EPMDClient.lookup(name: "rabbit", host: "10.0.0.7") {
///     print(info.port, info.highestVersion)   // 25672 6
/// }
/// ```
public struct EPMDNodeInfo: Sendable, Hashable {
    /// The short name (the part of `name@host` before the `@`).
    public var name: String
    /// The TCP port the node accepts distribution connections on.
    public var port: UInt16
    /// Normal or hidden.
    public var nodeType: EPMDNodeType
    /// The transport: 0 is TCP over IPv4.
    public var `protocol`: UInt8
    /// The highest distribution protocol version the node speaks (6 since OTP 23).
    public var highestVersion: UInt16
    /// The lowest distribution protocol version the node speaks.
    public var lowestVersion: UInt16
    /// Opaque extra bytes the node registered (usually empty).
    public var extra: [UInt8]

    /// A record of a node; ``EPMDClient/lookup(name:host:epmdPort:timeout:group:)`` makes these.
    ///
    /// ```swift
    /// let info = EPMDNodeInfo(name: "a", port: 9100, nodeType: .normal)   // versions 6...6, TCP/IPv4
    /// ```
    public init(
        name: String, port: UInt16, nodeType: EPMDNodeType, protocol: UInt8 = 0,
        highestVersion: UInt16 = 6, lowestVersion: UInt16 = 6, extra: [UInt8] = []
    ) {
        self.name = name
        self.port = port
        self.nodeType = nodeType
        self.protocol = `protocol`
        self.highestVersion = highestVersion
        self.lowestVersion = lowestVersion
        self.extra = extra
    }
}

/// One line of EPMD's `NAMES_REQ` answer: `name foo at port 42311`.
///
/// ```swift
/// for entry in try await EPMDClient.names() { print(entry.name, entry.port) }
/// ```
public struct EPMDNameEntry: Sendable, Hashable {
    /// The node's short name.
    public var name: String
    /// Its distribution port.
    public var port: UInt16

    /// An entry; ``EPMDClient/names(host:epmdPort:timeout:group:)`` makes these.
    ///
    /// ```swift
    /// let entry = EPMDNameEntry(name: "a", port: 9100)
    /// ```
    public init(name: String, port: UInt16) {
        self.name = name
        self.port = port
    }
}

/// The wire format of the EPMD protocol (erl_dist_protocol, "EPMD Protocol"), shared by
/// ``EPMDClient`` and ``EmbeddedEPMD``. Every request is `Length(2, big-endian) Request`.
enum EPMDWire {
    static let alive2Request: UInt8 = 120  // 'x'
    static let alive2Response: UInt8 = 121  // 'y', creation in 2 bytes (pre OTP 23)
    static let alive2ExtendedResponse: UInt8 = 118  // 'v', creation in 4 bytes
    static let portPlease2Request: UInt8 = 122  // 'z'
    static let port2Response: UInt8 = 119  // 'w'
    static let namesRequest: UInt8 = 110  // 'n'

    /// Real epmd reads requests into a 1 KiB buffer; a node name is at most 255 bytes.
    static let maxRequestLength = 1024
    static let maxNameLength = 255

    /// The EPMD port: `ERL_EPMD_PORT` if set to a valid port, as Erlang does, else 4369.
    static var defaultPort: Int {
        if let raw = getenv("ERL_EPMD_PORT"), let port = Int(String(cString: raw)), (1...65535).contains(port) {
            return port
        }
        return 4369
    }

    /// `Length(2) body` for a request whose body `write` appends.
    static func request(_ write: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var body = ByteBuffer()
        write(&body)
        var framed = ByteBuffer()
        framed.writeInteger(UInt16(body.readableBytes))
        framed.writeImmutableBuffer(body)
        return framed
    }

    /// The node part of `PortNo NodeType Protocol Highest Lowest Nlen Name Elen Extra`,
    /// common to `ALIVE2_REQ` and `PORT2_RESP`.
    static func writeNode(_ info: EPMDNodeInfo, to buffer: inout ByteBuffer) {
        let name = Array(info.name.utf8)
        buffer.writeInteger(info.port)
        buffer.writeInteger(info.nodeType.rawValue)
        buffer.writeInteger(info.protocol)
        buffer.writeInteger(info.highestVersion)
        buffer.writeInteger(info.lowestVersion)
        buffer.writeInteger(UInt16(name.count))
        buffer.writeBytes(name)
        buffer.writeInteger(UInt16(info.extra.count))
        buffer.writeBytes(info.extra)
    }

    /// Reads what ``writeNode(_:to:)`` writes; nil if the bytes are short or inconsistent.
    static func readNode(from buffer: inout ByteBuffer) -> EPMDNodeInfo? {
        guard let port = buffer.readInteger(as: UInt16.self),
            let type = buffer.readInteger(as: UInt8.self),
            let proto = buffer.readInteger(as: UInt8.self),
            let highest = buffer.readInteger(as: UInt16.self),
            let lowest = buffer.readInteger(as: UInt16.self),
            let nameLength = buffer.readInteger(as: UInt16.self),
            nameLength > 0, nameLength <= maxNameLength,
            let name = buffer.readBytes(length: Int(nameLength)),
            let extraLength = buffer.readInteger(as: UInt16.self),
            let extra = buffer.readBytes(length: Int(extraLength))
        else { return nil }
        return EPMDNodeInfo(
            name: String(decoding: name, as: UTF8.self), port: port, nodeType: EPMDNodeType(rawValue: type),
            protocol: proto, highestVersion: highest, lowestVersion: lowest, extra: extra)
    }
}
