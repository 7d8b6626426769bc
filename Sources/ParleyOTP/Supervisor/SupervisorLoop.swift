import DequeModule
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

/// What Supervisor and DynamicSupervisor share: the loop that reads their mailbox, as
/// `supervisor.erl` is one gen_server for both shapes.
protocol SupervisorLoop {
    var me: Process { get }
    var name: String { get }
    var parent: Pid? { get }
    /// What the sys `get_state` request returns.
    var sysState: any Sendable { get }
    /// Handles the exit of `pid` if it is a child (restarting it by the rules); throws
    /// ``ProcessExit`` to end the supervisor (intensity exceeded).
    mutating func childExited(_ pid: Pid, reason: ExitReason) async throws
    mutating func handle(_ request: SupervisorRequest) async -> SupervisorReply
    /// Stops every running child.
    mutating func terminateAll() async
}

extension SupervisorLoop {
    /// Serves the supervisor's mailbox until it exits: EXIT from the parent or a sys
    /// `terminate` stop the children and end it; EXIT from a child goes to `childExited`;
    /// calls are answered with gen_server's wire shapes.
    mutating func serve() async throws {
        while true {
            let message = try await me.receive()
            switch message {
            case let exit as ExitMessage:
                if exit.from == parent {
                    await terminateAll()
                    throw ProcessExit(exit.reason)
                }
                try await childExited(exit.from, reason: exit.reason)
            case let call as Gen.CallMessage:
                guard let request = call.request as? SupervisorRequest else {
                    Gen.reply(call.from, Gen.Rejected(reason: "supervisor \(name) handles SupervisorRequest, not \(type(of: call.request))"))
                    continue
                }
                Gen.reply(call.from, await handle(request))
            case let system as Gen.SystemMessage:
                switch system.request {
                case .terminate(let reason):
                    await terminateAll()
                    throw ProcessExit(reason)
                case .getState:
                    Gen.reply(system.from, sysState)
                }
            default:
                SupervisorLog.logger.warning("supervisor \(name) received an unexpected message: \(message)")
            }
        }
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
