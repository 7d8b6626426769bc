@testable import Parley
import Testing

/// Where a process's fields sit (64-bit platforms): senders write the lock and the
/// mailbox's shared half, the owner writes its queue and counts on each message, and the two
/// must never share a 64-byte cache line, whatever the object's alignment (a shared line cost
/// fan-in's consumer a cache miss per receive). The order is ProcessCore's; this checks it.
@Suite("Process layout (senders' and owner's fields on different cache lines)")
struct ProcessLayoutTests {
    typealias Mailbox = MailboxState<UnsafeContinuation<Void, Never>>

    @Test("the mailbox's status is within its first 33 bytes; the owner's fields start 64 bytes or more after it")
    func sendersAndOwnerApart() {
        #expect(MemoryLayout<Mailbox>.offset(of: \.status)! == 32)
        #expect(MemoryLayout<Mailbox>.size <= 56)
        let p = SequentialProcess(limit: nil, hosted: nil)
        let base = UnsafeRawPointer(Unmanaged.passUnretained(p).toOpaque())
        let shared = withUnsafeMutablePointer(to: &p.sharedState) { UnsafeRawPointer($0) - base }
        let saved = withUnsafeMutablePointer(to: &p.saved) { UnsafeRawPointer($0) - base }
        let sinceYield = withUnsafeMutablePointer(to: &p.sinceYield) { UnsafeRawPointer($0) - base }
        let status = shared + MemoryLayout<Mailbox>.offset(of: \.status)!
        #expect(shared == 24, "the lock word, then the shared state")
        #expect(status == 56)
        // The owner's counts (savedCount, alive, handledCount, reductionCount) come at 120,
        // right before `saved`: 4 + 4 + 8 + 8 bytes.
        #expect(saved - 24 >= status + 64, "owner's first field at \(saved - 24), status at \(status)")
        #expect(sinceYield > saved)
    }
}
