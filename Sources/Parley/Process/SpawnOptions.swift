/// Options for spawning a process (Erlang's `spawn_opt`, plus a registered name and a
/// mailbox bound).
///
/// ```swift
/// var options = SpawnOptions()
/// options.name = "logger"
/// options.mailbox = MailboxLimit(capacity: 10_000, overflow: .dropOldest)
/// let pid = try Process.spawn(options) { me in
///     while true { print(try await me.receive()) }
/// }
/// ```
public struct SpawnOptions: Sendable {
    /// Link the new process to the spawning process (`spawn_link`). Needs a spawning process:
    /// use it with `spawn` on a ``Process`` value; the static `Process.spawn` throws
    /// ``ProcessError/linkWithoutParent``.
    public var link = false
    /// Register the process under this name before it runs; a taken name is an error.
    public var name: String?
    /// Bound the mailbox; `nil` (the default) leaves it unbounded, as on the BEAM.
    public var mailbox: MailboxLimit?
    /// Start with exit trapping on (`process_flag(trap_exit, true)`).
    public var trapExit = false
    /// A label shown by introspection (OTP 27's `proc_lib:set_label/1`).
    public var label: String?
    /// Let many processes send to this one in parallel (``Process/enableParallelSend()``,
    /// the BEAM's parallel signal sending optimization): senders stop taking turns at its
    /// mailbox's lock, and order between different senders is no longer causal (each
    /// sender's own order is kept). Ignored with a ``mailbox`` bound.
    ///
    /// ```swift
    /// var options = SpawnOptions()
    /// options.parallelSend = true
    /// let collector = try Process.spawn(options, state: 0) { total, m, _ in
    ///     total += m as! Int
    ///     return .continue
    /// }
    /// ```
    public var parallelSend = false
    /// The node to spawn on; nil (the default) means the spawning process's node, or
    /// ``LocalNode/current`` for a spawn from outside any process.
    public var node: LocalNode?
    /// The OTP behaviour the process runs (`gen_server`, `supervisor`), set by ParleyOTP so
    /// that introspection and the observer know which processes answer the sys protocol.
    package var behaviour: String?

    public init(link: Bool = false, name: String? = nil, mailbox: MailboxLimit? = nil, trapExit: Bool = false, label: String? = nil,
                node: LocalNode? = nil) {
        self.node = node
        self.link = link
        self.name = name
        self.mailbox = mailbox
        self.trapExit = trapExit
        self.label = label
    }
}
