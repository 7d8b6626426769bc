/// Suspends the calling task until `start`'s `deliver` callback is called, from any thread,
/// and returns (or throws) what it was given.
///
/// Why not a plain continuation: `resume` reads and writes the waiting task's frame (the
/// result, the context) on the resuming thread. When that resume wins the race against the
/// task's own suspension, the task goes on without passing through a scheduler queue, and the
/// only ordering between those accesses and the task's later reuse of the same frame memory
/// is an atomic inside the Swift runtime, which the thread sanitizer does not see: it reports
/// a race. So the result travels in a locked box, the continuation is resumed with `Void`
/// while the box's lock is held, and the task takes the box's lock before it reads the
/// result: everything `resume` touched is ordered before the task goes on, through a
/// ``LockWord`` the sanitizer does see. The task may spin for the few instructions that
/// `resume` has left when it wakes.
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
            // Resumed under the lock on purpose (see above): the lock is released only once
            // `resume` is done with the task's frame.
            box.withLock {
                $0 = result
                c.resume()
            }
        }
    }
    // `deliver` filled the box before it resumed us, so it is never empty here.
    return try box.withLock { $0.take()! }.get()
}
