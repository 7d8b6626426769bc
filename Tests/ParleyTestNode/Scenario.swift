// The registry scenarios' side of a test node (`--scenario DIR`, with `--registry NAME`):
// a worker that writes its history, and commands the test process leaves as files.
//
// History: every worker prints one line per event, with CLOCK_MONOTONIC in nanoseconds
// (one clock for every process of the machine, namespaces included):
//
//   H <ns> start   <name> <node> <pid>            initialize ran (a fresh or a moved holder)
//   H <ns> resumed <name> <node> <pid> <total>    endHandoff: state from a move or a checkpoint
//   H <ns> handoff <name> <node> <pid> <total>    beginHandoff: it stops serving the name
//   H <ns> merged  <name> <node> <pid> <total>    resolveConflict: it kept the name after a heal
//   H <ns> kept    <name> <node> <pid> <total>    handoffCancelled: the move it began failed
//   H <ns> exit    <name> <node> <pid> <reason>   the process exited (a monitor's DOWN)
//
// Commands: the test writes `DIR/<node>.<seq>.cmd` (by rename, so it is whole), the node
// runs it in a task of its own and writes `DIR/<node>.<seq>.out` (by rename too):
//
//   register PREFIX FROM TO      registerName(PREFIX<i>, start: "gcount") for i in FROM..<TO
//                                 → `ok N`, `taken N`, `failed N`, then the first errors
//   send PREFIX FROM TO SECONDS  casts `bump` to each name in turn, round after round, for
//                                 SECONDS → `round R`, then `sent NAME N NODE=K ...` for each
//                                 name (N in all, K of them to the holder on NODE); it stops
//                                 early once the file `DIR/<node>.<seq>.stop` exists
//   counts PREFIX FROM TO        calls `get` on each → `count NAME TOTAL` (-1: no answer)
//   holders                       this node's copy of the registry → `holder NAME NODE PID`
import Foundation
import ParleyDistribution
import ParleyOTP

/// Nanoseconds of CLOCK_MONOTONIC.
func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// One history line, written at once (line buffering would lose the tail to a SIGKILL).
func history(_ event: String, _ name: String, _ pid: Pid, _ detail: String? = nil) {
    var line = "H \(monotonicNow()) \(event) \(name) \(Distribution.nodeName) \(pid)"
    if let detail { line += " \(detail)" }
    line += "\n"
    line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
}

func history(_ event: String, _ name: String, _ me: CallbackProcess, _ total: Int? = nil) {
    history(event, name, me.pid, total.map(String.init))
}

/// The scenarios' worker: a grow-only counter (a G-Counter CRDT), one count per node that
/// bumped it. Casts of `bump` add one on this node and checkpoint; `get` answers the total.
/// A move carries the counts; a healed partition merges them entry by entry (the larger
/// wins), so bumps on both sides of a split all count once.
struct GCount: HandoffServer {
    typealias Call = Term
    typealias Reply = Term
    typealias Cast = Term
    typealias HandoffState = [String: Int]
    let context: WorkerContext
    var counts: [String: Int] = [:]
    var total: Int { counts.values.reduce(0, +) }

    mutating func initialize(_ me: CallbackProcess) throws -> InitResult {
        history("start", context.name, me)
        Process.whereis("scenario_tracker")?.send(Tracked(name: context.name, pid: me.pid))
        return .ok
    }
    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        .reply(.integer(total))
    }
    mutating func handleCast(_ request: Term, _ me: CallbackProcess) throws -> HandleResult {
        if request == .atom("bump") {
            counts[Distribution.nodeName, default: 0] += 1
            try context.checkpoint(counts, me)
        }
        return .noreply
    }
    func beginHandoff(_ me: CallbackProcess) -> Handoff<[String: Int]> {
        history("handoff", context.name, me, total)
        return .resume(counts)
    }
    mutating func endHandoff(_ state: [String: Int], _ me: CallbackProcess) {
        counts = state
        history("resumed", context.name, me, total)
    }
    mutating func handoffCancelled(_ me: CallbackProcess) {
        history("kept", context.name, me, total)
    }
    mutating func resolveConflict(_ other: [String: Int], _ me: CallbackProcess) {
        counts.merge(other, uniquingKeysWith: max)
        history("merged", context.name, me, total)
    }
}

struct Tracked: Sendable { let name: String; let pid: Pid }

/// The node's `scenario_tracker`: monitors every worker and writes `H <ns> exit <name>
/// <node> <pid> <reason>` when one exits, however it ends (a handoff's successor running, a
/// fenced or evicted holder, a kill).
func startExitTracker() throws {
    try Process.spawn(SpawnOptions(name: "scenario_tracker")) { me in
        var names: [Reference: (String, Pid)] = [:]
        while true {
            let m = try await me.receive()
            if let t = m as? Tracked {
                names[me.monitor(t.pid)] = (t.name, t.pid)
            } else if let d = m as? DownMessage, let (name, pid) = names.removeValue(forKey: d.ref) {
                history("exit", name, pid, "\(d.reason)")
            }
        }
    }
}

/// Watches DIR for this node's commands and runs each in a task of its own.
func runScenarioCommands(directory: String, registry: DistributedRegistry) {
    let me = Distribution.nodeName
    Task {
        var done = Set<String>()
        while true {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for file in files where file.hasPrefix(me + ".") && file.hasSuffix(".cmd") && !done.contains(file) {
                done.insert(file)
                guard let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else { continue }
                let out = directory + "/" + file.dropLast(4) + ".out"
                Task {
                    let result = await scenarioCommand(text.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }, registry,
                                                       stop: directory + "/" + file.dropLast(4) + ".stop")
                    let tmp = out + ".tmp"
                    try? result.write(toFile: tmp, atomically: false, encoding: .utf8)
                    rename(tmp, out)
                }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

func scenarioCommand(_ words: [String], _ registry: DistributedRegistry, stop: String) async -> String {
    func names() -> [String] {
        guard words.count >= 4, let from = Int(words[2]), let to = Int(words[3]) else { return [] }
        return (from..<to).map { words[1] + String($0) }
    }
    switch words.first {
    case "register":
        var ok = 0, taken = 0, failed = 0, errors: [String] = []
        // 32 registrations in flight at a time, as many clients would.
        await withTaskGroup(of: DistributedRegistry.Failure?.self) { group in
            var pending = names()[...]
            func next() {
                guard let n = pending.popFirst() else { return }
                group.addTask {
                    do throws(DistributedRegistry.Failure) { _ = try await registry.registerName(n, start: "gcount", timeout: .seconds(60)); return nil } catch { return error }
                }
            }
            for _ in 0..<32 { next() }
            for await failure in group {
                switch failure {
                case nil: ok += 1
                case .alreadyRegistered?: taken += 1
                case let f?:
                    failed += 1
                    if errors.count < 5 { errors.append("\(f)") }
                }
                next()
            }
        }
        return "ok \(ok)\ntaken \(taken)\nfailed \(failed)\n" + errors.map { "error \($0)\n" }.joined()
    case "send":
        let all = names()
        let seconds = words.count > 4 ? Double(words[4]) ?? 1 : 1
        // Per name, how many went to each node (the holder this node's copy named when it
        // sent): what a node that dies takes with it is bounded by what was sent to it.
        var sent = [[String: Int]](repeating: [:], count: all.count)
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var rounds = 0
        while ContinuousClock.now < end, !FileManager.default.fileExists(atPath: stop) {
            for (i, n) in all.enumerated() {
                let to = registry.lookup(n)?.nodeName ?? "?"
                do {
                    try await registry.send(Gen.CastMessage(request: Term.atom("bump")), to: n)
                    sent[i][to, default: 0] += 1
                } catch {}
            }
            rounds += 1
            // A round a little apart from the next, as a client's steady traffic (every
            // bump is also a checkpoint to each member).
            try? await Task.sleep(for: .milliseconds(50))
        }
        return "round \(rounds)\n" + zip(all, sent).map { name, to in
            "sent \(name) \(to.values.reduce(0, +))" + to.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined() + "\n"
        }.joined()
    case "counts":
        var lines: [String] = []
        for n in names() {
            let total = ((try? await registry.call(n, Term.atom("get"), timeout: .seconds(10))) as? Term)?.intValue ?? -1
            lines.append("count \(n) \(total)\n")
        }
        return lines.joined()
    case "holders":
        return registry.registered().sorted { $0.key < $1.key }.map { "holder \($0.key) \($0.value.nodeName) \($0.value)\n" }.joined()
    default:
        return "error unknown command \(words)\n"
    }
}
