import ParleyOTP

/// A line said in a room, as members and the feed see it.
struct ChatLine: Sendable, CustomStringConvertible {
    let room: String
    let user: String
    let text: String
    var description: String { "[\(room)] \(user): \(text)" }
}

/// One chat room: a GenServer per room, started on demand under a DynamicSupervisor and
/// named through a Registry (`rooms.via(name)`), so a restarted room is found by the same name.
struct Room: GenServer, Sendable {
    let name: String
    /// Every line said in any room also goes here (never blocking the room: see `Feed`).
    let feed: Feed
    var members: [String: Pid] = [:]
    var history: [String] = []

    enum Call: Sendable {
        case join(user: String, pid: Pid)
        case say(user: String, text: String)
        case members
    }
    /// One reply type for every call, an enum with a case per kind of answer.
    enum Reply: Sendable, Equatable {
        case joined(members: [String])
        case said(lineNumber: Int)
        case notAMember
        case members([String])
    }
    enum Cast: Sendable { case crash }

    mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        me.label = "room \(name)"
        return .ok
    }

    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .join(let user, let pid):
            members[user] = pid
            _ = me.monitor(pid)                      // a member that exits leaves the room
            return .reply(.joined(members: members.keys.sorted()))
        case .say(let user, let text):
            guard members[user] != nil else { return .reply(.notAMember) }
            let line = ChatLine(room: name, user: user, text: text)
            history.append(line.description)
            for (_, pid) in members { me.send(line, to: pid) }
            feed.publish(line)
            return .reply(.said(lineNumber: history.count))
        case .members:
            return .reply(.members(members.keys.sorted()))
        }
    }

    mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
        .stop(.custom("room_crashed_on_purpose"))
    }

    mutating func handleInfo(_ message: any Sendable, _ me: CallbackProcess) -> HandleResult {
        if let down = message as? DownMessage {
            members = members.filter { $0.value != down.pid }
        }
        return .noreply
    }

    /// Crash reports show a summary: members' names and the history are nobody's business.
    func formatStatus(_ status: ServerStatus) -> ServerStatus {
        var s = status
        s.state = "Room(\(name), \(members.count) members, \(history.count) lines)"
        return s
    }
}
