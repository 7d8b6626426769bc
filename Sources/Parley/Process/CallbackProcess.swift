/// A callback process's view of itself: what its handler (and its `initialize`) gets with
/// each message. It can do everything a process does without waiting (``ProcessContext``:
/// send, spawn, link, monitor, trap exits, register, timers) but has no `receive`, `select`
/// or `sleep`: a handler runs once per message and returns, so waiting inside it is a
/// compile-time error, not a run-time one. Work that must wait goes to a sequential process
/// or to ``ProcessContext/blocking(_:reply:)``, whose result arrives as a message.
///
/// ```swift
/// let counter = try Process.spawn(state: 0) { count, message, me in   // me: CallbackProcess
///     switch message {
///     case let n as Int: count += n
///     case let from as Pid: me.send(count, to: from)
///     default: break
///     }
///     return .continue
/// }
/// ```
public struct CallbackProcess: ProcessContext {
    public let _process: ProcessHandle

    init(core: ProcessCore) { _process = ProcessHandle(core: core) }
}

@available(*, unavailable, message: "a CallbackProcess value belongs to its process; send its pid instead")
extension CallbackProcess: Sendable {}
