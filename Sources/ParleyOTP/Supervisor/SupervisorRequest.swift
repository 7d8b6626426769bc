import DequeModule
import Logging
import Parley

/// Requests a supervisor answers, as calls.
enum SupervisorRequest: Sendable {
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
