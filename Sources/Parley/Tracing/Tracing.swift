import CParleyShims
import DequeModule
import ParleyRuntime

/// What a trace reports (the flags of `erlang:trace/3`).
///
/// ```swift
/// let session = try Process.trace(pid, [.send, .receive])
/// ```
public struct TraceFlags: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Messages the process sends (`send`: `{trace, Pid, send, Msg, To}`).
    public static let send = TraceFlags(rawValue: 1)
    /// Messages put in its mailbox, by anyone (`'receive'`: `{trace, Pid, 'receive', Msg}`).
    public static let receive = TraceFlags(rawValue: 2)
    /// Its life: processes it spawns, links and unlinks it makes or gets, and its exit
    /// (`procs`: `spawn`, `link`, `unlink`, `exit`).
    public static let procs = TraceFlags(rawValue: 4)
    public static let all: TraceFlags = [.send, .receive, .procs]
}

/// When a trace stops by itself, so that tracing a busy process cannot flood the node
/// (recon_trace's `Max` and `{Max, TimeMs}`).
public enum TraceLimit: Sendable, Hashable {
    /// Stops after `n` events.
    case total(Int)
    /// Stops when more than `n` events come within `window`.
    case rate(Int, per: Duration)
}

/// One traced event, rendered when it happened (messages and reasons as text, at most
/// ``TraceSession/renderLimit`` characters).
public struct TraceEvent: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable {
        case send, receive, spawn, link, unlink, exit
        /// The session ended (its limit, the process's exit, or ``TraceSession/stop()``);
        /// `detail` says why. Always the last event.
        case stopped
    }
    /// 1, 2, 3… within the session.
    public let sequence: Int
    /// Nanoseconds since the session started.
    public let nanoseconds: UInt64
    /// The traced process.
    public let pid: String
    public let kind: Kind
    /// The other process: the receiver of a send, the child of a spawn, the other end of a link.
    public let other: String?
    /// The message, or the exit reason, or why the session stopped.
    public let detail: String?

    /// Erlang's shape: `{trace, <0.80.0>, send, hello, <0.81.0>}`.
    public var description: String {
        switch kind {
        case .send: return "{trace, \(pid), send, \(detail ?? ""), \(other ?? "")}"
        case .receive: return "{trace, \(pid), 'receive', \(detail ?? "")}"
        case .spawn, .link, .unlink: return "{trace, \(pid), \(kind.rawValue), \(other ?? "")}"
        case .exit: return "{trace, \(pid), exit, \(detail ?? "")}"
        case .stopped: return "trace of \(pid) stopped: \(detail ?? "")"
        }
    }
}

/// A trace of one process (``Process/trace(_:_:limit:onEvent:)``): the events so far (the
/// last ``capacity``), read at any time, and the means to stop it. A session stops by itself
/// at its limit and when the process exits; a stopped session keeps its events.
public final class TraceSession: Sendable {
    /// How many events a session keeps (older ones are dropped first; their sequence numbers
    /// show the gap).
    public static var capacity: Int { 10_000 }
    /// How many characters of a message or reason an event keeps.
    public static var renderLimit: Int { 500 }

    public let pid: Pid
    public let flags: TraceFlags
    public let limit: TraceLimit
    let startedAt = MonotonicClock.now
    private let onEvent: (@Sendable (TraceEvent) -> Void)?
    private let state = Locked(State())
    /// The process traced, until the session stops (then nil, so that the session does not
    /// keep a dead process's memory).
    private let target: Locked<ProcessCore?>

    struct State {
        var events = Deque<TraceEvent>()
        var sequence = 0
        var stopReason: String?
        /// The start times of the events in the current rate window.
        var window = Deque<UInt64>()

        /// Numbers and keeps one event, dropping the oldest beyond ``TraceSession/capacity``.
        mutating func append(_ kind: TraceEvent.Kind, of pid: Pid, other: Pid?, detail: String?, at nanoseconds: UInt64) -> TraceEvent {
            sequence += 1
            let event = TraceEvent(sequence: sequence, nanoseconds: nanoseconds, pid: pid.description, kind: kind,
                                   other: other?.description, detail: detail)
            events.append(event)
            if events.count > TraceSession.capacity { events.removeFirst() }
            return event
        }
    }

    init(core: ProcessCore, flags: TraceFlags, limit: TraceLimit, onEvent: (@Sendable (TraceEvent) -> Void)?) {
        self.pid = core.pid
        self.flags = flags
        self.limit = limit
        self.onEvent = onEvent
        self.target = Locked(core)
    }

    /// Whether the session still traces.
    public var isActive: Bool { state.withLock { $0.stopReason == nil } }
    /// Why it stopped, once it has.
    public var stopReason: String? { state.withLock { $0.stopReason } }
    /// The events kept, oldest first.
    public var events: [TraceEvent] { state.withLock { Array($0.events) } }
    /// The events after sequence number `sequence`, oldest first (for a live view).
    public func events(after sequence: Int) -> [TraceEvent] {
        state.withLock { s in
            guard let last = s.events.last, last.sequence > sequence else { return [] }
            let firstKept = s.events.first!.sequence
            return Array(s.events.dropFirst(max(0, sequence - firstKept + 1)))
        }
    }

    /// Stops the trace (nothing more is recorded); a no-op once stopped.
    public func stop() { finish("stopped") }

    /// Records one event unless the session has stopped; stops it if the limit is passed.
    func record(_ kind: TraceEvent.Kind, other: Pid? = nil, detail: @autoclosure () -> String? = nil) {
        // Rendered outside the lock: a message's description is user code.
        let text = detail().map { $0.count > Self.renderLimit ? String($0.prefix(Self.renderLimit)) + "…" : $0 }
        let now = MonotonicClock.now
        enum Outcome { case recorded(TraceEvent), overLimit, stopped }
        let outcome = state.withLock { s -> Outcome in
            guard s.stopReason == nil else { return .stopped }
            switch limit {
            case .total(let n):
                if s.sequence >= n { return .overLimit }
            case .rate(let n, let window):
                let span = MonotonicClock.nanoseconds(window)
                while let first = s.window.first, now &- first > span { s.window.removeFirst() }
                if s.window.count >= n { return .overLimit }
                s.window.append(now)
            }
            return .recorded(s.append(kind, of: pid, other: other, detail: text, at: now &- startedAt))
        }
        switch outcome {
        case .recorded(let e): onEvent?(e)
        case .overLimit:
            switch limit {
            case .total(let n): finish("limit: \(n) events")
            case .rate(let n, let w): finish("rate limit: more than \(n) events in \(w)")
            }
        case .stopped: break
        }
    }

    /// Ends the session once: a last `stopped` event, and the process forgets it.
    func finish(_ reason: String) {
        let event = state.withLock { s -> TraceEvent? in
            guard s.stopReason == nil else { return nil }
            s.stopReason = reason
            return s.append(.stopped, of: pid, other: nil, detail: reason, at: MonotonicClock.now &- startedAt)
        }
        guard let event else { return }
        if let core = target.withLock({ t -> ProcessCore? in defer { t = nil }; return t }) {
            core.detachTrace(self)
        }
        onEvent?(event)
    }
}

extension ProcessCore {
    /// The process whose code runs on this thread: a callback process's handler, or a
    /// sequential process's own task (not a child task of it). Costs a task-local lookup:
    /// for tracing only.
    static func running() -> ProcessCore? {
        guard parley_tracing() != 0 else { return nil }
        if let p = parley_get_running_callback() { return Unmanaged<ProcessCore>.fromOpaque(p).takeUnretainedValue() }
        return SequentialProcess.currentOwned()
    }

    /// The session tracing this process with any of `flags`, if tracing runs anywhere (one
    /// relaxed load of a global when it does not).
    @inline(__always)
    final func traceSession(_ flags: TraceFlags) -> TraceSession? {
        guard parley_tracing() != 0, traced.load(ordering: .relaxed) else { return nil }
        return tracedSlow(flags)
    }

    @inline(never)
    final func tracedSlow(_ flags: TraceFlags) -> TraceSession? {
        guard let session = withShared({ $0.extras?.trace }), !session.flags.isDisjoint(with: flags) else { return nil }
        return session
    }

    /// Makes `session` this process's trace (replacing one already running); false if the
    /// process is dead.
    final func attachTrace(_ session: TraceSession) -> Bool {
        let (attached, old) = withShared { s -> (Bool, TraceSession?) in
            guard s.status != .dead else { return (false, nil) }
            let e = s.ensureExtras()
            let old = e.trace
            e.trace = session
            traced.store(true, ordering: .relaxed)
            return (true, old)
        }
        if attached && old == nil { parley_trace_sessions_add(1) }
        old?.finish("replaced by a new trace")
        return attached
    }

    /// The process forgets `session` (if it is still its trace).
    final func detachTrace(_ session: TraceSession) {
        let detached = withShared { s -> Bool in
            guard let e = s.extras, e.trace === session else { return false }
            e.trace = nil
            traced.store(false, ordering: .relaxed)
            return true
        }
        if detached { parley_trace_sessions_add(-1) }
    }
}

extension Process {
    /// Traces `pid`'s sends, receives and life events (Erlang's `erlang:trace(Pid, true,
    /// Flags)`, with recon_trace's protection): each event is rendered as it happens and kept
    /// in the returned session, and given to `onEvent` if set (called on the thread where
    /// the event happened; keep it short). The session stops by itself at `limit`, and when
    /// the process exits (after its `exit` event). One trace per process: a new one replaces
    /// the old (which stops).
    ///
    /// Nothing is traced by default. While no process is traced, the runtime's cost is one
    /// relaxed load of a global on each send, delivery, link and exit; while some process is
    /// traced, a second relaxed load, of the sending or receiving process's own flag (only a
    /// traced process takes its lock for the trace).
    ///
    /// ```swift
    /// let session = try Process.trace(server, [.receive, .procs], limit: .total(100))
    /// // … later
    /// for e in session.events { print(e) }      // {trace, <0.81.0>, 'receive', ping}
    /// session.stop()
    /// ```
    /// - Throws: ``ProcessError/noproc(_:)`` if `pid` is not a live process of this OS process.
    @discardableResult
    public static func trace(_ pid: Pid, _ flags: TraceFlags = .all, limit: TraceLimit = .rate(100, per: .seconds(1)),
                             onEvent: (@Sendable (TraceEvent) -> Void)? = nil) throws(ProcessError) -> TraceSession {
        guard let core = pid.process, core.isAlive else { throw .noproc(pid) }
        let session = TraceSession(core: core, flags: flags, limit: limit, onEvent: onEvent)
        guard core.attachTrace(session) else { throw .noproc(pid) }
        return session
    }

    /// The session tracing `pid` now, if any.
    public static func traceSession(of pid: Pid) -> TraceSession? {
        guard let core = pid.process else { return nil }
        return core.withShared { $0.extras?.trace }.flatMap { $0.isActive ? $0 : nil }
    }
}
