import CParleyShims
import ParleyRuntime

/// Why a channel operation did not complete. A closed channel is not an error: a send to it
/// returns `false` and a receive returns `nil`, as in core.async.
public enum ChannelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// ``Chan/pendingLimit`` senders (or receivers) already wait on this channel (core.async:
    /// "No more than 1024 pending puts are allowed on a single channel"). The operation did
    /// nothing; the channel keeps working. Use a buffer, or fewer concurrent waiters.
    case tooManyPending(limit: Int)
    /// The waiting task was cancelled. A send's value was not delivered (it went to the
    /// channel's `onUndelivered` hook); a receive took nothing from the channel.
    case cancelled
    /// A ``select(_:)`` with no default case and no timeout had no cases.
    case noCases
    /// A select had more than one ``SelectCase/default(_:)`` case (Go rejects the same
    /// select: "multiple defaults in select"). Nothing was tried.
    case severalDefaults
    /// A mailbox case (`me.onMessage`) was given to the channels-only ``select(order:_:)``;
    /// only a process's own `me.select` can take messages. Nothing was tried.
    case messageCaseOutsideProcess

    public var description: String {
        switch self {
        case .tooManyPending(let limit): "too many pending operations on one channel (limit \(limit)); use a buffer"
        case .cancelled: "the channel operation was cancelled"
        case .noCases: "select has no cases"
        case .severalDefaults: "select has more than one default case"
        case .messageCaseOutsideProcess: "a message case (onMessage) needs the process's own select (me.select)"
        }
    }
}

extension Chan {
    // MARK: Parking (processes and Swift tasks)

    /// Sends `value`, suspending the caller (never an OS thread) until a receiver takes it
    /// or the buffer has room (core.async `>!`, Go `ch <- v`).
    ///
    /// - Returns: `true` once the channel has the value; `false` if the channel was closed
    ///   (the value is refused and goes to the `onUndelivered` hook).
    /// - Throws: ``ChannelError/tooManyPending(limit:)``; ``ChannelError/cancelled`` if the
    ///   task is cancelled while it waits (the value was then not delivered).
    ///
    /// ```swift
    /// let ch = Channel<Int>(buffer: .fixed(1))
    /// try await ch.send(1)          // room in the buffer: returns at once
    /// ```
    @inlinable @inline(__always)
    @discardableResult
    public func send(_ value: Input) async throws(ChannelError) -> Bool {
        var fx = Effects()
        lock.lockPatiently()
        let outcome = putLocked(value, cell: nil, active: nil, &fx)
        lock.unlock()
        perform(fx)
        switch outcome {
        case .completed:
            if Scheduler.reductionSpent() { await Scheduler.yield() }
            return true
        case .closed:
            undeliveredInput?(value)
            return false
        default:
            return try await sendSlow(value)
        }
    }

    /// Sends with a cell to queue if the value cannot be placed now. Returns `true` (taken
    /// or buffered) or `false` (closed, value refused) if it completed, `nil` if queued.
    @inlinable
    func sendOrQueue(_ value: Input, _ cell: Cell<Input>) throws(ChannelError) -> Bool? {
        var fx = Effects()
        lock.lockPatiently()
        let outcome = putLocked(value, cell: cell, active: nil, &fx)
        lock.unlock()
        perform(fx)
        switch outcome {
        case .completed: return true
        case .closed: undeliveredInput?(value); return false
        case .tooMany: throw .tooManyPending(limit: Self.pendingLimit)
        case .queued: return nil
        case .wouldBlock, .abandoned: preconditionFailure("Parley: a send with a cell neither queued nor completed")
        }
    }

    /// Receives with a cell to queue if nothing can be taken now. Returns `.some(value)`
    /// (`.some(nil)`: closed and drained) if it completed, `nil` if queued.
    @inlinable
    func receiveOrQueue(_ cell: Cell<Output>) throws(ChannelError) -> Output?? {
        var fx = Effects()
        var result: Output? = nil
        lock.lockPatiently()
        let outcome = takeLocked(cell: cell, active: nil, result: &result, &fx)
        lock.unlock()
        perform(fx)
        switch outcome {
        case .completed: return .some(result)
        case .closed: return .some(nil)
        case .tooMany: throw .tooManyPending(limit: Self.pendingLimit)
        case .queued: return nil
        case .wouldBlock, .abandoned: preconditionFailure("Parley: a receive with a cell neither queued nor completed")
        }
    }

    @inlinable
    func sendSlow(_ value: Input) async throws(ChannelError) -> Bool {
        let cell = Cell<Input>(value: value)
        if let done = try sendOrQueue(value, cell) { return done }
        await parkTask(cell)
        return try finishSend(cell)
    }

    @inlinable
    func finishSend(_ cell: Cell<Input>) throws(ChannelError) -> Bool {
        if cell.winner == Waiter.cancelledIndex {
            if let v = cell.value { cell.value = nil; undeliveredInput?(v) }
            throw .cancelled
        }
        return true
    }

    /// Receives a value, suspending the caller until one is there (core.async `<!`, Go `<-ch`).
    ///
    /// - Returns: the value, or `nil` once the channel is closed and drained.
    /// - Throws: ``ChannelError/tooManyPending(limit:)``; ``ChannelError/cancelled`` if the
    ///   task is cancelled while it waits (nothing was taken from the channel).
    ///
    /// ```swift
    /// while let job = try await jobs.receive() { handle(job) }
    /// ```
    @inlinable @inline(__always)
    public func receive() async throws(ChannelError) -> Output? {
        var fx = Effects()
        var result: Output? = nil
        lock.lockPatiently()
        let outcome = takeLocked(cell: nil, active: nil, result: &result, &fx)
        lock.unlock()
        perform(fx)
        switch outcome {
        case .completed:
            if Scheduler.reductionSpent() { await Scheduler.yield() }
            return result
        case .closed:
            if Scheduler.reductionSpent() { await Scheduler.yield() }
            return nil
        default:
            return try await receiveSlow()
        }
    }

    @inlinable
    func receiveSlow() async throws(ChannelError) -> Output? {
        let cell = Cell<Output>(value: nil)
        if case .some(let done) = try receiveOrQueue(cell) { return done }
        await parkTask(cell)
        if cell.winner == Waiter.cancelledIndex { throw .cancelled }
        let v = cell.value
        cell.value = nil
        return v
    }

    // MARK: Blocking (plain threads, the blocking pool)

    /// Sends `value`, blocking the calling thread until it is taken or buffered (core.async
    /// `>!!`). For threads outside the scheduler (``thread(_:)``, the blocking pool, `main`);
    /// in a process or task use ``send(_:)``, which does not hold a scheduler thread.
    ///
    /// ```swift
    /// Thread-style: thread { try ch.sendBlocking(42) }
    /// ```
    /// - Returns: `false` if the channel was closed (the value is refused).
    @discardableResult
    @inlinable
    public func sendBlocking(_ value: Input) throws(ChannelError) -> Bool {
        let cell = Cell<Input>(value: value)
        let parker = cell.armThread()
        if let done = try sendOrQueue(value, cell) { return done }
        while !cell.isSignalled { parker.park() }
        return true
    }

    /// Receives a value, blocking the calling thread until one is there (core.async `<!!`).
    /// Returns `nil` once the channel is closed and drained.
    ///
    /// ```swift
    /// let first = try ch.receiveBlocking()
    /// ```
    @inlinable
    public func receiveBlocking() throws(ChannelError) -> Output? {
        let cell = Cell<Output>(value: nil)
        let parker = cell.armThread()
        if case .some(let done) = try receiveOrQueue(cell) { return done }
        while !cell.isSignalled { parker.park() }
        let v = cell.value
        cell.value = nil
        return v
    }

    // MARK: Attempts that never wait

    /// Sends `value` only if that can happen now, without waiting (core.async `offer!`).
    /// Returns whether the channel took it; `false` if it would have to wait or is closed
    /// (nothing is queued and the value is left with the caller).
    ///
    /// ```swift
    /// if !events.offer(e) { metrics.increment("events.shed") }
    /// ```
    @inlinable
    public func offer(_ value: Input) -> Bool {
        var fx = Effects()
        lock.lockPatiently()
        let outcome = putLocked(value, cell: nil, active: nil, &fx)
        lock.unlock()
        perform(fx)
        return outcome == .completed
    }

    /// Receives a value only if one is there now (core.async `poll!`). Returns `nil` if none
    /// is (or the channel is closed and drained); never waits and queues nothing.
    ///
    /// ```swift
    /// while let e = events.poll() { handle(e) }
    /// ```
    @inlinable
    public func poll() -> Output? {
        var fx = Effects()
        var result: Output? = nil
        lock.lockPatiently()
        _ = takeLocked(cell: nil, active: nil, result: &result, &fx)
        lock.unlock()
        perform(fx)
        return result
    }

    // MARK: Callbacks

    /// Sends `value` without waiting for it to be taken (core.async `put!`). `onComplete`,
    /// if given, gets `true` once the channel has the value, or `false` if it was closed;
    /// it runs on the caller's thread if the send completes at once, otherwise as a job on
    /// the scheduler.
    ///
    /// ```swift
    /// try ch.put(1) { accepted in print("delivered: \(accepted)") }
    /// ```
    /// - Throws: ``ChannelError/tooManyPending(limit:)`` (nothing was queued).
    @inlinable
    public func put(_ value: Input, onComplete: (@Sendable (Bool) -> Void)? = nil) throws(ChannelError) {
        let cell = CallbackCell<Input>(put: value, onComplete)
        cell.armCallback()
        if let done = try sendOrQueue(value, cell) { onComplete?(done) }
    }

    /// Receives a value without waiting (core.async `take!`): `onValue` gets it (or `nil`
    /// once the channel is closed and drained), on the caller's thread if one is there now,
    /// otherwise as a job on the scheduler when it comes.
    ///
    /// ```swift
    /// try ch.take { value in print("got \(String(describing: value))") }
    /// ```
    /// - Throws: ``ChannelError/tooManyPending(limit:)`` (nothing was queued).
    @inlinable
    public func take(_ onValue: @escaping @Sendable (Output?) -> Void) throws(ChannelError) {
        let cell = CallbackCell<Output>(take: onValue)
        cell.armCallback()
        if case .some(let done) = try receiveOrQueue(cell) { onValue(done) }
    }

    // MARK: Close

    /// Closes the channel (core.async `close!`, Go `close`). Later sends are refused;
    /// buffered values and sends already waiting can still be received, and after them
    /// receivers get `nil`. Closing a closed channel does nothing.
    ///
    /// ```swift
    /// ch.close()
    /// ```
    @inlinable
    public func close() {
        var fx = Effects()
        lock.lockPatiently()
        closeLocked(&fx)
        lock.unlock()
        perform(fx)
    }
}

// MARK: AsyncSequence

extension Chan: AsyncSequence {
    public typealias Element = Output
    public typealias Failure = ChannelError

    /// Receives until the channel is closed and drained: `for try await v in channel`.
    ///
    /// Swift's `for try await` calls `next(isolation:)`, whose `isolated` parameter makes the
    /// runtime check the task's executor on every element (about 40 ns here); in a hot loop,
    /// `while let v = try await channel.receive()` does the same without that check.
    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline let channel: Chan
        @inlinable init(channel: Chan) { self.channel = channel }
        @inlinable
        public mutating func next() async throws(ChannelError) -> Output? {
            try await channel.receive()
        }
        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(ChannelError) -> Output? {
            try await channel.receive()
        }
    }

    @inlinable
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: self) }
}

/// Suspends until `waiter` is completed; task cancellation completes it with
/// `cancelledIndex` unless a channel got there first.
@usableFromInline
func parkTask(_ waiter: Waiter) async {
    await parkTaskUntilSignalled(waiter)
    // The signal stores its state with release before it resumes the task; this acquire load
    // is what orders the claimer's writes (the value, the winner) before our reads, whatever
    // executor resumed us (the thread sanitizer does not see through a continuation).
    while !waiter.isSignalled { parley_cpu_relax() }
}

func parkTaskUntilSignalled(_ waiter: Waiter) async {
    if GoBlock.isRoot {
        // The root task of a `go` block: nobody holds its handle, so nobody can cancel it,
        // and the cancellation record (a task-status lock round trip each way) is skipped.
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            if !waiter.arm(.task(c)) { c.resume() }
        }
        return
    }
    await withTaskCancellationHandler {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            if !waiter.arm(.task(c)) { c.resume() }
        }
    } onCancel: {
        if waiter.claim() {
            waiter.winner = Waiter.cancelledIndex
            waiter.signal()
        }
    }
}

