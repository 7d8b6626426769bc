/// The receives of one `alts` for the select engine, in the order the combinators need:
/// the first `leading` channels in order (a mix's change channel), then the rest in a
/// random order (core.async's `alts!` without `:priority`): a random permutation up to 16
/// of them, beyond that a rotation from a random start, as the engine's fair order does.
/// Given to the engine with ``SelectOrder/priority``, which tries and queues the cases in
/// this order.
struct FairReads<Input: Sendable, Output: Sendable>: SelectSource {
    var channels: ChannelArray<Input, Output>
    private let leading: Int
    /// `order[k - leading]` is the channel index of case `k >= leading`; empty when rotating.
    private let order: [Int]
    private let offset: Int

    init(_ reads: [Chan<Input, Output>], leading: Int = 0) {
        channels = ChannelArray(reads)
        self.leading = leading
        let rest = reads.count - leading
        if rest <= 1 {
            order = []
            offset = 0
        } else if rest <= 16 {
            var perm = Array(leading..<reads.count)
            for i in stride(from: rest - 1, to: 0, by: -1) { perm.swapAt(i, SelectEngine.random(i + 1)) }
            order = perm
            offset = 0
        } else {
            order = []
            offset = SelectEngine.random(rest)
        }
    }

    /// The received value of the winning case (`nil`: its channel is closed and drained).
    var value: Output? { channels.value }

    private func channelIndex(_ k: Int) -> Int {
        if k < leading { return k }
        if !order.isEmpty { return order[k - leading] }
        return leading + (k - leading + offset) % (channels.count - leading)
    }

    var count: Int { channels.count }
    func caseIndex(_ k: Int) -> Int { channelIndex(k) }
    func mayBeReady(_ k: Int) -> Bool { channels.mayBeReady(channelIndex(k)) }
    mutating func attempt(_ k: Int, active: Waiter?) -> SelectAttempt { channels.attempt(channelIndex(k), active: active) }
    mutating func register(_ k: Int, owner: Waiter) -> SelectAttempt { channels.register(channelIndex(k), owner: owner) }
    mutating func collect(caseIndex index: Int) { channels.collect(caseIndex: index) }
}
