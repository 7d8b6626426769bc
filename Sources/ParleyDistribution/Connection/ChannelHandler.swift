import Logging
import NIOCore
import Parley

/// A distribution channel's pipeline: [TLS] → ``DistributionFrameDecoder`` →
/// ``HandshakeHandler``, which gives its place to a ``ConnectionHandler`` once the handshake
/// is done. A frame longer than the configured maximum, a malformed handshake or an
/// undecodable term closes this connection with a log line; nothing else on the node is
/// affected.
enum DistributionPipeline {
    /// Adds the decoder and the handshake handler (after TLS, if any).
    static func configure(_ channel: any NIOCore.Channel, _ handshake: HandshakeHandler) throws {
        let ops = channel.pipeline.syncOperations
        try ops.addHandler(ByteToMessageHandler(DistributionFrameDecoder(framing: handshake.framing)))
        try ops.addHandler(handshake)
    }
}

/// The handshake (2-byte frames, ``HandshakeMachine``) on one channel, with its timeout.
/// When it completes it attaches the channel to its ``Connection``, switches the framing to
/// 4-byte frames, and hands its place in the pipeline to a ``ConnectionHandler``.
final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let router: DistributionRouter
    let framing: DistributionFrameDecoder.Framing
    private var machine: HandshakeMachine
    private var connection: Connection?
    /// This handshake's attempt on `connection` (``Connection/isPending(_:)``).
    private var attempt = 0
    private var finished = false
    private var timeout: Scheduled<Void>?
    private let isInitiator: Bool
    private var peerDescription: String

    init(initiator connection: Connection, attempt: Int, router: DistributionRouter) {
        self.router = router
        self.framing = .init(maxFrame: router.configuration.maxFrameSize)
        self.connection = connection
        self.attempt = attempt
        self.isInitiator = true
        self.peerDescription = connection.node.name
        self.machine = HandshakeMachine(initiator: router.identity.name, flags: router.flags, creation: router.identity.creation,
                                        cookie: router.configuration.cookie, dialling: connection.node.name)
    }

    init(acceptorFor router: DistributionRouter, remote: String) {
        self.router = router
        self.framing = .init(maxFrame: router.configuration.maxFrameSize)
        self.isInitiator = false
        self.peerDescription = remote
        self.machine = HandshakeMachine(acceptor: router.identity.name, flags: router.flags, creation: router.identity.creation,
                                        cookie: router.configuration.cookie)
    }

    func channelActive(context: ChannelHandlerContext) {
        let limit = router.configuration.handshakeTimeout
        let loop = context.eventLoop.assumeIsolated()
        timeout = loop.scheduleTask(in: .nanoseconds(Int64(limit.components.seconds) * 1_000_000_000 + Int64(limit.components.attoseconds / 1_000_000_000))) {
            [self] in
            if !self.finished { self.fail(context, HandshakeError.timeout(peer: self.peerDescription).description) }
        }
        if isInitiator {
            if abandonedDial(context) { return }
            perform(machine.start(), context)
        }
        context.fireChannelActive()
    }

    /// One handshake frame (its 2-byte length already cut off by the decoder).
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        let frame = unwrapInboundIn(data)
        let actions = machine.receive(Array(frame.readableBytesView), status: { name in
            peerDescription = name
            let (status, conn, id) = router.acceptorStatus(for: name)
            connection = conn
            attempt = id
            return status
        }, pending: { connection?.isPending(attempt) ?? false })
        perform(actions, context)
    }

    /// Our dial gives up once it no longer owns a connecting connection: the peer's own
    /// attempt took it over (a simultaneous connect it wins, as net_kernel kills a remarked
    /// setup process) or already brought it up, or it closed. Going on could only make the
    /// peer drop a live connection for this one. Checked here before our name goes out, and
    /// by the machine at each later step (`pending`). True if it gave up.
    private func abandonedDial(_ context: ChannelHandlerContext) -> Bool {
        guard let connection, !connection.isPending(attempt) else { return false }
        finished = true
        timeout?.cancel()
        router.log.debug("distribution connection \(peerDescription): our dial gave way to the peer's connection")
        connection.attemptFailed("superseded by the peer's connection")
        context.close(promise: nil)
        return true
    }

    private func perform(_ actions: [HandshakeMachine.Action], _ context: ChannelHandlerContext) {
        for action in actions {
            guard !finished else { return }
            switch action {
            case .send(let bytes):
                var b = context.channel.allocator.buffer(capacity: bytes.count + 2)
                b.writeInteger(UInt16(bytes.count))
                b.writeBytes(bytes)
                context.writeAndFlush(wrapOutboundOut(b), promise: nil)
            case .completed(let peer):
                timeout?.cancel()
                guard let connection, connection.attach(context.channel, peer: peer, tickTime: router.configuration.tickTime) else {
                    fail(context, "connection to \(peer.name) completed after another one won")
                    return
                }
                finished = true
                router.log.info("connected to \(peer.name) (\(peer.isHidden ? "hidden" : "visible") node, flags \(peer.flags))")
                // From here on 4-byte frames, read by the connection; the frames that came
                // in this same read are cut with the new framing once this call returns.
                framing.connected = true
                do {
                    try context.pipeline.syncOperations.addHandler(
                        ConnectionHandler(connection: connection, router: router, peer: peer.name), position: .after(self))
                    context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                } catch {
                    connection.close(reason: "\(error)")
                    context.close(promise: nil)
                }
            case .failed(let error):
                if case .superseded = error {
                    // The other connection with this peer carries the traffic: not an error.
                    fail(context, error.description, level: .debug)
                    return
                }
                if case .refused(_, "nok") = error, connection == nil {
                    // We refused a simultaneous connect that we win: our dial goes on.
                    fail(context, error.description, level: .debug)
                    return
                }
                if case .refused(_, "nok") = error, let connection {
                    // A simultaneous connect that the peer won: its own connection to us
                    // carries the traffic. Fail this attempt only if that never arrives.
                    finished = true
                    timeout?.cancel()
                    let limit = router.configuration.handshakeTimeout
                    context.eventLoop.scheduleTask(in: .seconds(Int64(limit.components.seconds))) { connection.attemptFailed("simultaneous connect lost") }
                    context.close(promise: nil)
                    return
                }
                fail(context, error.description)
            }
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String, level: Logger.Level = .error) {
        guard !finished else { return }
        finished = true
        timeout?.cancel()
        router.log.log(level: level, "distribution connection \(peerDescription): \(reason)")
        connection?.attemptFailed(reason)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if !finished {
            finished = true
            var reason = "\(peerDescription) closed the connection during the handshake"
            var level = Logger.Level.error
            switch machine.state {
            case .awaitAck:
                reason += ", after our challenge reply: most likely a cookie mismatch (check -setcookie on both nodes)"
            case .awaitAliveReply:
                // The peer's dial gave way to the connection we have with it.
                level = .debug
            default: break
            }
            router.log.log(level: level, "distribution connection \(peerDescription): \(reason)")
            connection?.attemptFailed(reason)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, FrameError.reason(error, peer: peerDescription, limit: framing.maxFrame))
    }
}

/// An established connection's channel: every read's frames go to the ``Connection`` in one
/// pass, and the processes they wake run on this I/O thread right after
/// (`Scheduler.runWoken`), as a BEAM scheduler runs what its poll wakes.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let connection: Connection
    let router: DistributionRouter
    let peer: String
    /// Messages read but not yet delivered, and the peer's recent atoms, nodes and pids: the
    /// handler's, so only its event loop touches them.
    private let inbox = Inbox()
    private let decodeCache = DecodeCache()
    private var closed = false

    init(connection: Connection, router: DistributionRouter, peer: String) {
        self.connection = connection
        self.router = router
        self.peer = peer
    }

    /// The complete 4-byte frames of one read.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        let frames = unwrapInboundIn(data)
        router.busyWait?.noteActivity()
        let inline = router.configuration.runWokenOnIOThread
        if inline > 0 {
            router.scheduler.runWoken(limit: inline) { receive(frames, context) }
        } else {
            receive(frames, context)
        }
    }

    private func receive(_ frames: ByteBuffer, _ context: ChannelHandlerContext) {
        do {
            try frames.withUnsafeReadableBytes { raw throws(TermDecodingError) in
                try connection.receiveFrames(raw, inbox: inbox, cache: decodeCache)
            }
        } catch {
            fail(context, "undecodable message from \(peer): \(error)")
        }
        inbox.flush()
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String, down: NodeDownReason? = nil) {
        guard !closed else { return }
        closed = true
        router.log.error("distribution connection \(peer): \(reason)")
        connection.close(reason: reason, down: down ?? .protocolError(reason))
        context.close(promise: nil)
    }

    /// SwiftNIO's queue passed its high water mark or drained to its low one: senders held
    /// on the busy connection may go on. A process suspended on it (`sendSuspending`)
    /// resumes on this I/O thread, as one woken by a read does (``channelRead(context:data:)``):
    /// a burst then goes on where the connection writes, in turns of about half the limit.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        let inline = router.configuration.runWokenOnIOThread
        if writable, inline > 0 {
            router.scheduler.runWoken(limit: inline) { connection.writabilityChanged(writable) }
        } else {
            connection.writabilityChanged(writable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closed {
            closed = true
            router.log.info("connection to \(peer) closed")
            connection.close(reason: "connection closed")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A socket error (a reset from a killed node) is a closed connection, not bad input.
        fail(context, FrameError.reason(error, peer: peer, limit: router.configuration.maxFrameSize),
             down: error is IOError ? .connectionClosed : nil)
    }
}
