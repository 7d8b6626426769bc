import DequeModule
import Logging
import Parley

enum SupervisorLog {
    /// Made at each use (reports only), so that a logging backend bootstrapped after the
    /// first report still gets every later one.
    static var logger: Logger { Logger(label: "parley.supervisor") }

    /// A supervisor report, as OTP's `supervisor_report` with its context. Two counts, named
    /// for what they count: `child_restarts`, how many times this child has been restarted
    /// by this supervisor; `supervisor_restarts`, the restarts this supervisor has made of
    /// all its children since it started. (OTP's report has neither; the restart intensity
    /// is counted per supervisor, over all children, which is the second.)
    static func report(_ context: String, supervisor: String, child: String, pid: Pid?, reason: ExitReason,
                       childRestarts: Int, supervisorRestarts: Int, level: Logger.Level = .error) {
        logger.log(level: level, "supervisor report: \(context)", metadata: [
            "supervisor": "\(supervisor)", "child": "\(child)", "pid": "\(pid.map { "\($0)" } ?? "undefined")",
            "reason": "\(reason)", "child_restarts": "\(childRestarts)", "supervisor_restarts": "\(supervisorRestarts)",
        ])
    }
}
