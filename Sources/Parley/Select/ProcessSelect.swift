import ParleyRuntime

extension Process {
    /// A select case that takes the first message of type `T` (accepted by `predicate`, if
    /// given) from this process's mailbox, leaving other messages in place, as `receive`
    /// does. Only valid in this process's own ``select(order:_:)``.
    ///
    /// ```swift
    /// let what = try await me.select {
    ///     me.onMessage(String.self) { text in "message: \(text)" }
    ///     updates.onReceive { u in "update: \(u!)" }
    ///     SelectCase.timeout(.seconds(5)) { "quiet" }
    /// }
    /// ```
    public func onMessage<T, R>(_ type: T.Type, where predicate: @escaping (T) throws -> Bool = { _ in true },
                                _ handler: @escaping (T) async throws -> R) -> SelectCase<R> {
        let box = MatchedMessage<T>()
        return SelectCase(kind: .message({ m in
            guard let t = m as? T, try predicate(t) else { return false }
            box.value = t
            return true
        }), run: { try await handler(box.value!) })
    }

    /// Waits for the first of: a message in this process's mailbox (an ``onMessage(_:where:_:)``
    /// case) or any channel case, with optional timeout and default cases, and completes
    /// exactly one. Neither Erlang's `receive` nor Go's or core.async's select can wait on both
    /// at once.
    ///
    /// A select may have several message cases, as a `receive` has several clauses: each
    /// message, oldest first, is offered to the message cases in the order they are written,
    /// and the first that accepts it wins. Messages no case accepts stay in the mailbox.
    ///
    /// A message that arrives while a channel case completes stays in the mailbox; a value a
    /// channel offers while a message is taken stays in the channel.
    ///
    /// ```swift
    /// let pid = Process.spawn { me in
    ///     let jobs = Channel<Int>(buffer: .fixed(16))
    ///     while true {
    ///         let stop = try await me.select {
    ///             me.onMessage(String.self, where: { $0 == "stop" }) { _ in true }
    ///             jobs.onReceive { job in print("job \(job!)"); return false }
    ///         }
    ///         if stop { break }
    ///     }
    /// }
    /// ```
    /// ```swift
    /// let reply = try await me.select {
    ///     me.onMessage(Int.self) { n in "number \(n)" }
    ///     me.onMessage(String.self, where: { $0.hasPrefix("cmd:") }) { c in "command \(c)" }
    ///     SelectCase.timeout(.seconds(1)) { "nothing" }
    /// }
    /// ```
    /// - Throws: ``ProcessExit`` if the process is killed or exits while it waits;
    ///   ``ProcessError/notOwner(_:)`` if another process's `me` runs the select;
    ///   ``ChannelError``s as ``select(order:_:)`` (``ChannelError/severalDefaults`` among them).
    public func select<R>(order: SelectOrder = .fair, @SelectBuilder<R> _ cases: () -> [SelectCase<R>]) async throws -> R {
        let list = cases()
        var (ops, extras) = try SelectEngine.plan(list)
        let winner: Int
        if let match = extras.message {
            let process = sequential
            guard process === SequentialProcess.currentOwned() else { throw ProcessError.notOwner(core.pid) }
            winner = try await process.select(&ops, extras, match: match, order: order)
        } else {
            winner = try await SelectEngine.choose(&ops, extras, order: order)
        }
        return try await list[winner].run()
    }
}

extension SequentialProcess {
    /// The mailbox-and-channels select. Message matching is `receive`'s (arrival order,
    /// non-matching messages stay); channel cases are `SelectEngine.choose`'s, except that
    /// the waiter wakes this process through its mailbox (``ProcessCore/wakeFromChannel()``),
    /// so a message and a channel completion share one suspension.
    func select(_ ops: inout OperationList, _ x: SelectExtras, match: (any Sendable) throws -> Bool, order: SelectOrder) async throws -> Int {
        // 1. What is ready now, without queueing anything. In fair order a coin decides
        //    whether the mailbox or the channels are looked at first.
        let poll: UInt64 = 0
        let mailboxFirst = order == .priority ? x.messageIndex < (ops.ops.first?.index ?? .max) : SelectEngine.random(2) == 0
        if mailboxFirst, try await receive(deadline: poll, match) { return x.matchedMessageIndex }
        if let w = SelectEngine.firstPass(&ops, order: order) { return w }
        if !mailboxFirst, try await receive(deadline: poll, match) { return x.matchedMessageIndex }
        if x.defaultIndex >= 0 { return x.defaultIndex }
        if let d = x.deadline, d <= MonotonicClock.now { return x.timeoutIndex }

        // 2. Queue a cell in every channel; the waiter wakes this process.
        let owner = Waiter()
        _ = owner.arm(.wakeable(self))
        if let w = try SelectEngine.registerAll(&ops, owner: owner, order: order) { return w }
        let timer = SelectEngine.scheduleTimeout(owner, x)
        defer { timer?.cancel() }

        // 3. Wait for a matching message (taken only if the select is still ours) or the
        //    waiter's completion (a channel case, or the timeout through the waiter).
        do {
            switch try await receive(deadline: nil, from: 0, also: .select(owner), match) {
            case .matched:
                owner.winner = x.matchedMessageIndex
                return x.matchedMessageIndex
            case .woken, .timedOut:
                return try SelectEngine.finish(owner, &ops, x)
            }
        } catch {
            if owner.claim() { owner.winner = Waiter.cancelledIndex }
            throw error
        }
    }
}

/// The message an ``Process/onMessage(_:where:_:)`` case matched, kept for its handler. Used
/// only by the task running the select.
private final class MatchedMessage<T>: @unchecked Sendable {
    // @unchecked Sendable: written by the match and read by the handler, both on the
    // selecting process's own task, one after the other.
    var value: T?
}
