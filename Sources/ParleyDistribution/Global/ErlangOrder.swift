@_spi(Distribution) import Parley

/// Erlang's term order where `global` depends on it: node names (atoms) and pids. Both
/// sides of a connection build the same lock id, `{global, lists:sort([LockerA, LockerB])}`,
/// and pick the same "boss" (`lists:max` of node names), so Parley must sort as erts does.
///
/// Checked on OTP 25.2.3 with pids built from NEW_PID_EXT bytes: pids compare by serial
/// first, then process number (all 32 bits), then node name, then creation
/// (`[<c@h.3.0>, <a@h.5.0>, <b@h.5.0>, <a@h.5.1>, <a@h.4.9>]`); atoms by their characters.
enum ErlangOrder {
    /// Atom order: character by character (code points; UTF-8 bytes sort the same way).
    static func less(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// `lists:max/1` of node names (`the_boss`).
    static func boss(_ nodes: [String]) -> String? {
        nodes.max { less($0, $1) }
    }

    /// Pid order; `home` names this node, whose pids carry no node of their own.
    static func less(_ a: Pid, _ b: Pid, home: String) -> Bool {
        if a.serial != b.serial { return a.serial < b.serial }
        if a.id != b.id { return a.id < b.id }
        let na = a.node?.name ?? home, nb = b.node?.name ?? home
        if na != nb { return less(na, nb) }
        return a.creation < b.creation
    }

    /// `lists:sort([A, B])` of two pids.
    static func sorted(_ a: Pid, _ b: Pid, home: String) -> [Pid] {
        less(b, a, home: home) ? [b, a] : [a, b]
    }
}
