import ParleyRuntime
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How ``select(order:_:)`` chooses among cases that are ready at the same time.
public enum SelectOrder: Sendable {
    /// A random ready case, so that no channel starves another (Go's `select`, core.async's
    /// `alts!` default), uniform among the ready cases: a random permutation up to 16 cases;
    /// beyond that, random probes and then one reservoir-sampling pass over lock-free
    /// readiness hints, so that a select over thousands of channels does not lock each.
    case fair
    /// The first ready case in the order written (core.async's `:priority true`).
    case priority
}

/// One channel operation inside a select, type-erased. Implemented by the receive and send
/// cases; `index` is the case's position in the select.
package protocol SelectOperation: AnyObject, Sendable {
    /// A cheap, racy hint: false only if the operation certainly cannot complete now.
    var mayBeReady: Bool { get }
    /// Tries to complete now without queueing; with `active`, as a case of that select.
    func attempt(active: Waiter?) -> SelectAttempt
    /// Queues a cell for this case (or completes it at once, claiming `owner`).
    func register(owner: Waiter, index: Int) -> SelectAttempt
    /// After this case won while queued: moves the result out of its cell.
    func collect()
}

@usableFromInline
package enum SelectAttempt { case completed, wouldBlock, queued, abandoned, tooMany }

extension Chan {
    /// A receive as one case of a select (or `alts`): the value if it completed.
    @inlinable
    func selectTake(cell: Cell<Output>?, active: Waiter?) -> (SelectAttempt, Output?) {
        var fx = Effects()
        var result: Output? = nil
        lock.lockPatiently()
        let outcome = takeLocked(cell: cell, active: active, result: &result, &fx)
        lock.unlock()
        perform(fx)
        switch outcome {
        case .completed, .closed: return (.completed, result)
        case .wouldBlock: return (.wouldBlock, nil)
        case .queued: return (.queued, nil)
        case .abandoned: return (.abandoned, nil)
        case .tooMany: return (.tooMany, nil)
        }
    }
}

/// A receive case (``Chan/onReceive(_:)``).
final class ReceiveOperation<Input: Sendable, Output: Sendable>: SelectOperation, @unchecked Sendable {
    // @unchecked Sendable: used only by the task running the select; cells follow the
    // waiter's claim discipline.
    let channel: Chan<Input, Output>
    var cell: Cell<Output>?
    var value: Output?
    init(_ channel: Chan<Input, Output>) { self.channel = channel }

    var mayBeReady: Bool { channel.readyHint.load(ordering: .relaxed) > 0 }

    func attempt(active: Waiter?) -> SelectAttempt { run(cell: nil, active: active) }

    func register(owner: Waiter, index: Int) -> SelectAttempt {
        let c = Cell<Output>(owner: owner, index: index, value: nil)
        cell = c
        return run(cell: c, active: owner)
    }

    private func run(cell: Cell<Output>?, active: Waiter?) -> SelectAttempt {
        let (attempt, result) = channel.selectTake(cell: cell, active: active)
        if attempt == .completed { value = result }
        return attempt
    }

    func collect() {
        value = cell?.value
        cell?.value = nil
    }
}

/// A send case (``Chan/onSend(_:_:)``).
final class SendOperation<Input: Sendable, Output: Sendable>: SelectOperation, @unchecked Sendable {
    // @unchecked Sendable: as ReceiveOperation.
    let channel: Chan<Input, Output>
    let value: Input
    var cell: Cell<Input>?
    var accepted = false
    init(_ channel: Chan<Input, Output>, _ value: Input) { self.channel = channel; self.value = value }

    var mayBeReady: Bool {
        // A send may complete when receivers wait, the buffer has room, or the channel closed;
        // the hint does not count receivers, so only a full fixed buffer rules it out.
        true
    }

    func attempt(active: Waiter?) -> SelectAttempt { run(cell: nil, active: active) }

    func register(owner: Waiter, index: Int) -> SelectAttempt {
        let c = Cell<Input>(owner: owner, index: index, value: value)
        cell = c
        return run(cell: c, active: owner)
    }

    private func run(cell: Cell<Input>?, active: Waiter?) -> SelectAttempt {
        var fx = Chan<Input, Output>.Effects()
        channel.lock.lockPatiently()
        let outcome = channel.putLocked(value, cell: cell, active: active, &fx)
        channel.lock.unlock()
        channel.perform(fx)
        switch outcome {
        case .completed: accepted = true; return .completed
        case .closed:
            // Refused: the case completes with `false` (core.async's alts! put on a closed channel).
            if let active, !active.claim() { return .abandoned }
            channel.undeliveredInput?(value)
            accepted = false
            return .completed
        case .wouldBlock: return .wouldBlock
        case .queued: return .queued
        case .abandoned: return .abandoned
        case .tooMany: return .tooMany
        }
    }

    func collect() { accepted = true }
}

/// One case of a ``select(order:_:)``: a receive, a send, a timeout, a default, or (in a
/// process) a message from the mailbox. Made with ``Chan/onReceive(_:)``,
/// ``Chan/onSend(_:_:)``, ``timeout(_:_:)``, ``default(_:)`` and
/// ``Process/onMessage(_:where:_:)``.
public struct SelectCase<Result>: @unchecked Sendable {
    // @unchecked Sendable: a case is made and consumed by the one task running the select.
    package enum Kind {
        case operation(any SelectOperation)
        case timeout(Duration)
        case otherwise
        case message((any Sendable) throws -> Bool)
    }
    package let kind: Kind
    package let run: () async throws -> Result

    package init(kind: Kind, run: @escaping () async throws -> Result) {
        self.kind = kind
        self.run = run
    }

    /// Completes if nothing else has within `duration` (core.async's `(timeout ms)` in
    /// `alts!`, Go's `case <-time.After(d)`). The earliest timeout of a select counts.
    ///
    /// ```swift
    /// SelectCase.timeout(.milliseconds(100)) { "too slow" }
    /// ```
    public static func timeout(_ duration: Duration, _ handler: @escaping () async throws -> Result) -> SelectCase {
        SelectCase(kind: .timeout(duration), run: handler)
    }

    /// Completes at once if no other case is ready now, so the select never waits (Go's
    /// `default`, core.async's `:default`).
    ///
    /// ```swift
    /// SelectCase.default { "nothing ready" }
    /// ```
    public static func `default`(_ handler: @escaping () async throws -> Result) -> SelectCase {
        SelectCase(kind: .otherwise, run: handler)
    }
}

extension Chan {
    /// A select case that receives from this channel; `handler` gets the value, or `nil` if
    /// the channel is closed and drained.
    ///
    /// ```swift
    /// let text = try await select {
    ///     numbers.onReceive { n in "number \(n ?? 0)" }
    ///     names.onReceive { s in "name \(s ?? "-")" }
    /// }
    /// ```
    public func onReceive<R>(_ handler: @escaping (Output?) async throws -> R) -> SelectCase<R> {
        let op = ReceiveOperation(self)
        return SelectCase(kind: .operation(op), run: { try await handler(op.value) })
    }

    /// A select case that sends `value` on this channel; `handler` gets `true` once it was
    /// taken or buffered, `false` if the channel was closed.
    ///
    /// ```swift
    /// try await select {
    ///     out.onSend(job) { _ in sent += 1 }
    ///     quit.onReceive { _ in stop = true }
    /// }
    /// ```
    public func onSend<R>(_ value: Input, _ handler: @escaping (Bool) async throws -> R) -> SelectCase<R> {
        let op = SendOperation(self, value)
        return SelectCase(kind: .operation(op), run: { try await handler(op.accepted) })
    }
}

/// Builds the list of a ``select(order:_:)``'s cases.
@resultBuilder
public enum SelectBuilder<Result> {
    public static func buildExpression(_ c: SelectCase<Result>) -> [SelectCase<Result>] { [c] }
    public static func buildExpression(_ cs: [SelectCase<Result>]) -> [SelectCase<Result>] { cs }
    public static func buildBlock(_ parts: [SelectCase<Result>]...) -> [SelectCase<Result>] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [SelectCase<Result>]?) -> [SelectCase<Result>] { part ?? [] }
    public static func buildEither(first: [SelectCase<Result>]) -> [SelectCase<Result>] { first }
    public static func buildEither(second: [SelectCase<Result>]) -> [SelectCase<Result>] { second }
    public static func buildArray(_ parts: [[SelectCase<Result>]]) -> [SelectCase<Result>] { parts.flatMap { $0 } }
}

/// Waits for the first of several channel operations to complete, completes exactly that
/// one, and returns what its handler returns (Go's `select`, core.async's `alts!`). Cases
/// that lose leave nothing behind that counts against a channel's pending limit.
///
/// - Parameters:
///   - order: ``SelectOrder/fair`` (the default) or ``SelectOrder/priority``.
///   - cases: receives (``Chan/onReceive(_:)``), sends (``Chan/onSend(_:_:)``), at most one
///     ``SelectCase/default(_:)``, timeouts (``SelectCase/timeout(_:_:)``).
/// - Throws: ``ChannelError/cancelled`` if the task is cancelled while waiting (no case
///   completed); ``ChannelError/tooManyPending(limit:)``; ``ChannelError/noCases``;
///   ``ChannelError/severalDefaults``; ``ChannelError/messageCaseOutsideProcess`` for a
///   `me.onMessage` case (use the process's own `me.select`); and whatever the chosen
///   handler throws.
///
/// ```swift
/// let ticks = Channel<Int>(buffer: .fixed(8)), quit = Channel<Void>()
/// let event = try await select {
///     ticks.onReceive { t in "tick \(t!)" }
///     quit.onReceive { _ in "quit" }
///     SelectCase.timeout(.seconds(1)) { "idle" }
/// }
/// ```
public func select<R>(order: SelectOrder = .fair, @SelectBuilder<R> _ cases: () -> [SelectCase<R>]) async throws -> R {
    let list = cases()
    var (ops, extras) = try SelectEngine.plan(list)
    guard extras.message == nil else { throw ChannelError.messageCaseOutsideProcess }
    let winner = try await SelectEngine.choose(&ops, extras, order: order)
    return try await list[winner].run()
}

/// The cases a select chooses among, seen by the engine: channel operations by position.
/// A select's case list and an `alts` over an array of channels are the two kinds.
@usableFromInline
package protocol SelectSource {
    var count: Int { get }
    /// The select's case index of operation `k` (operations skip timeouts and defaults).
    func caseIndex(_ k: Int) -> Int
    func mayBeReady(_ k: Int) -> Bool
    mutating func attempt(_ k: Int, active: Waiter?) -> SelectAttempt
    mutating func register(_ k: Int, owner: Waiter) -> SelectAttempt
    /// After the case with select index `index` won while queued: moves its result out.
    mutating func collect(caseIndex index: Int)
}

/// A select's case list as a ``SelectSource``.
package struct OperationList: SelectSource {
    package var ops: [(index: Int, op: any SelectOperation)]
    package var count: Int { ops.count }
    package func caseIndex(_ k: Int) -> Int { ops[k].index }
    package func mayBeReady(_ k: Int) -> Bool { ops[k].op.mayBeReady }
    package func attempt(_ k: Int, active: Waiter?) -> SelectAttempt { ops[k].op.attempt(active: active) }
    package func register(_ k: Int, owner: Waiter) -> SelectAttempt { ops[k].op.register(owner: owner, index: ops[k].index) }
    package func collect(caseIndex index: Int) {
        if let entry = ops.first(where: { $0.index == index }) { entry.op.collect() }
    }
}

/// What a select has besides channel operations.
@usableFromInline
package struct SelectExtras {
    @usableFromInline package var deadline: UInt64? = nil
    @usableFromInline package var timeoutIndex = -1
    @usableFromInline package var defaultIndex = -1
    /// The first message case's index (the only one's, when there is one).
    @usableFromInline package var messageIndex = -1
    /// The matcher over all message cases; with several, it records in ``messageChoice``
    /// which case took the message.
    @usableFromInline package var message: ((any Sendable) throws -> Bool)? = nil
    /// Set when a select has several message cases: the index of the case that matched.
    @usableFromInline package var messageChoice: MessageChoice? = nil
    @inlinable init() {}

    /// The case a matched message goes to.
    package var matchedMessageIndex: Int { messageChoice?.index ?? messageIndex }
}

/// Which of several message cases took a message (Erlang's `receive` tries its clauses in
/// order for each message, in arrival order).
@usableFromInline
package final class MessageChoice: @unchecked Sendable {
    // @unchecked Sendable: written by the matcher and read after the match, both by the one
    // task running the select.
    package var index = -1
    init() {}
}

/// The case-choosing part of select, shared by `select`, `alts`, `altsBlocking` and a
/// process's select over its mailbox and channels. Steps: a first pass that tries each case
/// without queueing anything (so a select that finds a ready case, or has a default, leaves
/// no trace in any channel); then a pass that queues a cell in every channel, any of which
/// may complete the select from then on; then sleep until one does, or a timeout or a
/// cancellation claims it instead.
@usableFromInline
package enum SelectEngine {
    @inlinable
    package static func random(_ bound: Int) -> Int { RandomState.next(bound) }

    /// The first pass. Returns the winning case index, or nil.
    @inlinable
    package static func firstPass<S: SelectSource>(_ src: inout S, order: SelectOrder) -> Int? {
        let n = src.count
        if n == 0 { return nil }
        if order == .priority {
            for k in 0..<n where src.mayBeReady(k) {
                if src.attempt(k, active: nil) == .completed { return src.caseIndex(k) }
            }
            return nil
        }
        if n <= 16 {
            // A random permutation (Fisher-Yates, on the stack for small selects).
            return withUnsafeTemporaryAllocation(of: Int.self, capacity: n) { idx in
                for i in 0..<n { idx[i] = i }
                for i in stride(from: n - 1, to: 0, by: -1) { idx.swapAt(i, random(i + 1)) }
                for k in idx where src.mayBeReady(k) {
                    if src.attempt(k, active: nil) == .completed { return src.caseIndex(k) }
                }
                return nil
            }
        }
        // Many cases: random probes choose uniformly among the ready ones; then a scan.
        for _ in 0..<16 {
            let k = random(n)
            if src.mayBeReady(k), src.attempt(k, active: nil) == .completed { return src.caseIndex(k) }
        }
        // Few ready: one pass over the lock-free hints picks uniformly among the cases that
        // look ready (reservoir sampling); a stale hint costs one more round.
        for _ in 0..<4 {
            var chosen = -1, seen = 0
            for k in 0..<n where src.mayBeReady(k) {
                seen += 1
                if random(seen) == 0 { chosen = k }
            }
            if chosen < 0 { return nil }
            if src.attempt(chosen, active: nil) == .completed { return src.caseIndex(chosen) }
        }
        let start = random(n)
        for j in 0..<n {
            let k = (start + j) % n
            if src.mayBeReady(k), src.attempt(k, active: nil) == .completed { return src.caseIndex(k) }
        }
        return nil
    }

    /// Queues a cell for every case, stopping early if one completes or the select is
    /// completed by another party meanwhile. Returns the index if this pass completed it.
    @inlinable
    package static func registerAll<S: SelectSource>(_ src: inout S, owner: Waiter, order: SelectOrder) throws(ChannelError) -> Int? {
        let n = src.count
        let start = order == .fair && n > 1 ? random(n) : 0
        for j in 0..<n {
            let k = (start + j) % n
            switch src.register(k, owner: owner) {
            case .completed: return src.caseIndex(k)
            case .queued, .wouldBlock: continue
            case .abandoned: return nil
            case .tooMany:
                if owner.claim() {
                    owner.winner = Waiter.cancelledIndex
                    throw .tooManyPending(limit: Chan<Int, Int>.pendingLimit)
                }
                return nil
            }
        }
        return nil
    }

    @usableFromInline
    package static func scheduleTimeout(_ owner: Waiter, _ x: SelectExtras) -> ScheduledTimer? {
        guard let d = x.deadline else { return nil }
        return Scheduler.withShared {
            $0.timers.schedule(at: d) {
                if owner.claim() { owner.winner = Waiter.timeoutIndex; owner.signal() }
            }
        }
    }

    /// Chooses the winning case for a task (parking it, never a thread).
    @inlinable
    package static func choose<S: SelectSource>(_ src: inout S, _ x: SelectExtras, order: SelectOrder) async throws(ChannelError) -> Int {
        if src.count == 0 && x.deadline == nil && x.defaultIndex < 0 { throw .noCases }
        if let w = firstPass(&src, order: order) {
            if Scheduler.reductionSpent() { await Scheduler.yield() }
            return w
        }
        if x.defaultIndex >= 0 {
            if Scheduler.reductionSpent() { await Scheduler.yield() }
            return x.defaultIndex
        }
        if let d = x.deadline, d <= MonotonicClock.now { return x.timeoutIndex }
        let owner = Waiter()
        if let w = try registerAll(&src, owner: owner, order: order) { return w }
        let timer = scheduleTimeout(owner, x)
        // A select over many channels is woken behind the work already queued on its thread:
        // the senders queued there then register before it scans again, instead of it
        // queueing a cell in every channel once per value.
        owner.wakeBehind = src.count > 16
        await parkTask(owner)
        timer?.cancel()
        return try finish(owner, &src, x)
    }

    @inlinable
    package static func finish<S: SelectSource>(_ owner: Waiter, _ src: inout S, _ x: SelectExtras) throws(ChannelError) -> Int {
        switch owner.winner {
        case Waiter.cancelledIndex: throw .cancelled
        case Waiter.timeoutIndex: return x.timeoutIndex
        case let w:
            src.collect(caseIndex: w)
            return w
        }
    }

    /// Chooses the winning case on a plain thread (blocking it).
    @inlinable
    static func chooseBlocking<S: SelectSource>(_ src: inout S, _ x: SelectExtras, order: SelectOrder) throws(ChannelError) -> Int {
        if src.count == 0 && x.deadline == nil && x.defaultIndex < 0 { throw .noCases }
        if let w = firstPass(&src, order: order) { return w }
        if x.defaultIndex >= 0 { return x.defaultIndex }
        if let d = x.deadline, d <= MonotonicClock.now { return x.timeoutIndex }
        let owner = Waiter()
        let parker = owner.armThread()
        if let w = try registerAll(&src, owner: owner, order: order) { return w }
        let timer = scheduleTimeout(owner, x)
        while !owner.isSignalled { parker.park() }
        timer?.cancel()
        return try finish(owner, &src, x)
    }

    /// Splits a select's cases into channel operations and the rest.
    /// - Throws: ``ChannelError/severalDefaults`` if more than one case is a default.
    package static func plan<R>(_ cases: [SelectCase<R>]) throws(ChannelError) -> (OperationList, SelectExtras) {
        var ops: [(index: Int, op: any SelectOperation)] = []
        var x = SelectExtras()
        // Message cases after the first (an empty array does not allocate: one message case,
        // the common select, costs nothing here).
        var moreMessages: [(index: Int, match: (any Sendable) throws -> Bool)] = []
        for (i, c) in cases.enumerated() {
            switch c.kind {
            case .operation(let op): ops.append((i, op))
            case .timeout(let d):
                let dl = MonotonicClock.deadline(after: d)
                if x.deadline == nil || dl < x.deadline! { x.deadline = dl; x.timeoutIndex = i }
            case .otherwise:
                // Go: "multiple defaults in select" (a compile error there; a select built
                // from data can have two here, so it is a thrown error, not a trap).
                guard x.defaultIndex < 0 else { throw .severalDefaults }
                x.defaultIndex = i
            case .message(let m):
                if x.message == nil {
                    x.messageIndex = i
                    x.message = m
                } else {
                    moreMessages.append((i, m))
                }
            }
        }
        if !moreMessages.isEmpty, let first = x.message {
            // Several message cases, as a `receive` has several clauses: for each message in
            // arrival order, the first case (in written order) that accepts it wins.
            let cases = [(index: x.messageIndex, match: first)] + moreMessages
            let choice = MessageChoice()
            x.messageChoice = choice
            x.message = { m in
                for (i, match) in cases where try match(m) {
                    choice.index = i
                    return true
                }
                return false
            }
        }
        return (OperationList(ops: ops), x)
    }
}

/// Per-thread xorshift state for fair selection (no syscall, no shared cache line).
@usableFromInline
enum RandomState {
    private static let seeds = Atomic<UInt64>(0x2545_F491_4F6C_DD1D)
    // nonisolated(unsafe): written once by the lazy initializer (which Swift runs once,
    // thread-safely) and only read afterwards.
    nonisolated(unsafe) private static var key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    @usableFromInline
    static func next(_ bound: Int) -> Int {
        // The state lives in the thread-specific slot itself (a UInt64 stored as a pointer);
        // only this thread reads or writes its slot.
        var x = UInt64(UInt(bitPattern: pthread_getspecific(key)))
        if x == 0 { x = seeds.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue | 1 }
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: UInt(x)))
        return Int((x >> 11) % UInt64(bound))
    }
}
