/// A transform of a stream of values, independent of where the values come from or go
/// (core.async's transducers): `map`, `filter`, `flatMap`, `take`, `partition`, chained with
/// ``then(_:)``. Give one to a channel (``Chan/init(buffer:transform:onError:onUndelivered:)``)
/// or to a ``pipeline(_:to:from:transform:close:)``.
///
/// A transducer is a recipe: each channel that uses it gets its own state (the count of
/// `take`, the group being filled by `partition`).
///
/// ```swift
/// let evensSquared = Transducer<Int, Int>.filter { $0 % 2 == 0 }.then(.map { $0 * $0 })
/// let ch = Chan(buffer: .fixed(16), transform: evensSquared)
/// for i in 1...6 { try await ch.send(i) }
/// ch.close()
/// for try await v in ch { print(v) }     // 4, 16, 36
/// ```
public struct Transducer<Input, Output>: Sendable {
    /// Builds one instance: given where its outputs go, returns where its inputs go.
    let build: @Sendable (Step<Output>) -> Step<Input>

    init(build: @escaping @Sendable (Step<Output>) -> Step<Input>) { self.build = build }

    /// Applies `transform` to every value.
    public static func map(_ transform: @escaping @Sendable (Input) throws -> Output) -> Transducer {
        Transducer { down in
            Step(step: { try down.step(transform($0)) }, complete: down.complete)
        }
    }

    /// Applies `transform` to every value and passes on each of the values it returns
    /// (core.async's `mapcat`).
    public static func flatMap<S: Sequence>(_ transform: @escaping @Sendable (Input) throws -> S) -> Transducer where S.Element == Output {
        Transducer { down in
            Step(step: { input in
                for v in try transform(input) { if try !down.step(v) { return false } }
                return true
            }, complete: down.complete)
        }
    }

    /// Chains `next` after this transform.
    public func then<Next>(_ next: Transducer<Output, Next>) -> Transducer<Input, Next> {
        let first = self
        return Transducer<Input, Next> { down in first.build(next.build(down)) }
    }
}

extension Transducer where Input == Output {
    /// Passes on the values `isIncluded` accepts.
    public static func filter(_ isIncluded: @escaping @Sendable (Input) throws -> Bool) -> Transducer {
        Transducer { down in
            Step(step: { try isIncluded($0) ? down.step($0) : true }, complete: down.complete)
        }
    }

    /// Passes on the first `n` values, then finishes: a channel with this transform closes
    /// after its `n`-th value (core.async's `(take n)`).
    public static func take(_ n: Int) -> Transducer {
        Transducer { down in
            let seen = Counter()
            return Step(step: { input in
                seen.value += 1
                if seen.value > n { return false }
                let more = try down.step(input)
                return more && seen.value < n
            }, complete: down.complete)
        }
    }

    /// Passes on values while `predicate` holds, then finishes (core.async's `take-while`).
    public static func prefix(while predicate: @escaping @Sendable (Input) throws -> Bool) -> Transducer {
        Transducer { down in
            Step(step: { input in try predicate(input) ? down.step(input) : false }, complete: down.complete)
        }
    }

    /// Drops consecutive repeats (core.async's `dedupe`).
    public static func removeDuplicates() -> Transducer where Input: Equatable & SendableMetatype {
        Transducer { down in
            let last = Box<Input?>(nil)
            return Step(step: { input in
                defer { last.value = input }
                return last.value == input ? true : try down.step(input)
            }, complete: down.complete)
        }
    }
}

extension Transducer {
    /// Groups values into arrays of `count`; on completion (the channel closes) the last,
    /// shorter group is sent too (core.async's `partition-all`).
    /// - Precondition: `count` is at least 1.
    public static func partition(_ count: Int) -> Transducer<Input, [Input]> where Output == [Input] {
        precondition(count > 0, "Parley: partition needs a size of at least 1")
        return Transducer<Input, [Input]> { down in
            let group = Box<[Input]>([])
            return Step(step: { input in
                group.value.append(input)
                guard group.value.count == count else { return true }
                let full = group.value
                group.value = []
                return try down.step(full)
            }, complete: {
                if !group.value.isEmpty {
                    let rest = group.value
                    group.value = []
                    _ = try? down.step(rest)
                }
                down.complete()
            })
        }
    }
}

/// One stage of an instantiated transducer. Its closures hold the stage's state; an instance
/// belongs to one channel and is only called with that channel's lock held.
struct Step<Value>: @unchecked Sendable {
    // @unchecked Sendable: the closures and their state are touched only under the owning
    // channel's lock (or by the one task running a pipeline stage).
    /// Takes one value; returns false once no more values are wanted (core.async's `reduced`).
    let step: (Value) throws -> Bool
    /// Flushes what the stage holds, then completes downstream.
    let complete: () -> Void
}

final class Box<T>: @unchecked Sendable {
    // @unchecked Sendable: used only inside a transducer instance (see Step).
    var value: T
    init(_ value: T) { self.value = value }
}

final class Counter: @unchecked Sendable {
    // @unchecked Sendable: used only inside a transducer instance (see Step).
    var value = 0
}

/// A channel's instance of its transducer: values come out into `produced`, which the
/// channel moves into its buffer. Used only under the channel's lock.
@usableFromInline
final class TransformStage<Input, Output>: @unchecked Sendable {
    // @unchecked Sendable: only touched with the owning channel's lock held.
    private var produced: [Output] = []
    private var head: Step<Input>!
    private let onError: (@Sendable (any Error) -> Output?)?
    private var finished = false

    init(_ transducer: Transducer<Input, Output>, onError: (@Sendable (any Error) -> Output?)?) {
        self.onError = onError
        let sink = Step<Output>(step: { [unowned self] v in self.produced.append(v); return true }, complete: {})
        self.head = transducer.build(sink)
    }

    /// Runs one value through; false once the transform has finished.
    @usableFromInline
    func step(_ value: Input) -> Bool {
        if finished { return false }
        do {
            if try !head.step(value) { finished = true }
        } catch {
            if let replacement = onError?(error) { produced.append(replacement) }
        }
        return !finished
    }

    @usableFromInline
    func complete() { head.complete() }

    @usableFromInline
    func drain() -> [Output] {
        defer { produced.removeAll(keepingCapacity: true) }
        return produced
    }
}
