import Hummingbird
import ParleyOTP

/// The traces started from the page, by pid, kept after they stop so that their events can
/// still be read and downloaded (the oldest stopped ones go first beyond ``keep``).
final class TraceSessions: Sendable {
    static let keep = 32
    private let sessions = Locked<[(key: String, session: TraceSession)]>([])

    /// Starts tracing `pid` as `request` asks (replacing a trace it had).
    func start(_ pid: Pid, _ request: TraceRequest) throws -> TraceSession {
        var flags: TraceFlags = []
        for f in request.flags {
            switch f {
            case "send": flags.insert(.send)
            case "receive": flags.insert(.receive)
            case "procs": flags.insert(.procs)
            default: throw HTTPError(.badRequest, message: "unknown trace flag \(f.prefix(40)) (send, receive, procs)")
            }
        }
        guard !flags.isEmpty else { throw HTTPError(.badRequest, message: "no trace flag given") }
        guard (1...100_000).contains(request.limit) else { throw HTTPError(.badRequest, message: "limit must be 1...100000") }
        let limit: TraceLimit
        if let seconds = request.perSeconds {
            guard seconds > 0, seconds <= 3600 else { throw HTTPError(.badRequest, message: "perSeconds must be in (0, 3600]") }
            limit = .rate(request.limit, per: .milliseconds(Int64(seconds * 1000)))
        } else {
            limit = .total(request.limit)
        }
        let session: TraceSession
        do {
            session = try Process.trace(pid, flags, limit: limit)
        } catch {
            throw HTTPError(.notFound, message: "no such process")
        }
        let key = ProcessLookup.key(pid)
        sessions.withLock { list in
            list.removeAll { $0.key == key }
            list.append((key, session))
            while list.count > Self.keep, let i = list.firstIndex(where: { !$0.session.isActive }) { list.remove(at: i) }
        }
        return session
    }

    /// The trace started for the pid written as in the page's URLs (`0.81.0`) or as `<0.81.0>`.
    func session(_ text: String) -> TraceSession? {
        let key = text.hasPrefix("<") ? String(text.dropFirst().dropLast()) : text
        return sessions.withLock { list in list.last { $0.key == key }?.session }
    }
}

extension TraceSession {
    var limitDescription: String {
        switch limit {
        case .total(let n): return "stops after \(n) events"
        case .rate(let n, let w): return "stops at more than \(n) events in \(w)"
        }
    }
}
