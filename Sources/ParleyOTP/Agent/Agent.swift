import Parley

/// Elixir's `Agent`: a process that holds a state, read and changed with functions.
///
/// ```swift
/// let counter = try Agent.start { 0 }
/// try await counter.update { $0 += 1 }
/// let n = try await counter.get { $0 }                       // 1
/// let old = try await counter.getAndUpdate { n in defer { n = 0 }; return n }
/// counter.cast { $0 += 10 }                                  // doesn't wait
/// ```
///
/// The functions run in the agent's process, one at a time: an agent is a ``GenServer``
/// whose calls carry closures.
public struct Agent<State>: Sendable {
    /// The agent's server.
    public let server: ServerRef<AgentServer<State>>

    /// The agent's pid.
    public var pid: Pid { server.pid! }

    /// Starts an agent whose state is `initial()`, computed in the agent's process (`Agent.start/2`).
    public static func start(name: ServerName? = nil, _ initial: @escaping @Sendable () throws -> State) throws(StartError) -> Agent {
        Agent(server: try AgentServer(initial: initial).start(name: name))
    }

    /// Starts an agent linked to `parent` (`Agent.start_link/2`).
    public static func startLink(_ parent: Process, name: ServerName? = nil, _ initial: @escaping @Sendable () throws -> State) throws(StartError) -> Agent {
        Agent(server: try AgentServer(initial: initial).startLink(parent, name: name))
    }

    /// A child spec for an agent under a supervisor.
    public static func childSpec(id: String, name: ServerName? = nil, _ initial: @escaping @Sendable () throws -> State) -> ChildSpec {
        ChildSpec(id: id) { me in try AgentServer(initial: initial).startLink(me, name: name).pid }
    }

    /// Reads a value from the state (`Agent.get/3`).
    public func get<T: Sendable>(timeout: Duration? = Gen.defaultTimeout, _ read: @escaping @Sendable (State) -> T) async throws(Gen.CallError) -> T {
        try await perform(timeout) { state in read(state) }
    }

    /// Changes the state and waits until it is done (`Agent.update/3`).
    public func update(timeout: Duration? = Gen.defaultTimeout, _ change: @escaping @Sendable (inout State) -> Void) async throws(Gen.CallError) {
        let _: AgentDone = try await perform(timeout) { state in change(&state); return AgentDone() }
    }

    /// Changes the state and returns a value computed with it (`Agent.get_and_update/3`).
    public func getAndUpdate<T: Sendable>(timeout: Duration? = Gen.defaultTimeout, _ change: @escaping @Sendable (inout State) -> T) async throws(Gen.CallError) -> T {
        try await perform(timeout, change)
    }

    /// Changes the state without waiting (`Agent.cast/2`).
    public func cast(_ change: @escaping @Sendable (inout State) -> Void) {
        server.cast(AgentServer<State>.Cast(change: change))
    }

    /// Stops the agent (`Agent.stop/3`).
    public func stop(_ reason: ExitReason = .normal, timeout: Duration? = nil) async throws(Gen.CallError) {
        try await server.stop(reason, timeout: timeout)
    }

    private func perform<T: Sendable>(_ timeout: Duration?, _ body: @escaping @Sendable (inout State) -> T) async throws(Gen.CallError) -> T {
        let reply = try await server.call(AgentServer<State>.Call { state in body(&state) }, timeout: timeout)
        guard let value = reply.value as? T else { throw .badReply("expected \(T.self)") }
        return value
    }
}

struct AgentDone: Sendable {}

/// The GenServer behind ``Agent``.
public struct AgentServer<State>: GenServer {
    let initial: @Sendable () throws -> State
    var state: State?

    init(initial: @escaping @Sendable () throws -> State) {
        self.initial = initial
    }

    public struct Call: Sendable {
        let body: @Sendable (inout State) -> any Sendable
    }
    public struct Cast: Sendable {
        let change: @Sendable (inout State) -> Void
    }
    public struct Reply: Sendable {
        let value: any Sendable
    }

    public mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        state = try initial()
        return .ok
    }

    public mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        .reply(Reply(value: request.body(&state!)))
    }

    public mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
        request.change(&state!)
        return .noreply
    }
}
