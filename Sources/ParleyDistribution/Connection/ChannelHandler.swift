import Logging
import NIOCore
import Parley

/// Frames and the handshake on one TCP connection: 2-byte length frames until the handshake
/// completes, 4-byte frames after (erl_dist_protocol). A frame longer than the configured
/// maximum, a malformed handshake or an undecodable term closes this connection with a log
/// line; nothing else on the node is affected.
final class DistributionChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let router: DistributionRouter
    var machine: HandshakeMachine
    var connection: Connection?
    var attached = false
    var finished = false
    var cumulation: ByteBuffer?
    var timeout: Scheduled<Void>?
    /// Messages read but not yet delivered, and the peer's recent atoms, nodes and pids: the
    /// handler's, so only its event loop touches them.
    let inbox = Inbox()
    let decodeCache = DecodeCache()
    let isInitiator: Bool
    var peerDescription: String

    init(initiator connection: Connection, router: DistributionRouter) {
        self.router = router
        self.connection = connection
        self.isInitiator = true
        self.peerDescription = connection.node.name
        self.machine = HandshakeMachine(initiator: router.identity.name, flags: router.flags, creation: router.identity.creation,
                                        cookie: router.configuration.cookie, dialling: connection.node.name)
    }

    init(acceptorFor router: DistributionRouter, remote: String) {
        self.router = router
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
            if !self.attached && !self.finished {
                self.fail(context, HandshakeError.timeout(peer: self.peerDescription).description)
            }
        }
        if isInitiator { perform(machine.start(), context) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if cumulation == nil || cumulation!.readableBytes == 0 {
            cumulation = incoming
        } else {
            cumulation!.writeBuffer(&incoming)
        }
        router.busyWait?.noteActivity()
        let inline = router.configuration.runWokenOnIOThread
        if inline > 0 {
            // The processes this read wakes run here, right after it (Scheduler.runWoken).
            router.scheduler.runWoken(limit: inline) { readFrames(context) }
        } else {
            readFrames(context)
        }
        if let c = cumulation, c.readerIndex > 65536 { cumulation!.discardReadBytes() }
    }

    /// Handles every complete frame in the cumulation, then delivers the messages read.
    private func readFrames(_ context: ChannelHandlerContext) {
        while !finished {
            if attached, let connection {
                // After the handshake: every complete frame in one pass over the bytes.
                let max = router.configuration.maxFrameSize
                do {
                    let used = try cumulation!.withUnsafeReadableBytes { raw in try connection.receiveFrames(raw, maxFrame: max, inbox: inbox, cache: decodeCache) }
                    cumulation!.moveReaderIndex(forwardBy: used)
                } catch FrameError.tooLarge(let length) {
                    fail(context, "frame of \(length) bytes from \(peerDescription) exceeds the limit of \(max)")
                } catch FrameError.undecodable(let error) {
                    fail(context, "undecodable message from \(peerDescription): \(error)")
                } catch {
                    fail(context, "\(error)")
                }
                break
            }
            // The handshake: 2-byte frames.
            guard let frame = nextFrame(context) else { break }
            let bytes = Array(frame.readableBytesView)
            let actions = machine.receive(bytes) { name in
                peerDescription = name
                let (status, conn) = router.acceptorStatus(for: name)
                connection = conn
                return status
            }
            perform(actions, context)
        }
        inbox.flush()
    }

    /// The next complete handshake frame (2-byte length), or nil if more bytes are needed.
    /// After the handshake, frames are read by ``Connection/receiveFrames(_:maxFrame:)``.
    func nextFrame(_ context: ChannelHandlerContext) -> ByteBuffer? {
        guard var buf = cumulation, buf.readableBytes >= 2 else { return nil }
        let length = Int(buf.getInteger(at: buf.readerIndex, as: UInt16.self)!)
        if length > router.configuration.maxFrameSize {
            fail(context, "frame of \(length) bytes from \(peerDescription) exceeds the limit of \(router.configuration.maxFrameSize)")
            return nil
        }
        guard buf.readableBytes >= 2 + length else { return nil }
        buf.moveReaderIndex(forwardBy: 2)
        let frame = buf.readSlice(length: length)!
        cumulation = buf
        return frame
    }

    func perform(_ actions: [HandshakeMachine.Action], _ context: ChannelHandlerContext) {
        for action in actions {
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
                attached = true
                router.log.info("connected to \(peer.name) (\(peer.isHidden ? "hidden" : "visible") node, flags \(peer.flags))")
            case .failed(let error):
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

    func fail(_ context: ChannelHandlerContext, _ reason: String) {
        guard !finished else { return }
        finished = true
        timeout?.cancel()
        router.log.error("distribution connection \(peerDescription): \(reason)")
        if attached {
            connection?.close(reason: reason)
        } else {
            connection?.attemptFailed(reason)
        }
        context.close(promise: nil)
    }

    /// SwiftNIO's queue drained to its low water mark: senders held on the busy
    /// connection may go on.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if attached { connection?.writabilityChanged(context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if !finished {
            finished = true
            if attached {
                router.log.info("connection to \(peerDescription) closed")
                connection?.close(reason: "connection closed")
            } else {
                var reason = "\(peerDescription) closed the connection during the handshake"
                if case .awaitAck = machine.state {
                    reason += ", after our challenge reply: most likely a cookie mismatch (check -setcookie on both nodes)"
                }
                router.log.error("distribution connection \(peerDescription): \(reason)")
                connection?.attemptFailed(reason)
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, "\(error)")
    }
}
