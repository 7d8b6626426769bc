import ParleyRuntime

/// Why starting a process with an initializer failed: the outcomes of OTP's
/// `proc_lib:start_link/3` other than `{ok, Pid}`.
public enum StartError: Error, Sendable, CustomStringConvertible {
    /// The initializer returned `nil` (OTP's `ignore`): the process exited `normal`.
    case ignored
    /// The initializer threw, or the process was killed while it ran; the process exited
    /// with this reason (OTP's `{error, Reason}`).
    case failed(ExitReason)
    /// The name is already registered (OTP's `{error, {already_started, Pid}}`).
    case alreadyStarted(Pid)
    /// Any other process error (for example ``ProcessError/linkWithoutParent``).
    case process(ProcessError)

    public var description: String {
        switch self {
        case .ignored: return "ignore"
        case .failed(let r): return "init failed: \(r)"
        case .alreadyStarted(let p): return "already_started: \(p)"
        case .process(let e): return e.description
        }
    }
}

extension Process {
    /// Starts a callback process whose `initialize` runs as the new process, on the calling
    /// thread, before it takes any message; returns once it has run, as OTP's
    /// `proc_lib:start_link/3` does with `init_ack`. The state `initialize` returns is the
    /// handler's first state. GenServer and Supervisor are built on this.
    ///
    /// - `initialize` returns `nil` (OTP's `ignore`): the process exits `normal` and this
    ///   throws ``StartError/ignored``.
    /// - `initialize` throws (``ProcessExit`` gives the reason): the process exits with that
    ///   reason, this throws ``StartError/failed(_:)``, and the parent gets no exit signal
    ///   (it is unlinked first, as OTP 26's `proc_lib` does).
    ///
    /// ```swift
    /// let pid = try Process.start(state: Int.self, initialize: { me in 0 }) { count, message, me in
    ///     if message is String { count += 1 }
    ///     return .continue
    /// }
    /// ```
    @discardableResult
    public static func start<State>(
        _ options: SpawnOptions = SpawnOptions(), state: State.Type = State.self,
        initialize: (CallbackProcess) throws -> sending State?,
        handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
    ) throws(StartError) -> Pid {
        try startCallback(options, parent: nil, initialize: initialize, handler: handler)
    }

    static func startCallback<State>(
        _ options: SpawnOptions, parent: ProcessCore?,
        initialize: (CallbackProcess) throws -> sending State?,
        handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
    ) throws(StartError) -> Pid {
        let process = CallbackCore<State>(state: nil, limit: options.mailbox, initialStatus: .scheduled,
                                          hosted: LocalNode.hosted(options, parent: parent), handler: handler)
        do throws(ProcessError) {
            try prepare(process, options, parent: parent, monitorRef: nil)
        } catch {
            if case .nameTaken(_, let owner) = error { throw .alreadyStarted(owner) }
            throw .process(error)
        }
        let outcome = process.start(initialize)
        switch outcome {
        case .started:
            return process.pid
        case .ignored, .failed:
            let reason: ExitReason
            if case .failed(let r) = outcome { reason = r } else { reason = .normal }
            // The starter learns the outcome from the error, not from an exit signal.
            if let parent {
                parent.removeLink(process.pid)
                process.removeLink(parent.pid)
            }
            if process.isAlive { ExitSignals.exit(process, reason: reason) }
            if case .ignored = outcome { throw .ignored }
            throw .failed(reason)
        }
    }
}

extension ProcessContext {
    /// ``Process/start(_:state:initialize:handler:)`` from this process: with `options.link`,
    /// the new process is linked to this one before `initialize` runs (`start_link`).
    @discardableResult
    public func start<State>(
        _ options: SpawnOptions = SpawnOptions(), state: State.Type = State.self,
        initialize: (CallbackProcess) throws -> sending State?,
        handler: @escaping @Sendable (inout State, any Sendable, CallbackProcess) throws -> Next
    ) throws(StartError) -> Pid {
        try Process.startCallback(options, parent: core, initialize: initialize, handler: handler)
    }
}
