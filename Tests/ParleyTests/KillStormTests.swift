import Parley
import Testing

/// Killing many parked processes at once from code outside any process (a plain task), as
/// a shutdown or an operator's tool does, while introspection walks the process table:
/// every process ends with `killed` (a monitor sees it) and the runtime survives.
@Suite("Kill storm: parked processes killed from outside while introspection walks", .timeLimit(.minutes(2)))
struct KillStormTests {
    @Test("exit(pid, kill) on thousands of parked processes from a plain task; summaries walk meanwhile")
    func killStorm() async throws {
        for _ in 0..<3 {
            let n = scaled(20_000)
            let pids = (0..<n).map { _ in Process.spawn { me in _ = try await me.receive() } }
            let walker = Task {
                var walks = 0
                while !Task.isCancelled { _ = LocalNode.current.summaries(); walks += 1; await Task.yield() }
                return walks
            }
            for p in pids { Process.exit(p, .kill) }
            #expect(await eventually { pids.allSatisfy { Process.info($0) == nil } })
            walker.cancel()
            _ = await walker.value
        }
    }
}
