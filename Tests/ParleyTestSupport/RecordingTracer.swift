#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Tracing

/// A tracer for tests: W3C trace context (`traceparent`) on the wire, and spans recorded only
/// in traces a test started with ``root(_:)``, so that tests running beside it (which make
/// calls of their own while ``Gen/propagatesContext`` is on) record nothing and carry nothing.
///
/// Bootstrapped once per test process (``shared``): `InstrumentationSystem.bootstrap` may run
/// only once.
public final class RecordingTracer: Tracer, Sendable {
    /// A span that has ended.
    public struct Finished: Sendable, CustomStringConvertible {
        public let name: String
        public let kind: SpanKind
        public let traceID: String
        public let spanID: String
        public let parentID: String?
        public let attributes: [String: String]
        public let errors: [String]
        public let isError: Bool
        public var description: String { "\(name) [\(kind)] \(spanID) ← \(parentID ?? "root")" }
    }

    /// The ids of the span a context belongs to.
    struct IDs: Sendable, Hashable { let trace: String; let span: String }
    enum IDsKey: ServiceContextKey { typealias Value = IDs }

    private let finished = SpinLocked<[Finished]>([])

    /// The process-wide tracer, bootstrapped on first use.
    public static let shared: RecordingTracer = {
        let t = RecordingTracer()
        InstrumentationSystem.bootstrap(t)
        return t
    }()

    /// Starts a recorded trace: a root span with fresh ids. End it with `end()`.
    public func root(_ name: String) -> RecordingSpan {
        let ids = IDs(trace: Self.hex(bytes: 16), span: Self.hex(bytes: 8))
        var context = ServiceContext.topLevel
        context[IDsKey.self] = ids
        return RecordingSpan(name: name, kind: .internal, context: context, parent: nil, recorder: self)
    }

    /// The ended spans of one trace, in the order they ended.
    public func spans(inTrace trace: String) -> [Finished] {
        finished.withLock { $0.filter { $0.traceID == trace } }
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> RecordingSpan {
        var context = context()
        guard let parent = context[IDsKey.self] else {
            return RecordingSpan(name: operationName, kind: kind, context: context, parent: nil, recorder: nil)
        }
        context[IDsKey.self] = IDs(trace: parent.trace, span: Self.hex(bytes: 8))
        return RecordingSpan(name: operationName, kind: kind, context: context, parent: parent.span, recorder: self)
    }

    public func forceFlush() {}

    public func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject) where Carrier == Inject.Carrier {
        guard let ids = context[IDsKey.self] else { return }
        injector.inject("00-\(ids.trace)-\(ids.span)-01", forKey: "traceparent", into: &carrier)
    }

    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract) where Carrier == Extract.Carrier {
        guard let value = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = value.split(separator: "-")
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16 else { return }
        context[IDsKey.self] = IDs(trace: String(parts[1]), span: String(parts[2]))
    }

    func record(_ span: Finished) { finished.withLock { $0.append(span) } }

    static func hex(bytes: Int) -> String {
        var s = ""
        for _ in 0..<bytes { s += String(format2: UInt8.random(in: 0...255)) }
        return s
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}

/// A span of ``RecordingTracer``: recorded when it ends, if it belongs to a recorded trace.
public final class RecordingSpan: Span, Sendable {
    public let context: ServiceContext
    public let kind: SpanKind
    let parent: String?
    let recorder: RecordingTracer?
    private struct State {
        var name: String
        var attributes: SpanAttributes = [:]
        var errors: [String] = []
        var isError = false
        var ended = false
    }
    private let state: SpinLocked<State>

    init(name: String, kind: SpanKind, context: ServiceContext, parent: String?, recorder: RecordingTracer?) {
        self.context = context
        self.kind = kind
        self.parent = parent
        self.recorder = recorder
        self.state = SpinLocked(State(name: name))
    }

    /// The trace this span belongs to, if it is recorded.
    public var traceID: String? { recorder == nil ? nil : context[RecordingTracer.IDsKey.self]?.trace }
    public var spanID: String? { recorder == nil ? nil : context[RecordingTracer.IDsKey.self]?.span }

    public var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }
    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { $0.attributes = newValue } }
    }
    public var isRecording: Bool { recorder != nil }
    public func setStatus(_ status: SpanStatus) { state.withLock { $0.isError = status.code == .error } }
    public func addEvent(_ event: SpanEvent) {}
    public func addLink(_ link: SpanLink) {}
    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        state.withLock { $0.errors.append("\(error)") }
    }

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        guard let recorder, let ids = context[RecordingTracer.IDsKey.self] else { return }
        let s: State? = state.withLock { st in
            if st.ended { return nil }
            st.ended = true
            return st
        }
        guard let s else { return }
        var attributes: [String: String] = [:]
        s.attributes.forEach { key, value in
            if case .string(let text) = value { attributes[key] = text } else { attributes[key] = "\(value)" }
        }
        recorder.record(.init(name: s.name, kind: kind, traceID: ids.trace, spanID: ids.span, parentID: parent,
                              attributes: attributes, errors: s.errors, isError: s.isError))
    }
}

/// A value behind a spin lock made of one atomic, for test support shared between threads:
/// the thread sanitizer sees its acquire and release (on Linux it does not see
/// `Synchronization.Mutex`'s lock, and reports the accesses it guards as races).
public final class SpinLocked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched between the acquiring exchange and the
    // releasing store of `held`.
    private let held = Atomic<Bool>(false)
    private var value: Value

    public init(_ value: sending Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        while held.exchange(true, ordering: .acquiring) { sched_yield() }
        defer { held.store(false, ordering: .releasing) }
        return try body(&value)
    }
}
