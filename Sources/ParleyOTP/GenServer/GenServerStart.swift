import Logging
import Parley

/// How a server is registered and found: a local name (Erlang's `{local, Name}`) or a key in
/// a ``NameRegistry`` such as ``Registry`` (`{via, Module, Key}`).
///
/// ```swift
/// let names = Registry<String, Void>(keys: .unique)
/// let counter = try Counter().start(name: .via(names, "counter-1"))
/// try await ServerRef<Counter>(name: .via(names, "counter-1")).call(.get)
/// ```
public enum ServerName: Sendable, CustomStringConvertible {
    case local(String)
    case via(any NameRegistry, any Hashable & Sendable)

    /// The pid registered under this name now, if any.
    public var pid: Pid? {
        switch self {
        case .local(let n): return Process.whereis(n)
        case .via(let r, let k): return r.whereisName(k)
        }
    }

    public var description: String {
        switch self {
        case .local(let n): return n
        case .via(let r, let k): return "{via, \(type(of: r)), \(k)}"
        }
    }
}

/// Options for starting a server (gen_server's start options plus Parley's spawn options).
public struct GenServerOptions: Sendable {
    /// Trap exits (`process_flag(trap_exit, true)` in init), so that a parent's exit signal
    /// runs `terminate`. Supervisors' children usually want this when `terminate` matters.
    public var trapExit = false
    /// Bound the mailbox.
    public var mailbox: MailboxLimit? = nil
    /// A label for introspection.
    public var label: String? = nil
    /// The node to start on (``SpawnOptions/node``); nil: the starting process's node, or
    /// ``LocalNode/current``.
    public var node: LocalNode? = nil
    /// Let many processes cast or call to the server in parallel (``SpawnOptions/parallelSend``,
    /// the BEAM's parallel signal sending for `{message_queue_data, off_heap}`): senders stop
    /// taking turns at its mailbox's lock; each sender's requests keep their order, requests
    /// of different senders are no longer in causal order. Ignored with a ``mailbox`` bound.
    ///
    /// ```swift
    /// let metrics = try Collector().start(options: GenServerOptions(parallelSend: true))
    /// ```
    public var parallelSend = false
    /// What introspection shows as the process's behaviour (a supervisor is a gen_server).
    package var behaviour = "gen_server"
    public init(trapExit: Bool = false, mailbox: MailboxLimit? = nil, label: String? = nil, node: LocalNode? = nil,
                parallelSend: Bool = false) {
        self.node = node
        self.trapExit = trapExit
        self.mailbox = mailbox
        self.label = label
        self.parallelSend = parallelSend
    }

    /// The spawn options a server started with these options gets, linked to its starter or
    /// not, registered under `name` if it is a local one (a `via` name registers in
    /// `initialize`). Both server kinds (GenServer, AsyncGenServer) start through it, so an
    /// option reaches both or neither.
    func spawnOptions(link: Bool, name: ServerName?) -> SpawnOptions {
        var spawn = SpawnOptions(link: link, trapExit: trapExit, label: label, node: node)
        spawn.mailbox = mailbox
        spawn.parallelSend = parallelSend
        spawn.behaviour = behaviour
        if case .local(let n)? = name { spawn.name = n }
        return spawn
    }
}

extension GenServer {
    /// Starts the server, not linked to anyone (`GenServer.start/3`). Returns once
    /// ``initialize(_:)`` has run in the new process.
    /// - Throws: ``StartError``: `.alreadyStarted` if the name is taken, `.ignored`, or
    ///   `.failed(reason)` if `initialize` threw or returned `.stop`.
    @inlinable
    public consuming func start(name: ServerName? = nil, options: GenServerOptions = GenServerOptions()) throws(StartError) -> ServerRef<Self> {
        try GenServerProcess.start(self, parent: nil, name: name, options: options)
    }

    /// Starts the server linked to `parent` (`GenServer.start_link/3`): what a child spec's
    /// start function calls with the supervisor's process.
    @inlinable
    public consuming func startLink(_ parent: Process, name: ServerName? = nil, options: GenServerOptions = GenServerOptions()) throws(StartError) -> ServerRef<Self> {
        try GenServerProcess.start(self, parent: parent, name: name, options: options)
    }
}

extension GenServer where Self: Sendable {
    /// A child spec that starts a copy of this value, linked to the supervisor, on every
    /// (re)start (Elixir's `child_spec/1`).
    ///
    /// ```swift
    /// let sup = try await Supervisor.start([Counter().childSpec(id: "counter", name: .local("counter"))], strategy: .oneForOne)
    /// ```
    public func childSpec(
        id: String, name: ServerName? = nil, restart: ChildSpec.Restart = .permanent,
        shutdown: ChildSpec.Shutdown = .timeout(.milliseconds(5000)), options: GenServerOptions = GenServerOptions()
    ) -> ChildSpec {
        let template = self
        return ChildSpec(id: id, restart: restart, shutdown: shutdown, type: .worker) { me in
            try template.startLink(me, name: name, options: options).pid
        }
    }
}
