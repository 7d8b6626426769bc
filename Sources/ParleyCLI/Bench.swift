import ArgumentParser
import Logging
import Parley
import ParleyObserver
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the peer workloads (bench/peers/README.md) on Parley.",
        discussion: "With --json, prints one line per figure: {\"peer\":\"parley\",\"workload\":...,\"value\":...,\"unit\":...}"
    )

    @Flag(help: "Print JSON lines for bench/peers/table.")
    var json = false

    @Option(help: "Remote workloads: processes each connection's I/O thread runs after a read, on both nodes (Distribution.Configuration.runWokenOnIOThread).")
    var runWoken = 64

    @Option(help: "Remote workloads: microseconds each node keeps a CPU awake after a read or write (Distribution.Configuration.busyWait); 0: never.")
    var busyWait = 500

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Spawn this many idle processes before the workloads (they stay for the run).")
    var idle = 0

    @Flag(help: "Trace one idle process that takes no part in the workloads (receives only, no limit) while they run: what every send pays while anything at all is traced.")
    var traceOther = false

    @Flag(help: "Serve the observer while the workloads run, with a client that reads its Processes table (sorted by mailbox) and System page every second, as an open page does.")
    var observe = false

    func validate() throws {
        if runWoken < 0 { throw ValidationError("--run-woken is a count of processes, 0 or more") }
        if busyWait < 0 { throw ValidationError("--busy-wait is microseconds, 0 or more") }
    }

    @Argument(help: "Workloads to run (default: all). Known: \(Workloads.all.joined(separator: ", ")).")
    var workloads: [String] = []

    func run() async throws {
        try runtime.apply()
        // supervisor-restart crashes a child 10,000 times: the crash reports would measure
        // the terminal, not the restart.
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .critical
            return h
        }
        RemoteWorkloads.runWoken.withLock { $0 = runWoken }
        RemoteWorkloads.busyWait.withLock { $0 = busyWait }
        let chosen = workloads.isEmpty ? Workloads.all : workloads
        for w in chosen where !Workloads.all.contains(w) {
            throw ValidationError("unknown workload \(w); known: \(Workloads.all.joined(separator: ", "))")
        }
        let idlers = (0..<idle).map { _ in Process.spawn { me in _ = try await me.receive() } }
        let watcher = observe ? try await ObservedBench.start() : nil
        // The traced bystander: never sent to, so its session records nothing, but while it
        // runs every delivery in the workloads takes the traced check's slow path.
        let bystander = traceOther ? Process.spawn { me in _ = try await me.receive() } : nil
        let bystanderTrace = try bystander.map { try Process.trace($0, .receive, limit: .total(Int.max)) }
        for w in chosen {
            let results = try await Process.run { me in try await Workloads.run(w, me: me) }
            for r in results {
                if json {
                    print("{\"peer\":\"\(r.peer)\",\"workload\":\"\(r.workload)\",\"value\":\(format(r.value)),\"unit\":\"\(r.unit)\"}")
                } else {
                    print(pad(r.workload + (r.peer == "parley" ? "" : " (\(r.peer))"), 28) + " \(format(r.value)) \(r.unit)")
                }
            }
        }
        await watcher?.stop()
        bystanderTrace?.stop()
        if let bystander { bystander.send(()) }
        // Every idle process ends (normally: its receive returns) before the OS process
        // exits. Killing a million parked processes from here after these workloads crashed
        // 3 runs in 26 on 2026-12-04 (BENCHMARKS.md, "a crash to find"); until that is found
        // the bench does not go that way.
        for p in idlers { p.send(()) }
        while idlers.contains(where: { Process.info($0) != nil }) { try await Task.sleep(for: .milliseconds(10)) }
    }

    private func format(_ v: Double) -> String {
        if v >= 100 { return String(Int(v.rounded())) }
        let s = "\(Double(Int((v * 10000).rounded())) / 10000)"
        return s
    }
}


/// An observer serving the node under benchmark, and a client that reads what an open
/// Processes page reads (the table sorted by mailbox, the System snapshot) every second.
final class ObservedBench: Sendable {
    let server: Task<Void, any Error>
    let stopped = Atomic<Bool>(false)

    private init(server: Task<Void, any Error>) { self.server = server }

    static func start() async throws -> ObservedBench {
        let observer = try Observer(.init(port: 0, metrics: nil))
        let me = ObservedBench(server: Task { try await observer.run() })
        let port = await observer.waitUntilListening()
        // The page has been open a while: its first walk over the table is done before the
        // workloads start (each later refresh walks again only when the walk is stale).
        _ = try await Scheduler.shared.blocking.run {
            try LoopbackHTTP.request(port: port, path: "/api/processes?sort=queue&order=desc&limit=50", timeoutSeconds: 60)
        }
        Scheduler.shared.blocking.submit {
            while !me.stopped.load(ordering: .relaxed) {
                _ = try? LoopbackHTTP.request(port: port, path: "/api/processes?sort=queue&order=desc&limit=50")
                _ = try? LoopbackHTTP.request(port: port, path: "/api/system")
                usleep(1_000_000)
            }
        }
        return me
    }

    func stop() async {
        stopped.store(true, ordering: .relaxed)
        server.cancel()
        _ = try? await server.value
    }
}
