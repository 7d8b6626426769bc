import Parley

/// What a task's owner gets when it asks for the result: Elixir's `{:ok, value}` and
/// `{:exit, reason}`.
public enum TaskResult<Value: Sendable>: Sendable {
    case ok(Value)
    case exit(ExitReason)

    /// The value, or `nil` if the task exited.
    public var value: Value? {
        if case .ok(let v) = self { return v }
        return nil
    }
}

/// Errors from awaiting a task.
public enum TaskError: Error, Sendable, CustomStringConvertible {
    /// No result within the timeout (Elixir's `await` exits the caller; here it throws and
    /// the task keeps running).
    case timeout(Duration)
    /// The task exited without a result, with this reason.
    case exited(ExitReason)
    /// Only the process that started a task may await it (Elixir raises `ArgumentError`).
    case notOwner(owner: Pid)
    /// The result was already taken by an earlier await, yield or shutdown.
    case alreadyTaken
    /// A task's result is delivered to a process: call from inside one.
    case noProcess
    /// The supervisor could not start the task.
    case start(SupervisorError)

    public var description: String {
        switch self {
        case .timeout(let d): return "task timed out after \(d)"
        case .exited(let r): return "task exited: \(r)"
        case .notOwner(let o): return "only the owner \(o) may await this task"
        case .alreadyTaken: return "the task's result was already taken"
        case .noProcess: return "tasks are awaited from inside a process"
        case .start(let e): return "could not start the task: \(e)"
        }
    }
}

/// The message an owner sends a task started under a supervisor once it monitors it (Elixir's
/// `{owner, ref, reply_to, callers, mfa}`): the task runs its function only after this.
struct TaskGo: Sendable {
    let tag: Reference
}

/// The message a task sends its owner: `{Ref, Result}`.
struct TaskReply: Sendable {
    let tag: Reference
    let index: Int
    let result: any Sendable
}

/// A process started to compute one value for its owner: Elixir's `Task`.
///
/// ```swift
/// try await Process.run { me in
///     let task = me.async { _ in try await fetchPrice("swift") }   // linked and monitored
///     doOtherWork()
///     let price = try await task.await(timeout: .seconds(5))
/// }
/// ```
///
/// The result comes back to an alias of the owner, so after ``shutdown(timeout:)`` a late
/// result never reaches the owner's mailbox. A task started with ``Process/async(_:)`` is
/// linked: if it crashes, so does its owner (unless it traps exits), as in Elixir. Use
/// ``TaskSupervisor/asyncNolink(_:)`` when a failure should come back as a value instead.
public struct ProcessTask<Value: Sendable>: Sendable, CustomStringConvertible {
    /// The task's process.
    public let pid: Pid
    /// The owner's monitor of the task.
    public let ref: Reference
    /// The process that may await it.
    public let owner: Pid
    let tag: Reference

    public var description: String { "%Task{pid: \(pid), ref: \(ref), owner: \(owner)}" }

    /// Waits for the result (`Task.await/2`, default 5000 ms).
    /// - Throws: ``TaskError``: `.timeout` (the task keeps running), `.exited(reason)` if it
    ///   died without a result, `.notOwner` from another process.
    public func await(timeout: Duration? = .milliseconds(5000)) async throws -> Value {
        switch try await yield(timeout: timeout) {
        case .ok(let v)?: return v
        case .exit(let r)?: throw TaskError.exited(r)
        case nil: throw TaskError.timeout(timeout ?? .zero)
        }
    }

    /// Waits up to `timeout` (`Task.yield/2`): the result, or `nil` if none came (the task
    /// keeps running and can be awaited again).
    public func yield(timeout: Duration? = .milliseconds(5000)) async throws -> TaskResult<Value>? {
        let me = try await ownerProcess()
        let message = try await me.receive(after: timeout ?? .seconds(1_000_000_000)) { m -> (any Sendable)? in
            if let r = m as? TaskReply, r.tag == tag { return r }
            if let d = m as? DownMessage, d.ref == ref { return d }
            return nil
        }
        return finish(message, me)
    }

    /// Stops the task (`Task.shutdown/2`): unlinks, sends `shutdown`, waits up to `timeout`
    /// for it to exit (then kills it; `nil` timeout kills at once, as `:brutal_kill`).
    /// Returns the result if it arrived meanwhile, `.exit(reason)` if the task had already
    /// died of something else, `nil` otherwise.
    @discardableResult
    public func shutdown(timeout: Duration? = .milliseconds(5000)) async throws -> TaskResult<Value>? {
        let me = try await ownerProcess()
        me.unlink(pid)
        me.exit(pid, timeout == nil ? .kill : .shutdown)
        var message = try await me.receive(after: timeout ?? .seconds(1_000_000_000)) { m -> (any Sendable)? in
            if let r = m as? TaskReply, r.tag == tag { return r }
            if let d = m as? DownMessage, d.ref == ref { return d }
            return nil
        }
        if message == nil {
            me.exit(pid, .kill)
            message = try await me.receive { m -> (any Sendable)? in
                if let r = m as? TaskReply, r.tag == tag { return r }
                if let d = m as? DownMessage, d.ref == ref { return d }
                return nil
            }
        }
        // A stale EXIT from the link (if it died before the unlink) is not the owner's business.
        _ = try await me.receive(ExitMessage.self, after: .zero, where: { $0.from == pid })
        switch finish(message, me) {
        case .exit(let r)? where r.isShutdown || { if case .killed = r { return true } else { return false } }():
            return nil
        case let other:
            return other
        }
    }

    private func ownerProcess() async throws -> Process {
        guard let me = await Process.current else { throw TaskError.noProcess }
        guard me.pid == owner else { throw TaskError.notOwner(owner: owner) }
        return me
    }

    private func finish(_ message: (any Sendable)?, _ me: Process) -> TaskResult<Value>? {
        switch message {
        case let r as TaskReply:
            me.demonitor(ref, flush: true)
            me.unalias(tag)
            guard let v = r.result as? Value else { return .exit(.custom("bad task result \(type(of: r.result))")) }
            return .ok(v)
        case let d as DownMessage:
            me.unalias(tag)
            return .exit(d.reason)
        default:
            return nil
        }
    }
}

extension Process {
    /// Starts a task linked to and monitored by this process (`Task.async/1`). Await it with
    /// ``ProcessTask/await(timeout:)`` from this process.
    ///
    /// ```swift
    /// let tasks = urls.map { url in me.async { _ in try await download(url) } }
    /// var pages: [Data] = []
    /// for t in tasks { pages.append(try await t.await()) }
    /// ```
    public func async<Value: Sendable>(_ body: @escaping @Sendable @concurrent (Process) async throws -> Value) -> ProcessTask<Value> {
        let tag = alias()
        // Linked and monitored in one step (spawn_opt with link and monitor), so even a task
        // that fails at once reports its real reason.
        let (pid, ref) = try! spawnMonitor(SpawnOptions(link: true)) { t in
            let value = try await body(t)
            tag.send(TaskReply(tag: tag, index: 0, result: value))
        }
        return ProcessTask(pid: pid, ref: ref, owner: self.pid, tag: tag)
    }

    /// Runs `body` over `items` in tasks, at most `maxConcurrency` at a time, and returns
    /// their results as an async sequence (`Task.async_stream/3`), in input order when
    /// `ordered` (the default). The tasks are linked to this process, as Elixir's are. A task
    /// that overruns `timeout` is killed and yields `.exit(timeout)` (Elixir's
    /// `on_timeout: :kill_task`).
    ///
    /// ```swift
    /// for try await result in me.asyncStream(1...100, maxConcurrency: 8) { _, n in n * n } {
    ///     print(result.value!)
    /// }
    /// ```
    public func asyncStream<Input: Sendable, Value: Sendable>(
        _ items: some Sequence<Input>, maxConcurrency: Int = Scheduler.shared.count, ordered: Bool = true,
        timeout: Duration = .milliseconds(5000),
        _ body: @escaping @Sendable (Process, Input) async throws -> Value
    ) -> TaskStream<Input, Value> {
        TaskStream(owner: pid, items: Array(items), maxConcurrency: max(1, maxConcurrency), ordered: ordered, timeout: timeout, link: true, body: body)
    }
}
