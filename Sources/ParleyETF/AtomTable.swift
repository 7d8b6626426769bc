import ParleyRuntime
import Synchronization

/// The atoms other nodes have made this node hold. The BEAM never frees an atom, and its
/// table has a fixed size, so a peer sending endless new atoms crashes it: a classic denial
/// of service. Parley interns every atom it decodes here, and a decode that would go past
/// ``limit`` fails with ``TermDecodingError/atomTableFull(limit:)`` instead: the connection
/// that sent it is closed and the node keeps running.
///
/// ```swift
/// AtomTable.limit = 100_000      // before starting the node
/// print(AtomTable.count)
/// ```
public enum AtomTable {
    private struct State {
        var names = Set<String>()
        var limit = 1_048_576  // the BEAM's default atom limit (+t)
    }
    // A lock around a Set (Parley's LockWord, which the thread sanitizer understands): one
    // lock round trip per atom that misses the connection's decode cache.
    private static let state = Locked(State())

    /// How many distinct atoms the table may hold (default 1,048,576, the BEAM's default).
    public static var limit: Int {
        get { state.withLock { $0.limit } }
        set { state.withLock { $0.limit = max(0, newValue) } }
    }

    /// How many distinct atoms have been decoded so far.
    public static var count: Int { state.withLock { $0.names.count } }

    /// The interned atom named `name`.
    /// - Throws: ``TermDecodingError/atomTableFull(limit:)`` if it is new and the table is full.
    static func intern(_ name: String) throws(TermDecodingError) -> Atom {
        let result: Result<String, TermDecodingError> = state.withLock { s in
            if let existing = s.names.firstIndex(of: name) { return .success(s.names[existing]) }
            if s.names.count >= s.limit { return .failure(.atomTableFull(limit: s.limit)) }
            s.names.insert(name)
            return .success(name)
        }
        return Atom(try result.get())
    }
}
