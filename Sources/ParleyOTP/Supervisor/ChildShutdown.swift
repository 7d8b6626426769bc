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
