import ParleyDistribution
import ParleyOTP

/// The demo worker of `parley node --registry` and the tour: a counter that a
/// `DistributedRegistry` places, moves and restarts. Calls: `bump` (adds one, answers the
/// count), `get`, `node` (where it runs). It checkpoints after every bump and hands its
/// count over when its name moves.
struct RegistryCounter: HandoffServer {
    typealias Call = Term
    typealias Reply = Term
    typealias HandoffState = Int

    let context: WorkerContext
    var count = 0

    static func define(in registry: String, on node: LocalNode = .default) {
        DistributedRegistry(registry, on: node).define("counter") { RegistryCounter(context: $0) }
    }

    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) throws -> CallResult {
        switch request.atomName {
        case "bump":
            count += 1
            try context.checkpoint(count, me)
            return .reply(.integer(count))
        case "node":
            return .reply(.atom(Atom(me.node.name)))
        default:
            return .reply(.integer(count))
        }
    }

    func beginHandoff(_ me: CallbackProcess) -> Handoff<Int> { .resume(count) }
    mutating func endHandoff(_ state: Int, _ me: CallbackProcess) { count = state }
    mutating func resolveConflict(_ other: Int, _ me: CallbackProcess) { count = max(count, other) }
}
