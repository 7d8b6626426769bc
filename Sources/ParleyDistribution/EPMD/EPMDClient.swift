import NIOCore
import NIOPosix

/// A client of the Erlang Port Mapper Daemon: register this node's name and port, find
/// other nodes' ports, list the names on a host. It talks to the real `epmd` and to
/// ``EmbeddedEPMD`` alike.
///
/// Every call has a timeout (5 s by default), so a stalled EPMD never hangs the caller, and
/// throws only ``EPMDError``. The EPMD port defaults to `ERL_EPMD_PORT` if set, else 4369.
///
/// ```swift
/// let registration = try await EPMDClient.register(name: "swift", port: 9100, hidden: false)
/// if let rabbit = try await EPMDClient.lookup(name: "rabbit", host: "10.0.0.7") {
///     print("rabbit@10.0.0.7 listens on \(rabbit.port)")
/// }
/// await registration.close()   // unregisters
/// ```
public enum EPMDClient {
    /// The EPMD port used when a call passes none: `ERL_EPMD_PORT` if set, else 4369.
    ///
    /// ```swift
    /// print(EPMDClient.defaultPort)   // 4369
    /// ```
    public static var defaultPort: Int { EPMDWire.defaultPort }

    /// Registers `name` (the part before the `@`) with EPMD (`ALIVE2_REQ`), announcing that
    /// this node accepts distribution connections on `port`.
    ///
    /// The registration lasts as long as the returned ``EPMDRegistration``'s connection is
    /// open: EPMD forgets the name when the connection closes, on ``EPMDRegistration/close()``
    /// or when this process exits.
    ///
    /// ```swift
    /// let registration = try await EPMDClient.register(name: "worker", port: 9100, hidden: false)
    /// print(registration.creation)   // goes into this node's pids, ports and references
    /// ```
    /// - Throws: ``EPMDError/nameTaken(_:)`` if a live node holds the name,
    ///   ``EPMDError/invalidName(_:)`` if it is empty or over 255 bytes, or another ``EPMDError``.
    public static func register(
        name: String, port: UInt16, hidden: Bool, host: String = "127.0.0.1", epmdPort: Int? = nil,
        timeout: Duration = .seconds(5), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(EPMDError) -> EPMDRegistration {
        let utf8 = name.utf8.count
        guard utf8 > 0, utf8 <= EPMDWire.maxNameLength else {
            throw .invalidName(name)
        }
        let info = EPMDNodeInfo(name: name, port: port, nodeType: hidden ? .hidden : .normal)
        let request = EPMDWire.request {
            $0.writeInteger(EPMDWire.alive2Request)
            EPMDWire.writeNode(info, to: &$0)
        }
        // ALIVE2_X_RESP is 'v' Result(1) Creation(4); the older ALIVE2_RESP 'y' Result(1) Creation(2).
        let (channel, reply) = try await exchange(
            host: host, port: epmdPort ?? defaultPort, request: request, timeout: timeout, group: group
        ) { buffer in
            guard let tag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return false }
            return buffer.readableBytes >= (tag == EPMDWire.alive2Response ? 4 : 6)
        }
        var buffer = reply
        let creation: UInt32?
        let tag = buffer.readInteger(as: UInt8.self)
        let result = buffer.readInteger(as: UInt8.self)
        switch tag {
        case EPMDWire.alive2ExtendedResponse: creation = buffer.readInteger(as: UInt32.self)
        case EPMDWire.alive2Response: creation = buffer.readInteger(as: UInt16.self).map(UInt32.init)
        default: creation = nil
        }
        guard let result, let creation else {
            channel.close(promise: nil)
            if tag == nil { throw .malformedReply("EPMD closed the connection without answering ALIVE2_REQ") }
            throw .malformedReply("expected ALIVE2_X_RESP (118), got \(reply.readableBytesView.prefix(8).map { $0 })")
        }
        guard result == 0 else {
            channel.close(promise: nil)
            throw .nameTaken(name)
        }
        return EPMDRegistration(name: name, port: port, creation: creation, channel: channel)
    }

    /// Asks the EPMD on `host` where the node `name` listens (`PORT_PLEASE2_REQ`).
    ///
    /// `name` is the short name; for `"rabbit@db1"` only `"rabbit"` is sent.
    ///
    /// ```swift
    /// guard let info = try await EPMDClient.lookup(name: "rabbit", host: "db1") else {
    ///     print("no node rabbit on db1"); return
    /// }
    /// print(info.port, info.nodeType, info.highestVersion)
    /// ```
    /// - Returns: the node's record, or nil if no such name is registered there.
    public static func lookup(
        name: String, host: String = "127.0.0.1", epmdPort: Int? = nil,
        timeout: Duration = .seconds(5), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(EPMDError) -> EPMDNodeInfo? {
        let short = name.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? name
        let request = EPMDWire.request {
            $0.writeInteger(EPMDWire.portPlease2Request)
            $0.writeString(short)
        }
        // EPMD closes the connection after PORT2_RESP, so read to the end.
        var (_, reply) = try await exchange(
            host: host, port: epmdPort ?? defaultPort, request: request, timeout: timeout, group: group
        ) { _ in false }
        guard let tag = reply.readInteger(as: UInt8.self), tag == EPMDWire.port2Response,
            let result = reply.readInteger(as: UInt8.self)
        else { throw .malformedReply("expected PORT2_RESP (119), got \(reply.readableBytesView.prefix(8).map { $0 })") }
        guard result == 0 else { return nil }
        guard let info = EPMDWire.readNode(from: &reply) else {
            throw .malformedReply("PORT2_RESP for '\(short)' is truncated or inconsistent")
        }
        return info
    }

    /// Lists the names registered with the EPMD on `host` (`NAMES_REQ`), as `epmd -names` does.
    ///
    /// ```swift
    /// for entry in try await EPMDClient.names(host: "db1") {
    ///     print("\(entry.name)@db1 at port \(entry.port)")
    /// }
    /// ```
    public static func names(
        host: String = "127.0.0.1", epmdPort: Int? = nil,
        timeout: Duration = .seconds(5), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(EPMDError) -> [EPMDNameEntry] {
        let request = EPMDWire.request { $0.writeInteger(EPMDWire.namesRequest) }
        // EPMDPortNo(4) then `name NAME at port PORT\n` lines until EPMD closes the connection.
        var (_, reply) = try await exchange(
            host: host, port: epmdPort ?? defaultPort, request: request, timeout: timeout, group: group
        ) { _ in false }
        guard reply.readInteger(as: UInt32.self) != nil else {
            throw .malformedReply("NAMES reply is shorter than its 4-byte EPMD port")
        }
        let text = String(decoding: reply.readableBytesView, as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            // "name foo at port 4711"; the name itself may hold spaces in principle, so parse from both ends.
            guard line.hasPrefix("name "), let at = line.ranges(of: " at port ").last,
                let port = UInt16(line[at.upperBound...])
            else { return nil }
            return EPMDNameEntry(name: String(line[line.index(line.startIndex, offsetBy: 5)..<at.lowerBound]), port: port)
        }
    }

    /// Whether something accepts TCP connections on `host`:`port` (an EPMD, presumably).
    static func isListening(host: String, port: Int, timeout: Duration, group: any EventLoopGroup) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: group).connectTimeout(TimeAmount(timeout))
                .connect(host: host, port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    /// Connects, sends `request`, and collects the reply until `isComplete` says it has all of
    /// it or the peer closes. Returns the still-open channel (closed already unless complete).
    private static func exchange(
        host: String, port: Int, request: ByteBuffer, timeout: Duration, group: any EventLoopGroup,
        isComplete: @escaping @Sendable (ByteBuffer) -> Bool
    ) async throws(EPMDError) -> (any NIOCore.Channel, ByteBuffer) {
        let eventLoop = group.next()
        let reply = eventLoop.makePromise(of: ByteBuffer.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ReplyCollector(reply: reply, timeout: TimeAmount(timeout), isComplete: isComplete))
                }
            }
        let channel: any NIOCore.Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            reply.fail(error)
            if let channelError = error as? NIOCore.ChannelError, case .connectTimeout = channelError { throw .timeout }
            throw .unreachable(host: host, port: port, underlying: describe(error))
        }
        channel.writeAndFlush(request, promise: nil)
        do {
            return (channel, try await reply.futureResult.get())
        } catch let error as EPMDError {
            channel.close(promise: nil)
            throw error
        } catch {
            channel.close(promise: nil)
            throw .unreachable(host: host, port: port, underlying: describe(error))
        }
    }

    /// The useful part of a connect error: "Connection refused (errno: 111)", not NIO's wrapper.
    private static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve host: \(dns)" }
            if let first = error.connectionErrors.first { return "\(first.error)" }
        }
        return "\(error)"
    }
}

/// A live registration with EPMD: the name stays registered while this holds its
/// connection open. ``close()``, dropping the last reference, or the process exiting
/// unregisters it, so keep it for as long as the node should be reachable.
///
/// ```swift
/// let registration = try await EPMDClient.register(name: "worker", port: 9100, hidden: false)
/// defer { Task { await registration.close() } }
/// print("registered \(registration.name), creation \(registration.creation)")
/// ```
public final class EPMDRegistration: Sendable {
    /// The registered short name.
    public let name: String
    /// The distribution port registered for it.
    public let port: UInt16
    /// EPMD's creation for this incarnation of the node: different on every registration of
    /// the same name, so pids from a previous incarnation are told apart.
    public let creation: UInt32
    private let channel: any NIOCore.Channel

    init(name: String, port: UInt16, creation: UInt32, channel: any NIOCore.Channel) {
        self.name = name
        self.port = port
        self.creation = creation
        self.channel = channel
    }

    deinit {
        channel.close(promise: nil)
    }

    /// Whether the connection to EPMD (and so the registration) is still open. False once
    /// closed here or if EPMD went away.
    ///
    /// ```swift
    /// if !registration.isActive { print("EPMD went away; re-register") }
    /// ```
    public var isActive: Bool { channel.isActive }

    /// Calls `body` once the connection to EPMD closes, by ``close()`` or because EPMD went
    /// away.
    ///
    /// ```swift
    /// registration.whenClosed { print("no longer registered") }
    /// ```
    public func whenClosed(_ body: @escaping @Sendable () -> Void) {
        channel.closeFuture.whenComplete { _ in body() }
    }

    /// Unregisters the name by closing the connection to EPMD. Idempotent.
    ///
    /// ```swift
    /// await registration.close()
    /// ```
    public func close() async {
        try? await channel.close()
    }
}

/// Collects the bytes of one EPMD reply into `reply`, failing it with ``EPMDError/timeout``
/// if the reply takes longer than `timeout`. Lives on the channel's event loop.
private final class ReplyCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let reply: EventLoopPromise<ByteBuffer>
    private let timeout: TimeAmount
    private let isComplete: @Sendable (ByteBuffer) -> Bool
    private var buffer = ByteBuffer()
    private var timer: Scheduled<Void>?
    private var done = false

    init(reply: EventLoopPromise<ByteBuffer>, timeout: TimeAmount, isComplete: @escaping @Sendable (ByteBuffer) -> Bool) {
        self.reply = reply
        self.timeout = timeout
        self.isComplete = isComplete
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let reply = self.reply
        timer = context.eventLoop.scheduleTask(in: timeout) {
            reply.fail(EPMDError.timeout)
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }  // a registration's connection: nothing more is expected
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        if isComplete(buffer) { finish(.success(buffer)) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.success(buffer))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(error))
        context.close(promise: nil)
    }

    private func finish(_ result: Result<ByteBuffer, any Error>) {
        guard !done else { return }
        done = true
        timer?.cancel()
        timer = nil
        reply.completeWith(result)
    }
}
