import DequeModule
import Logging
import Parley

/// OTP's restart intensity: more than `intensity` restarts within `period` and the
/// supervisor gives up.
struct RestartIntensity {
    let intensity: Int
    let period: Duration
    /// Restart times, oldest first: expired ones leave from the front, so a restart costs
    /// O(1) however high the intensity.
    private var times = Deque<ContinuousClock.Instant>()

    init(intensity: Int, period: Duration) {
        self.intensity = intensity
        self.period = period
    }

    /// Records a restart now; false if that makes more than `intensity` within `period`
    /// (supervisor.erl's `add_restart/1`).
    mutating func add(now: ContinuousClock.Instant = .now) -> Bool {
        times.append(now)
        let horizon = now - period
        while let first = times.first, first < horizon { times.removeFirst() }
        return times.count <= intensity
    }

    var total = 0
}

enum SupervisorLog {
    static let logger = Logger(label: "parley.supervisor")

    /// A supervisor report, as OTP's `supervisor_report` with its context.
    static func report(_ context: String, supervisor: String, child: String, pid: Pid?, reason: ExitReason, restarts: Int, level: Logger.Level = .error) {
        logger.log(level: level, "supervisor report: \(context)", metadata: [
            "supervisor": "\(supervisor)", "child": "\(child)", "pid": "\(pid.map { "\($0)" } ?? "undefined")",
            "reason": "\(reason)", "restarts": "\(restarts)",
        ])
    }
}

/// Requests a supervisor answers, as calls.
enum SupervisorRequest: Sendable {
    case awaitStarted
    case whichChildren
    case countChildren
    case startChild(ChildSpec)
    case terminateChild(String)
    case terminatePid(Pid)
    case restartChild(String)
    case deleteChild(String)
}

enum SupervisorReply: Sendable {
    case ok
    case started(Pid?)
    case children([ChildInfo])
    case counts(ChildCounts)
    case error(SupervisorError)
}

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

/// The pid a `startChild`/`restartChild` reply carries (`nil`: the start ignored).
func supervisorStarted(_ pid: Pid, _ request: SupervisorRequest) async throws(SupervisorError) -> Pid? {
    guard case .started(let p) = try await supervisorReply(pid, request) else { return nil }
    return p
}

/// `which_children/1` for either kind of supervisor.
func supervisorChildren(_ pid: Pid) async throws(SupervisorError) -> [ChildInfo] {
    guard case .children(let c) = try await supervisorReply(pid, .whichChildren) else { return [] }
    return c
}

/// `count_children/1` for either kind of supervisor.
func supervisorCounts(_ pid: Pid) async throws(SupervisorError) -> ChildCounts {
    guard case .counts(let c) = try await supervisorReply(pid, .countChildren) else { throw .call(.badReply("counts")) }
    return c
}

/// The ok/error shape of a supervisor's reply, as the public API returns it.
func supervisorReply(_ pid: Pid, _ request: SupervisorRequest) async throws(SupervisorError) -> SupervisorReply {
    let reply: any Sendable
    do {
        reply = try await Gen.call(pid, request, timeout: nil)
    } catch {
        throw .call(error)
    }
    guard let r = reply as? SupervisorReply else { throw .call(.badReply("\(type(of: reply))")) }
    if case .error(let e) = r { throw e }
    return r
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
