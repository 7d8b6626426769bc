/// Suspends the calling task until `start`'s `deliver` callback is called, from any thread,
/// and returns (or throws) what it was given.
///
/// The result travels in a locked box, not through the continuation, and the continuation is
/// resumed with `Void`. A result resumed into the continuation is stored into the waiting
/// task's frame by the resuming thread; when that resume wins the race against the task's own
/// suspension, the only ordering between that store and the task's later reuse of the same
/// frame memory is an atomic inside the Swift runtime, which the thread sanitizer does not
/// see, and it reports a race. Through the box, both sides order their accesses with a
/// ``LockWord`` it does see.
///
/// ```swift
/// let n = try await awaitResult { deliver in
///     startThread(name: "worker") { deliver(.success(6 * 7)) }
/// }
/// ```
/// - Parameter start: runs at once, on the calling task; it must arrange for `deliver` to be
///   called exactly once.
package func awaitResult<T: Sendable>(
    _ start: (_ deliver: @escaping @Sendable (Result<T, any Error>) -> Void) -> Void
) async throws -> T {
    let box = Locked<Result<T, any Error>?>(nil)
    await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
        start { result in
            box.withLock { $0 = result }
            c.resume()
        }
    }
    // `deliver` filled the box before it resumed us, so it is never empty here.
    return try box.withLock { $0.take()! }.get()
}
