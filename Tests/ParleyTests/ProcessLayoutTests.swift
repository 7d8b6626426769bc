@testable import Parley
import Testing

/// Where a process's fields sit (64-bit platforms): senders write the lock word on every
/// delivery and the mailbox's status when they wake the owner; the owner writes its queue
/// and counts on each message. The two must never share a 64-byte cache line, whatever the
/// object's alignment (a shared line cost fan-in's consumer a cache miss per receive), and
/// the object must not grow (a `CallbackCore<Int>` is 168 bytes). The order is
/// ProcessCore's; this checks it.
@Suite("Process layout (senders' and owner's fields on different cache lines)")
struct ProcessLayoutTests {
    typealias Mailbox = MailboxState<UnsafeContinuation<Void, Never>>

    @Test("the lock word and the mailbox's status come first; the owner's fields start 64 bytes or more after the status; 136 bytes in all")
    func sendersAndOwnerApart() {
        #expect(MemoryLayout<Mailbox>.offset(of: \.status)! == 16)
        #expect(MemoryLayout<Mailbox>.size <= 40)
        #expect(MemoryLayout<MessageQueue>.size == 8, "one word: the rest is in the head chunk")
        #expect(MemoryLayout<SavedQueue>.size == 16)
        let p = SequentialProcess(limit: nil, hosted: nil)
        let base = UnsafeRawPointer(Unmanaged.passUnretained(p).toOpaque())
        let shared = withUnsafeMutablePointer(to: &p.sharedState) { UnsafeRawPointer($0) - base }
        let sinceYield = withUnsafeMutablePointer(to: &p.sinceYield) { UnsafeRawPointer($0) - base }
        let saved = withUnsafeMutablePointer(to: &p.saved) { UnsafeRawPointer($0) - base }
        let status = shared + MemoryLayout<Mailbox>.offset(of: \.status)!
        #expect(shared == 24, "the lock word (bytes 16–19), then the shared state")
        #expect(status == 40)
        // The owner's group starts with savedCount (4 bytes) just before sinceYield.
        #expect(sinceYield - 4 >= status + 64, "owner's first field at \(sinceYield - 4), status at \(status)")
        #expect(saved > sinceYield)
        #expect(saved + MemoryLayout<SavedQueue>.size == 136, "ProcessCore's fields end at \(saved + MemoryLayout<SavedQueue>.size)")
    }

    @Test("a local pid's target is the process's address itself, which the send reads without retaining it (Pid.unretainedProcess)")
    func pidPayloadIsTheAddress() {
        let p = SequentialProcess(limit: nil, hosted: nil)
        let pid = Pid(local: p)
        #expect(MemoryLayout<Pid.Target>.size == 8)
        #expect(unsafeBitCast(pid.target, to: UInt.self) == UInt(bitPattern: Unmanaged.passUnretained(p).toOpaque()))
        #expect(pid.unretainedProcess.toOpaque() == Unmanaged.passUnretained(p).toOpaque())
    }

    @Test("the bound and the senders' queues share one word: a bound reads back, an unbounded mailbox has no bound and gets its queues on request")
    func mailboxWord() {
        let bounded = SequentialProcess(limit: MailboxLimit(capacity: 1000), hosted: nil)
        #expect(bounded.mailboxLimit == 1000)
        #expect(!bounded.useArrivalShards() && bounded.arrivalShards == nil)
        let open = SequentialProcess(limit: nil, hosted: nil)
        #expect(open.mailboxLimit == 0 && open.arrivalShards == nil)
        #expect(open.useArrivalShards() && open.arrivalShards != nil && open.mailboxLimit == 0)
    }
}
