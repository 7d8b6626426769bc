import Hummingbird

/// The framing of the observer's streams (server-sent events), shared by this node's streams
/// and those made by polling another node.
enum ServerSentEvents {
    /// One event: `event: NAME`, `data: DATA`, a blank line.
    static func event(_ name: String, _ data: some Sequence<UInt8>) -> ByteBuffer {
        var buffer = ByteBuffer(string: "event: \(name)\ndata: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        return buffer
    }

    /// A `text/event-stream` response whose events `write` sends; the stream ends when it
    /// returns. (@concurrent: the writer's protocol is compiled without
    /// NonisolatedNonsendingByDefault, as ResponseBody's own closure is.)
    static func response(_ write: @escaping @Sendable @concurrent (inout any ResponseBodyWriter) async throws -> Void) -> Response {
        let body = ResponseBody { writer in
            try await write(&writer)
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }
}
