import ParleyRuntime
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An EPMD server in-process, on SwiftNIO, so a cluster of Parley nodes needs no Erlang
/// install. It speaks the same protocol as Erlang's `epmd`: real Erlang and Elixir nodes
/// register with it and look names up in it, and `epmd -names` lists its registrations.
///
/// It serves `ALIVE2_REQ` (a name stays registered while its connection is open),
/// `PORT_PLEASE2_REQ` and `NAMES_REQ`. A malformed, oversized or unknown request closes
/// its connection with a log line (label `parley.epmd`), and a connection that has not
/// registered is closed after `requestTimeout`, so no client can wedge the server.
///
/// The server runs until ``stop()`` or until the last reference to it goes away: keep it
/// for as long as the nodes using it live.
///
/// ```swift
/// let epmd = try await EmbeddedEPMD.start(port: 4369)
/// let registration = try await EPMDClient.register(name: "a", port: 9100, hidden: false)
/// // ... run the node ...
/// await registration.close()
/// await epmd.stop()
/// ```
public final class EmbeddedEPMD: Sendable {
    /// The port the server listens on (the one asked for, or the kernel's pick for port 0).
    public let boundPort: Int
    private let serverChannel: any NIOCore.Channel
    private let registry: EPMDRegistry

    private init(serverChannel: any NIOCore.Channel, registry: EPMDRegistry) {
        self.serverChannel = serverChannel
        self.registry = registry
        self.boundPort = serverChannel.localAddress?.port ?? 0
    }

    /// Starts an EPMD server listening on `host`:`port`.
    ///
    /// `host` defaults to every IPv4 interface, as Erlang's `epmd` listens; pass
    /// `"127.0.0.1"` to serve this machine only. Port 0 picks a free port (see ``boundPort``).
    ///
    /// ```swift
    /// let epmd = try await EmbeddedEPMD.start(port: 0, host: "127.0.0.1")
    /// print("EPMD on \(epmd.boundPort)")
    /// ```
    /// - Throws: NIO's `IOError` if the port cannot be bound (e.g. another EPMD holds it).
    public static func start(
        port: Int = 4369, host: String = "0.0.0.0", requestTimeout: Duration = .seconds(10),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> EmbeddedEPMD {
        let registry = EPMDRegistry()
        let timeout = TimeAmount(requestTimeout)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 128)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(EPMDRequestDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        EPMDServerHandler(registry: registry, requestTimeout: timeout))
                }
            }
            .bind(host: host, port: port).get()
        let epmd = EmbeddedEPMD(serverChannel: channel, registry: registry)
        EPMDLog.logger.info("embedded EPMD listening on \(host):\(epmd.boundPort)")
        return epmd
    }

    /// Starts an ``EmbeddedEPMD`` on `port` unless something already listens there (Erlang's
    /// `epmd`, or another node's embedded one), in which case the node should use that one.
    /// This is what `erl` does on start: it runs `epmd -daemon`, which exits if one is running.
    ///
    /// ```swift
    /// let ownEPMD = try await EmbeddedEPMD.ensureRunning()   // nil: an EPMD was already there
    /// let registration = try await EPMDClient.register(name: "a", port: 9100, hidden: false)
    /// ```
    /// - Parameter port: the EPMD port; nil means ``EPMDClient/defaultPort`` (`ERL_EPMD_PORT` or 4369).
    /// - Returns: the server this call started, which the caller owns and stops, or nil.
    public static func ensureRunning(
        port: Int? = nil, host: String = "0.0.0.0",
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> EmbeddedEPMD? {
        let port = port ?? EPMDWire.defaultPort
        let probe = host == "0.0.0.0" ? "127.0.0.1" : host
        if await EPMDClient.isListening(host: probe, port: port, timeout: .seconds(2), group: group) { return nil }
        do {
            return try await start(port: port, host: host, group: group)
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            return nil  // lost a race with another node starting one: use theirs
        }
    }

    /// The names registered now, newest first (what `NAMES_REQ` answers).
    ///
    /// ```swift
    /// print(epmd.registeredNames.map(\.name))   // ["b", "a"]
    /// ```
    public var registeredNames: [EPMDNameEntry] { registry.names() }

    /// Stops listening and closes every connection, which unregisters every node. Idempotent.
    ///
    /// ```swift
    /// await epmd.stop()
    /// ```
    public func stop() async {
        try? await serverChannel.close()
        for connection in registry.stop() {
            try? await connection.close()
        }
    }

    deinit {
        serverChannel.close(promise: nil)
        for connection in registry.stop() { connection.close(promise: nil) }
    }
}

enum EPMDLog {
    static let logger = Logger(label: "parley.epmd")
}

/// The names registered with one ``EmbeddedEPMD`` and the connections open to it.
final class EPMDRegistry: Sendable {
    private struct Node {
        var info: EPMDNodeInfo
        var owner: ObjectIdentifier
        var serial: UInt64
    }
    private struct State {
        var nodes: [String: Node] = [:]
        var connections: [ObjectIdentifier: any NIOCore.Channel] = [:]
        var serial: UInt64 = 0
        var stopped = false
        // Like epmd: one counter for every registration, starting at random, skipping 0-3
        // (0 means "any creation" and 1-3 were the old 2-bit creations).
        var nextCreation = UInt32.random(in: 4...UInt32.max)
    }
    private let state = Locked(State())

    /// Records an open connection; false if the server has stopped (close it).
    func track(_ channel: any NIOCore.Channel) -> Bool {
        state.withLock { s in
            if s.stopped { return false }
            s.connections[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func untrack(_ channel: any NIOCore.Channel) {
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Marks the server stopped and hands back the connections to close.
    func stop() -> [any NIOCore.Channel] {
        state.withLock { s in
            s.stopped = true
            defer { s.connections = [:] }
            return Array(s.connections.values)
        }
    }

    /// Registers `info` for `owner`; the creation, or nil if the name is taken.
    func register(_ info: EPMDNodeInfo, owner: ObjectIdentifier) -> UInt32? {
        state.withLock { s in
            guard s.nodes[info.name] == nil else { return nil }
            let creation = s.nextCreation
            s.nextCreation = creation == .max ? 4 : creation + 1
            s.serial += 1
            s.nodes[info.name] = Node(info: info, owner: owner, serial: s.serial)
            return creation
        }
    }

    /// Removes `name` if `owner` still holds it.
    func unregister(_ name: String, owner: ObjectIdentifier) {
        state.withLock { s in
            if s.nodes[name]?.owner == owner { s.nodes[name] = nil }
        }
    }

    func lookup(_ name: String) -> EPMDNodeInfo? {
        state.withLock { $0.nodes[name]?.info }
    }

    func names() -> [EPMDNameEntry] {
        state.withLock { s in
            s.nodes.values.sorted { $0.serial > $1.serial }.map { EPMDNameEntry(name: $0.info.name, port: $0.info.port) }
        }
    }
}

private enum EPMDRequestError: Error, CustomStringConvertible {
    case badLength(Int)
    var description: String {
        switch self {
        case .badLength(let length):
            "request length \(length) is outside 1...\(EPMDWire.maxRequestLength)"
        }
    }
}

/// Splits the byte stream into requests: `Length(2) Request(Length)`, Length in 1...1024.
private struct EPMDRequestDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) else { return .needMoreData }
        guard length > 0, length <= EPMDWire.maxRequestLength else { throw EPMDRequestError.badLength(Int(length)) }
        guard buffer.readableBytes >= 2 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)  // a partial request at EOF is dropped
        return .needMoreData
    }
}

/// One connection to the embedded EPMD: answers one request, or holds one registration.
private final class EPMDServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let registry: EPMDRegistry
    private let requestTimeout: TimeAmount
    /// Closes a connection that has not registered within `requestTimeout`: a stalled
    /// client, or one that does not read its reply.
    private var deadline: Scheduled<Void>?
    private var registered: String?
    private var answered = false

    init(registry: EPMDRegistry, requestTimeout: TimeAmount) {
        self.registry = registry
        self.requestTimeout = requestTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        guard registry.track(channel) else {
            context.close(promise: nil)
            return
        }
        let timeout = requestTimeout
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            EPMDLog.logger.notice(
                "closing EPMD connection from \(channel.remoteAddress.map { "\($0)" } ?? "?"): no request within \(timeout)")
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        registry.untrack(context.channel)
        if let name = registered {
            registry.unregister(name, owner: ObjectIdentifier(context.channel))
            EPMDLog.logger.debug("unregistered \(name)")
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var request = unwrapInboundIn(data)
        // A registration's connection is only held open; one-shot requests get one answer.
        guard registered == nil, !answered, let tag = request.readInteger(as: UInt8.self) else { return }
        switch tag {
        case EPMDWire.alive2Request:
            guard let info = EPMDWire.readNode(from: &request), request.readableBytes == 0,
                info.name.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "@") })
            else { return reject(context, "malformed ALIVE2_REQ") }
            let creation = registry.register(info, owner: ObjectIdentifier(context.channel))
            var reply = context.channel.allocator.buffer(capacity: 6)
            if info.highestVersion >= 6 {
                reply.writeInteger(EPMDWire.alive2ExtendedResponse)
                reply.writeInteger(UInt8(creation == nil ? 1 : 0))
                reply.writeInteger(creation ?? 0)
            } else {  // a pre-OTP-23 node wants ALIVE2_RESP and a 2-bit creation
                reply.writeInteger(EPMDWire.alive2Response)
                reply.writeInteger(UInt8(creation == nil ? 1 : 0))
                reply.writeInteger(UInt16((creation ?? 0) % 3 + 1))
            }
            if creation != nil {
                registered = info.name
                deadline?.cancel()
                deadline = nil
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
                EPMDLog.logger.debug("registered \(info.name) at port \(info.port)")
            } else {
                EPMDLog.logger.notice("refused ALIVE2_REQ for \(info.name): name already registered")
                answer(context, reply)
            }
        case EPMDWire.portPlease2Request:
            let name = String(decoding: request.readableBytesView, as: UTF8.self)
            var reply = context.channel.allocator.buffer(capacity: 32)
            reply.writeInteger(EPMDWire.port2Response)
            if let info = registry.lookup(name) {
                reply.writeInteger(UInt8(0))
                EPMDWire.writeNode(info, to: &reply)
            } else {
                reply.writeInteger(UInt8(1))
            }
            answer(context, reply)
        case EPMDWire.namesRequest:
            var reply = context.channel.allocator.buffer(capacity: 64)
            reply.writeInteger(UInt32(context.channel.localAddress?.port ?? 0))
            for entry in registry.names() {
                reply.writeString("name \(entry.name) at port \(entry.port)\n")
            }
            answer(context, reply)
        default:
            reject(context, "unknown request type \(tag)")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reject(context, "\(error)")
    }

    /// Sends the one reply this connection gets, then closes it.
    private func answer(_ context: ChannelHandlerContext, _ reply: ByteBuffer) {
        answered = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
    }

    private func reject(_ context: ChannelHandlerContext, _ why: String) {
        guard context.channel.isActive else { return }
        EPMDLog.logger.warning(
            "closing EPMD connection from \(context.channel.remoteAddress.map { "\($0)" } ?? "?"): \(why)")
        answered = true
        context.close(promise: nil)
    }
}
