import Logging
import Parley

extension Process {
    /// Stops a child the way supervisor.erl's `shutdown/2` does: monitor, unlink, send
    /// `shutdown` (or `kill`), wait for DOWN up to the timeout, then `kill`. Returns the
    /// reason it exited with.
    func shutdownChild(_ pid: Pid, _ shutdown: ChildSpec.Shutdown) async throws -> ExitReason {
        let ref = monitor(pid)
        unlink(pid)
        // If it already died, its EXIT is here: that reason is the real one.
        let early = try await receive(ExitMessage.self, after: .zero, where: { $0.from == pid })
        switch shutdown {
        case .brutalKill:
            exit(pid, .kill)
        case .timeout, .infinity:
            exit(pid, .shutdown)
        }
        var timeout: Duration? = nil
        if case .timeout(let t) = shutdown { timeout = t }
        var down: DownMessage?
        if let timeout {
            down = try await receive(DownMessage.self, after: timeout, where: { $0.ref == ref })
            if down == nil {
                exit(pid, .kill)
                down = try await receive(DownMessage.self, where: { $0.ref == ref })
            }
        } else {
            down = try await receive(DownMessage.self, where: { $0.ref == ref })
        }
        return early?.reason ?? down!.reason
    }
}

/// What Supervisor and DynamicSupervisor share: their calls, the EXIT of a child and
/// their `terminate`, as supervisor.erl is one gen_server for both shapes.
protocol SupervisorServer: AsyncGenServer where Call == SupervisorRequest, Reply == SupervisorReply {
    /// For reports.
    var name: String { get }
    mutating func handle(_ request: SupervisorRequest, _ me: Process) async -> SupervisorReply
    /// Restarts `pid` by the rules if it is a child; throws ``ProcessExit`` with `shutdown`
    /// when the restart intensity is exceeded.
    mutating func childExited(_ pid: Pid, reason: ExitReason, _ me: Process) async throws
    /// Stops every running child.
    mutating func terminateAll(_ me: Process) async
}

extension SupervisorServer {
    mutating func handleCall(_ request: SupervisorRequest, from: Gen.From, _ me: Process) async throws -> CallResult {
        .reply(await handle(request, me))
    }

    /// EXIT from a child: restart it by the rules; intensity exceeded stops the supervisor
    /// with `shutdown` (its `terminate` then stops the other children).
    mutating func handleInfo(_ message: any Sendable, _ me: Process) async throws -> HandleResult {
        guard let exit = message as? ExitMessage else {
            SupervisorLog.logger.warning("supervisor \(name) received an unexpected message: \(message)")
            return .noreply
        }
        do {
            try await childExited(exit.from, reason: exit.reason, me)
        } catch let e as ProcessExit {
            return .stop(e.reason)
        }
        return .noreply
    }

    mutating func terminate(_ reason: ExitReason, _ me: Process) async {
        await terminateAll(me)
    }

    /// Starts the supervisor (trapping exits, linked to `parent` if given, registered under
    /// `name`) and returns its pid once its `initialize` has started the children.
    consuming func startSupervisor(name: ServerName?, parent: Process?) async throws(StartError) -> Pid {
        var options = GenServerOptions(trapExit: true)
        options.behaviour = "supervisor"  // DynamicSupervisor too, as in Elixir
        if let parent { return try await startLink(parent, name: name, options: options).pid! }
        return try await start(name: name, options: options).pid!
    }
}

/// Stops a behaviour's process through the sys protocol and waits until it has exited
/// (`gen_server:stop/3`, `Supervisor.stop/3`): it runs its own cleanup first.
func stopProcess(_ pid: Pid, _ reason: ExitReason, timeout: Duration?) async throws(Gen.CallError) {
    do {
        _ = try await Gen.systemCall(pid, .terminate(reason), timeout: timeout)
    } catch {
        if case .exited = error { return }
        throw error
    }
}
