import ParleyOTP

/// What the moderator answers to.
enum ModeratorRequest: Sendable {
    /// Reply with how many lines the moderator has seen, per user.
    case report(to: Pid)
}

/// A process that selects over its mailbox and a channel at once: requests arrive as
/// messages, the watched room's lines arrive on a channel. A helper in the app's own module
/// that takes the `Process` and awaits, as any user's code does.
func moderate(_ me: Process, lines: Channel<ChatLine>) async throws {
    me.label = "moderator"
    var seen: [String: Int] = [:]
    while true {
        try await me.select {
            me.onMessage(ModeratorRequest.self) { request in
                if case .report(let pid) = request { me.send(seen, to: pid) }
            }
            lines.onReceive { line in
                if let line { seen[line.user, default: 0] += 1 }
            }
        }
    }
}
