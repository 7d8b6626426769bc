import NIOCore

/// The framing of a distribution connection, read in one place (erl_dist_protocol): 2-byte
/// lengths during the handshake, one frame per message; 4-byte lengths after it, every
/// complete frame of a read passed on as one buffer, so the connection decodes them in one
/// pass without a buffer object per frame. A 4-byte length of zero is a tick.
///
/// The handshake handler switches the framing (``Framing/connected``) from inside the read
/// that completes the handshake; the frames that arrived in the same read are then cut with
/// the new framing.
///
/// - Throws: ``FrameError/tooLarge(_:)`` for a frame longer than the limit: the connection
///   closes with a log line.
struct DistributionFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// Shared with the handshake handler, on the channel's event loop.
    final class Framing {
        var connected = false
        let maxFrame: Int
        init(maxFrame: Int) { self.maxFrame = maxFrame }
    }

    let framing: Framing

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        framing.connected ? try decodeFrames(context: context, buffer: &buffer) : try decodeHandshake(context: context, buffer: &buffer)
    }

    /// At close: what is complete is still delivered; a partial frame is dropped.
    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    private func decodeHandshake(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) else { return .needMoreData }
        if Int(length) > framing.maxFrame { throw FrameError.tooLarge(Int(length)) }
        guard buffer.readableBytes >= 2 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    private func decodeFrames(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var at = buffer.readerIndex
        let end = buffer.writerIndex
        while end - at >= 4 {
            let length = Int(buffer.getInteger(at: at, as: UInt32.self)!)
            if length > framing.maxFrame { throw FrameError.tooLarge(length) }
            guard end - at - 4 >= length else { break }
            at += 4 + length
        }
        guard at > buffer.readerIndex else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: at - buffer.readerIndex)!))
        return .continue
    }
}

/// Why the decoder refused a connection's input.
enum FrameError: Error {
    /// A frame longer than `Configuration.maxFrameSize`.
    case tooLarge(Int)

    /// The reason a channel handler logs for `error`, caught from its pipeline: for a frame
    /// too large, the peer that sent it and the limit it broke.
    static func reason(_ error: any Error, peer: String, limit: Int) -> String {
        guard case FrameError.tooLarge(let length) = error else { return "\(error)" }
        return "frame of \(length) bytes from \(peer) exceeds the limit of \(limit)"
    }
}
