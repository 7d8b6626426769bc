/// Delivery of exit signals, one worklist at a time: a process that dies from a signal adds
/// its own links' signals to the list instead of recursing.
enum ExitSignals {
    struct Pending {
        let target: Pid
        let from: Pid
        let reason: ExitReason
        let isLink: Bool
    }

    static func propagate(_ initial: [Pending]) {
        var work = initial
        while let s = work.popLast() {
            switch Route(s.target, senderPid: s.from) {
            case .local(let p?): work.append(contentsOf: p.receiveExitSignal(from: s.from, reason: s.reason, isLink: s.isLink))
            case .remote(let router): router.exit(from: s.from, to: s.target, reason: s.reason, isLink: s.isLink)
            case .local(nil), .unreachable: break
            }
        }
    }

    /// Ends `process` with `reason` as its own decision (body returned or threw, handler stopped).
    static func exit(_ process: ProcessCore, reason: ExitReason) {
        propagate(process.die(reason, external: false))
    }
}
