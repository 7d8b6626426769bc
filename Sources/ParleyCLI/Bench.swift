import ArgumentParser
import Logging
import Parley

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
        for w in chosen {
            let results = try await Process.run { me in try await Workloads.run(w, me: me) }
            for r in results {
                if json {
                    print("{\"peer\":\"parley\",\"workload\":\"\(r.workload)\",\"value\":\(format(r.value)),\"unit\":\"\(r.unit)\"}")
                } else {
                    print(pad(r.workload, 28) + " \(format(r.value)) \(r.unit)")
                }
            }
        }
    }

    private func format(_ v: Double) -> String {
        if v >= 100 { return String(Int(v.rounded())) }
        let s = "\(Double(Int((v * 10000).rounded())) / 10000)"
        return s
    }
}

