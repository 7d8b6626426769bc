import InMemoryTracing
import Parley
import Tracing

/// The tour's tracer: swift-distributed-tracing's in-memory one, bootstrapped on first use
/// (once per OS process), so the tour can print the spans its calls make.
enum TourTracing {
    static let tracer: InMemoryTracer = {
        // W3C-sized ids (32 and 16 hex digits), as an OpenTelemetry tracer makes them.
        let ids = InMemoryTracer.IDGenerator(
            nextTraceID: { hex(16) },
            nextSpanID: { hex(8) }
        )
        let t = InMemoryTracer(idGenerator: ids, recordInjections: false, recordExtractions: false)
        InstrumentationSystem.bootstrap(t)
        return t
    }()

    private static func hex(_ bytes: Int) -> String {
        (0..<bytes).map { _ in
            let b = UInt8.random(in: 0...255)
            return String(b >> 4, radix: 16) + String(b & 15, radix: 16)
        }.joined()
    }

    /// Runs `body` with context propagation on, inside a root span named `name`; returns the
    /// body's result and the trace's finished spans, oldest parent first.
    static func traced<T>(_ name: String, _ body: () async throws -> T) async throws -> (T, [FinishedInMemorySpan]) {
        _ = tracer
        Gen.propagatesContext = true
        defer { Gen.propagatesContext = false }
        var trace = ""
        let result = try await withSpan(name) { span in
            trace = span.context.inMemorySpanContext?.traceID ?? ""
            return try await body()
        }
        let spans = tracer.popFinishedSpans().filter { $0.traceID == trace }
        return (result, spans)
    }

    /// The spans as a tree, one line each, indented under their parent, with durations.
    static func tree(_ spans: [FinishedInMemorySpan], indent: String) -> [String] {
        var lines: [String] = []
        func walk(_ parent: String?, _ depth: Int) {
            for s in spans where s.parentSpanID == parent {
                let us = Double(s.endInstant.nanosecondsSinceEpoch &- s.startInstant.nanosecondsSinceEpoch) / 1000
                let kind = s.kind == .internal ? "" : " (\(s.kind))"
                lines.append(indent + String(repeating: "  ", count: depth) + "\(s.operationName)\(kind)  \(Int(us)) µs")
                walk(s.spanID, depth + 1)
            }
        }
        let ids = Set(spans.map(\.spanID))
        // Roots: spans whose parent is not in this list.
        for root in spans where root.parentSpanID.map({ !ids.contains($0) }) ?? true {
            let us = Double(root.endInstant.nanosecondsSinceEpoch &- root.startInstant.nanosecondsSinceEpoch) / 1000
            lines.append(indent + "\(root.operationName)  \(Int(us)) µs")
            walk(root.spanID, 1)
        }
        return lines
    }
}
