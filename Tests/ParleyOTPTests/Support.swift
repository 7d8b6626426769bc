import Logging
@_exported import ParleyTestSupport
import ParleyOTP
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An ordered log shared between test processes.
final class Events: Sendable {
    private let items = Locked<[String]>([])
    func add(_ s: String) { items.withLock { $0.append(s) } }
    var all: [String] { items.withLock { $0 } }
    func count(_ s: String) -> Int { all.filter { $0 == s }.count }
}

/// A counter server, as in the docs.
struct Counter: GenServer, Sendable {
    var count = 0
    enum Call: Sendable { case get, add(Int) }
    typealias Reply = Int
    enum Cast: Sendable { case reset }
    mutating func handleCall(_ request: Call, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        switch request {
        case .get: return .reply(count)
        case .add(let n): count += n; return .reply(count)
        }
    }
    mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
        count = 0
        return .noreply
    }
}

/// A worker whose lifecycle is logged: "start id", "stop id reason", and which exits
/// with the reason it is cast.
struct Worker: GenServer, Sendable {
    let id: String
    let events: Events
    var trap = true
    enum Cast: Sendable { case exit(ExitReason) }
    typealias Call = String
    typealias Reply = String

    mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        me.trapExit = trap
        events.add("start \(id)")
        return .ok
    }
    mutating func handleCall(_ request: String, from: Gen.From, _ me: CallbackProcess) -> CallResult { .reply(id) }
    mutating func handleCast(_ request: Cast, _ me: CallbackProcess) -> HandleResult {
        if case .exit(let r) = request { return .stop(r) }
        return .noreply
    }
    mutating func terminate(_ reason: ExitReason, _ me: CallbackProcess) {
        events.add("stop \(id) \(reason)")
    }

    static func spec(_ id: String, _ events: Events, restart: ChildSpec.Restart = .permanent, shutdown: ChildSpec.Shutdown = .timeout(.milliseconds(5000))) -> ChildSpec {
        Worker(id: id, events: events).childSpec(id: id, name: .local("w-\(id)-\(ObjectIdentifier(events).hashValue)"), restart: restart, shutdown: shutdown)
    }
}

extension Events {
    func name(_ id: String) -> String { "w-\(id)-\(ObjectIdentifier(self).hashValue)" }
    func pid(_ id: String) -> Pid? { Process.whereis(name(id)) }
}

/// Log records captured from Parley's loggers during tests (and kept off the terminal:
/// the crash-storm test alone makes 60,000 crash reports).
enum TestLogging {
    struct Record: Sendable {
        let label: String
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    static let records = Locked<[Record]>([])

    /// Installs the capturing handler once per test process.
    static let installed: Void = {
        LoggingSystem.bootstrap { label in CaptureHandler(label: label) }
    }()

    struct CaptureHandler: LogHandler {
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            guard event.level >= .warning else { return }
            var flat: [String: String] = [:]
            for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { flat[k] = "\(v)" }
            let record = Record(label: label, level: event.level, message: "\(event.message)", metadata: flat)
            TestLogging.records.withLock { r in
                r.append(record)
                if r.count > 100_000 { r.removeFirst(50_000) }
            }
        }
    }
}
