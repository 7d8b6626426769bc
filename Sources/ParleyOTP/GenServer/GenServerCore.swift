import Parley

/// A GenServer's message handling without its process, for a process kind that wraps a
/// GenServer and handles some messages of its own first (ParleyDistribution's
/// `DistributedRegistry` runs its `HandoffServer` workers with it). Not public API.
@_spi(Handoff)
public struct GenServerCore<Server: GenServer> {
    var process: GenServerProcess<Server>

    public init(_ server: consuming Server, name: ServerName? = nil) {
        process = GenServerProcess(server: server, parent: nil, name: name)
    }

    /// The server's state.
    public var server: Server {
        get { process.server }
        _modify { yield &process.server }
    }

    /// Runs `initialize`, as `GenServer.start` does: `false` for `.ignore`; throws
    /// `ProcessExit` for `.stop`; a continue runs before the next message is handled.
    public mutating func initialize(_ me: CallbackProcess) throws -> Bool {
        try process.runInitialize(me)
    }

    /// Handles one message as the GenServer's own process would.
    public mutating func handle(_ message: any Sendable, _ me: CallbackProcess) -> Next {
        process.handle(message, me)
    }

    /// Runs `terminate` with `reason` (and reports an abnormal one), as a stop does.
    public mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess) -> Next {
        process.terminate(reason, me)
    }
}
