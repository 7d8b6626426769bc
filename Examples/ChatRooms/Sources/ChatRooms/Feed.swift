import ParleyOTP

/// Every line of every room, through a channel pipeline: a transducer on the feed channel
/// (drops empty lines, masks a word), a `mult` that copies each line to two taps, and on one
/// tap a `pub` by room, so a moderator subscribes to the rooms it watches.
struct Feed: Sendable {
    let lines: Chan<ChatLine, ChatLine>
    let copies: Mult<ChatLine>
    let byRoom: Pub<ChatLine, String>

    init() {
        // Sliding: a slow reader loses the oldest lines; a room never waits for the feed.
        lines = Chan(buffer: .sliding(1024), transform:
            Transducer<ChatLine, ChatLine>
                .filter { !$0.text.isEmpty }
                .then(.map { ChatLine(room: $0.room, user: $0.user, text: $0.text.replacingOccurrences(of: "darn", with: "****")) }))
        copies = mult(lines)
        byRoom = pub(copies.tap(Channel<ChatLine>(buffer: .fixed(64))), topic: { $0.room }, buffer: { _ in .fixed(64) })
    }

    /// Called from a room's handler, which must not wait: `offer` never does.
    func publish(_ line: ChatLine) { _ = lines.offer(line) }

    /// A channel of the lines said in `room`.
    func watch(_ room: String) -> Channel<ChatLine> { byRoom.sub(room, Channel<ChatLine>(buffer: .fixed(64))) }

    /// A copy of every line (an audit log, a metrics counter).
    func all() -> Channel<ChatLine> { copies.tap(Channel<ChatLine>(buffer: .fixed(256))) }
}

extension String {
    func replacingOccurrences(of word: String, with mask: String) -> String {
        split(separator: " ", omittingEmptySubsequences: false).map { $0 == word ? mask : String($0) }.joined(separator: " ")
    }
}
