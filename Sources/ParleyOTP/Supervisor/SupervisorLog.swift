import DequeModule
import Logging
import Parley

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
