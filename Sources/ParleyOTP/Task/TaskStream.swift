import DequeModule
import Parley

/// The results of ``Process/asyncStream(_:maxConcurrency:ordered:timeout:_:)``: an async
/// sequence to iterate from the owner's process.
public struct TaskStream<Input: Sendable, Value: Sendable>: AsyncSequence, Sendable {
    public typealias Element = TaskResult<Value>
    let owner: Pid
    let items: [Input]
    let maxConcurrency: Int
    let ordered: Bool
    let timeout: Duration
    let link: Bool
    let body: @Sendable (Process, Input) async throws -> Value

    public func makeAsyncIterator() -> Iterator { Iterator(stream: self) }

    public struct Iterator: AsyncIteratorProtocol {
        struct Running {
            let index: Int
            let pid: Pid
            let ref: Reference
            let deadline: ContinuousClock.Instant
        }
        let stream: TaskStream
        var tag: Reference? = nil
        var started = 0
        var yielded = 0
        var running: [Int: Running] = [:]
        var ready: [Int: TaskResult<Value>] = [:]
        var readyOrder = Deque<Int>()

        init(stream: TaskStream) { self.stream = stream }

        public mutating func next() async throws -> TaskResult<Value>? {
            guard let me = await Process.current else { throw TaskError.noProcess }
            guard me.pid == stream.owner else { throw TaskError.notOwner(owner: stream.owner) }
            if tag == nil { tag = me.alias() }
            while true {
                if let r = takeReady() { yielded += 1; return r }
                if yielded == stream.items.count {
                    if let tag { me.unalias(tag) }
                    return nil
                }
                while running.count < stream.maxConcurrency && started < stream.items.count { spawnNext(me) }
                try await waitOne(me)
            }
        }

        mutating func takeReady() -> TaskResult<Value>? {
            if stream.ordered { return ready.removeValue(forKey: yielded) }
            guard let i = readyOrder.popFirst() else { return nil }
            return ready.removeValue(forKey: i)
        }

        mutating func spawnNext(_ me: Process) {
            let index = started
            started += 1
            let input = stream.items[index]
            let body = stream.body
            let tag = self.tag!
            let pid = try! me.spawn(SpawnOptions(link: stream.link)) { t in
                let value = try await body(t, input)
                tag.send(TaskReply(tag: tag, index: index, result: value))
            }
            running[index] = Running(index: index, pid: pid, ref: me.monitor(pid), deadline: .now + stream.timeout)
        }

        mutating func complete(_ index: Int, _ result: TaskResult<Value>) {
            running[index] = nil
            ready[index] = result
            readyOrder.append(index)
        }

        mutating func waitOne(_ me: Process) async throws {
            guard let earliest = running.values.map(\.deadline).min() else { return }
            let tag = self.tag!
            let refs = Dictionary(uniqueKeysWithValues: running.values.map { ($0.ref, $0.index) })
            let message = try await me.receive(after: Swift.max(.zero, earliest - .now)) { m -> (any Sendable)? in
                if let r = m as? TaskReply, r.tag == tag { return r }
                if let d = m as? DownMessage, refs[d.ref] != nil { return d }
                return nil
            }
            switch message {
            case let r as TaskReply:
                guard let run = running[r.index] else { return }
                me.demonitor(run.ref, flush: true)
                if let v = r.result as? Value { complete(r.index, .ok(v)) } else { complete(r.index, .exit(.custom("bad task result"))) }
            case let d as DownMessage:
                complete(refs[d.ref]!, .exit(d.reason))
            default:
                let now = ContinuousClock.now
                for run in running.values where run.deadline <= now {
                    me.unlink(run.pid)
                    me.exit(run.pid, .kill)
                    me.demonitor(run.ref, flush: true)
                    _ = try await me.receive(ExitMessage.self, after: .zero, where: { $0.from == run.pid })
                    complete(run.index, .exit(.custom("timeout")))
                }
            }
        }
    }
}
