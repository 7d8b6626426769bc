@testable import Parley
import Testing

/// Where a process's fields sit (64-bit platforms): senders write the lock word on every
/// delivery and the mailbox's status when they wake the owner; the owner writes its queue
/// and counts on each message. The two must never share a 64-byte cache line, whatever the
/// object's alignment (a shared line cost fan-in's consumer a cache miss per receive), and
/// the object must not grow (120 bytes: a callback process whose state is an `Int?`, a word
/// and a tag, is one 160-byte heap block). The order is ProcessCore's; this checks it.
@Suite("Process layout (senders' and owner's fields on different cache lines)")
struct ProcessLayoutTests {
    typealias Mailbox = MailboxState<UnsafeContinuation<Void, Never>>

    @Test("the lock word and the mailbox's status come first; the owner's fields start 64 bytes or more after the status; 120 bytes in all")
    func sendersAndOwnerApart() {
        #expect(MemoryLayout<Mailbox>.offset(of: \.status)! == 0)
        #expect(MemoryLayout<Mailbox>.size <= 32)
        #expect(MemoryLayout<MessageQueue>.size == 8, "one word: the rest is in the head chunk")
        #expect(MemoryLayout<SavedQueue>.size == 16)
        let p = SequentialProcess(limit: nil, hosted: nil)
        let base = UnsafeRawPointer(Unmanaged.passUnretained(p).toOpaque())
        let shared = withUnsafeMutablePointer(to: &p.sharedState) { UnsafeRawPointer($0) - base }
        let saved = withUnsafeMutablePointer(to: &p.saved) { UnsafeRawPointer($0) - base }
        let sinceYield = withUnsafeMutablePointer(to: &p.sinceYield) { UnsafeRawPointer($0) - base }
        let status = shared + MemoryLayout<Mailbox>.offset(of: \.status)!
        #expect(shared == 24, "the lock word (bytes 16–19), then the shared state")
        #expect(status == 24)
        // The owner's group: savedCount (4 bytes), the running and alive flags (2, and 2 of
        // padding) and handledCount (8), then saved.
        #expect(saved - 16 >= status + 64, "owner's first field at \(saved - 16), status at \(status)")
        #expect(saved + MemoryLayout<SavedQueue>.size == 120, "ProcessCore's fields end at \(saved + MemoryLayout<SavedQueue>.size)")
        // A sequential process's own fields (owner-written) follow.
        #expect(sinceYield >= 120)
    }

    @Test("an idle callback process whose state is one reference (a spare bit pattern for the optional) or an Int (a word and a tag) fits a 160-byte heap block")
    func callbackProcessSize() {
        // The size an instance asks malloc for is its class's instance size, and glibc serves
        // a request of up to 152 bytes from a 160-byte block. (Asking malloc what it gave is
        // not the same test: under a busy suite it may hand out a larger free block it cannot
        // split.) The instance size is read from the class metadata (Swift's ABI without
        // Objective-C interop: a 32-bit field 24 bytes in), checked first on a class whose
        // size is known: a 16-byte object header and one Int.
        func instanceSize(_ type: AnyClass) -> Int {
            Int(unsafeBitCast(type, to: UnsafeRawPointer.self).load(fromByteOffset: 24, as: UInt32.self))
        }
        #expect(instanceSize(LayoutProbe.self) == 24)
        #expect(instanceSize(CallbackCore<[Int]>.self) <= 152, "a [Int] state: \(instanceSize(CallbackCore<[Int]>.self)) bytes")
        #expect(instanceSize(CallbackCore<Int>.self) <= 152, "an Int state: \(instanceSize(CallbackCore<Int>.self)) bytes")
        let q = CallbackCore<Int>(state: 0, limit: nil, hosted: nil) { _, _, _ in .continue }
        #expect(heapBlockSize(Unmanaged.passUnretained(q).toOpaque()) >= instanceSize(CallbackCore<Int>.self), "malloc gave it at least that")
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

/// A class of known instance size (a 16-byte header and one Int), to check where the
/// metadata's instance size is read.
private final class LayoutProbe { var value = 0 }

/// glibc's usable size of a heap block (`malloc_usable_size`, in <malloc.h>, which the Glibc
/// module does not export).
@_silgen_name("malloc_usable_size")
private func heapBlockSize(_ block: UnsafeMutableRawPointer) -> Int
