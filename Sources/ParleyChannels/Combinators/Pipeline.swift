import ParleyRuntime

/// Moves the values of `from` to `to` through `transform`, working on up to `n` values at
/// a time, with the outputs in the order of the inputs (core.async's `pipeline`).
///
/// The transform is applied to each value on its own (a fresh instance of the
/// ``Transducer`` per value, so `take(k)` means "at most k outputs per input", and
/// `partition` groups within one input's outputs) and may give zero or more outputs for
/// it. `n` worker `go` blocks apply it; use this for computation, and
/// ``pipelineBlocking(_:to:from:transform:close:onError:)`` for work that blocks.
/// When `from` is closed and drained and every output was delivered, `to` is closed,
/// unless `close` is `false`. If `to` is closed, the outputs still on their way are dropped.
///
/// If the transform throws, the default handler reports the error to
/// ``ChannelErrors/handler`` and that value gives no output (core.async's default
/// `ex-handler`); see ``pipeline(_:to:from:transform:close:onError:)`` to choose.
///
/// ```swift
/// let out = Channel<Int>(buffer: .fixed(16))
/// pipeline(4, to: out, from: toChannel(1...100), transform: .map { $0 * $0 })
/// print(try await into(out).prefix(3))   // [1, 4, 9]
/// ```
/// - Precondition: `n`, the parallelism, is at least 1.
public func pipeline<FI, I, O, TO>(_ n: Int, to: Chan<O, TO>, from: Chan<FI, I>,
                                   transform: Transducer<I, O>, close: Bool = true) {
    pipeline(n, to: to, from: from, transform: transform, close: close, onError: nil)
}

/// ``pipeline(_:to:from:transform:close:)`` with an error handler (core.async's
/// `ex-handler`): when the transform throws on a value, `onError` gets the error and
/// returns the output to put in its place, or `nil` for none. With `onError` `nil`, the
/// error is reported to ``ChannelErrors/handler`` and the value gives no output.
///
/// ```swift
/// let out = Channel<Int>(buffer: .fixed(16))
/// pipeline(2, to: out, from: toChannel(["1", "x", "3"]),
///          transform: .map { s in guard let v = Int(s) else { throw ParseError() }; return v },
///          onError: { _ in -1 })
/// print(try await into(out))   // [1, -1, 3]
/// ```
/// - Precondition: `n`, the parallelism, is at least 1.
public func pipeline<FI, I, O, TO>(_ n: Int, to: Chan<O, TO>, from: Chan<FI, I>,
                                   transform: Transducer<I, O>, close: Bool = true,
                                   onError: (@Sendable (any Error) -> O?)?) {
    let handler: @Sendable (any Error) -> O? = onError ?? reportPipelineError
    runPipeline(n, to: to, from: from, close: close) { value, result in
        let outputs = Chan<I, O>(buffer: .fixed(1), transform: transform, onError: handler)
        // An empty buffer of one takes the value at once; a transform may add more outputs
        // than the buffer holds (core.async's expanding transducers ignore fullness).
        try await outputs.send(value)
        outputs.close()
        _ = result.offer(outputs)
    }
}

/// Like ``pipeline(_:to:from:transform:close:onError:)``, for transforms that block or run
/// long (core.async's `pipeline-blocking`): each value is transformed on the blocking pool
/// (as by ``thread(_:)``), up to `n` at a time, while the `n` worker `go` blocks that hand
/// the work out park. Outputs are in the order of the inputs.
///
/// The blocking pool has a limit (``Scheduler/Configuration/blockingThreads``); beyond it,
/// work waits for a pool thread.
///
/// ```swift
/// let pages = Channel<Data>(buffer: .fixed(8))
/// pipelineBlocking(4, to: pages, from: urls, transform: .map { try Data(contentsOf: $0) })
/// ```
/// - Precondition: `n`, the parallelism, is at least 1.
public func pipelineBlocking<FI, I, O, TO>(_ n: Int, to: Chan<O, TO>, from: Chan<FI, I>,
                                           transform: Transducer<I, O>, close: Bool = true,
                                           onError: (@Sendable (any Error) -> O?)? = nil) {
    let handler: @Sendable (any Error) -> O? = onError ?? reportPipelineError
    runPipeline(n, to: to, from: from, close: close) { value, result in
        let done = thread {
            let outputs = Chan<I, O>(buffer: .fixed(1), transform: transform, onError: handler)
            _ = try outputs.sendBlocking(value)
            outputs.close()
            return outputs
        }
        if let outputs = try await done.receive() { _ = result.offer(outputs) }
    }
}

/// Moves the values of `from` to `to` through an asynchronous function, up to `n` values
/// at a time, with the outputs in the order of the inputs (core.async's `pipeline-async`).
///
/// `af` gets each value and a channel for its outputs: it sends any number of outputs
/// there and then must close it (the pipeline waits for that close before it moves on to
/// the next value's outputs). Each of the `n` worker `go` blocks runs `af` for one value at
/// a time, so at most `n` calls are in progress; the outputs of the oldest value are
/// passed on while it still runs. When `from` is closed and drained and every output was
/// delivered, `to` is closed, unless `close` is `false`.
///
/// ```swift
/// let out = Channel<String>(buffer: .fixed(16))
/// pipelineAsync(8, to: out, from: userIDs) { id, results in
///     if let user = try? await directory.lookUp(id) { try? await results.send(user.name) }
///     results.close()
/// }
/// ```
/// - Precondition: `n`, the parallelism, is at least 1.
public func pipelineAsync<FI, I, O, TO>(_ n: Int, to: Chan<O, TO>, from: Chan<FI, I>, close: Bool = true,
                                        af: @escaping @Sendable (I, Channel<O>) async -> Void) {
    runPipeline(n, to: to, from: from, close: close) { value, result in
        let outputs = Channel<O>(buffer: .fixed(1))
        // Handed on first, so that the outputs flow while `af` runs.
        _ = result.offer(outputs)
        await af(value, outputs)
    }
}

/// core.async's default `ex-handler`: report, and put nothing in the value's place.
@Sendable
func reportPipelineError<O>(_ error: any Error) -> O? {
    ChannelErrors.report(error, in: "pipeline transform")
    return nil
}

/// core.async's `pipeline*`. One `go` block takes values from `from` and queues each as a
/// job (with a one-value promise channel for its outputs) to `n` worker `go` blocks, and
/// queues the promise, in input order, for the output `go` block; the output block takes
/// each promise's outputs channel and moves its values to `to` before the next.
func runPipeline<FI, I, O, TO, RI>(_ n: Int, to: Chan<O, TO>, from: Chan<FI, I>, close: Bool,
                                   job: @escaping @Sendable (I, Channel<Chan<RI, O>>) async throws -> Void) {
    precondition(n > 0, "Parley: a pipeline needs a parallelism of at least 1 (got \(n))")
    let jobs = Channel<(I, Channel<Chan<RI, O>>)>(buffer: .fixed(n))
    let results = Channel<Channel<Chan<RI, O>>>(buffer: .fixed(n))
    for _ in 0..<n {
        go {
            while let (value, result) = try await jobs.receive() {
                try await job(value, result)
            }
            // `jobs` is closed only after every promise was queued in `results`.
            results.close()
        }
    }
    go {
        while let value = try await from.receive() {
            let result = Channel<Chan<RI, O>>(buffer: .fixed(1))
            try await jobs.send((value, result))
            try await results.send(result)
        }
        jobs.close()
    }
    go {
        while let result = try await results.receive() {
            guard let outputs = try await result.receive() else { continue }
            // core.async: `(when (and (not (nil? v)) (>! to v)) (recur))`.
            while let v = try await outputs.receive() {
                guard try await to.send(v) else { break }
            }
        }
        if close { to.close() }
    }
}
