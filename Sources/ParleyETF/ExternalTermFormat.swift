@_spi(Distribution) import Parley

public enum ExternalTermFormat {
    public static let version: UInt8 = 131

    /// Encodes `term` with the version byte, as `term_to_binary/1` does.
    public static func encode(_ term: Term) throws(TermEncodingError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        out.append(version)
        try TermWriter.write(term, into: &out, identity: .current)
        return out
    }

    /// Decodes one complete term (version byte first), as `binary_to_term/1` does.
    /// - Throws: ``TermDecodingError`` for anything malformed, over a limit, or left over.
    public static func decode(_ bytes: [UInt8], limits: TermLimits = TermLimits()) throws(TermDecodingError) -> Term {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(TermDecodingError) -> Term in
                var reader = TermReader(raw, identity: .current, limits: limits)
                let t = try reader.readVersioned()
                if reader.pos != raw.count { throw .trailingBytes(raw.count - reader.pos) }
                return t
            }
        }.get()
    }
}

/// A node's name and creation as they appear in pids on the wire, and the node itself (whose
/// table turns its own pids from the wire back into live ones).
///
/// A class, passed by reference: every message to another node takes it, and as a struct each
/// copy retained its name, its bytes and its `LocalNode` (a node held weakly anywhere has a
/// side table, and each of its retains takes the runtime's slow path).
package final class WireIdentity: Sendable {
    package let home: LocalNode
    package let name: String
    package let creation: UInt32
    /// The name's bytes when it is ASCII (then the same in every atom encoding): pids of
    /// this node are recognised on the wire by comparing bytes, without making an atom.
    let asciiName: [UInt8]?

    package init(home: LocalNode, name: String, creation: UInt32) {
        self.home = home
        self.name = name
        self.creation = creation
        self.asciiName = name.utf8.allSatisfy { $0 < 0x80 } ? Array(name.utf8) : nil
    }
    /// The default node's, for encoding and decoding outside any connection.
    package static var current: WireIdentity {
        WireIdentity(home: .default, name: LocalNode.default.name, creation: LocalNode.default.wireCreation)
    }

    /// The name and creation `p` carries on the wire when this node encodes it.
    @inline(__always)
    func parts(of p: Pid) -> (name: String, creation: UInt32) {
        if p.node === home.pidNode, p.creation == 0 { return (name, creation) }
        if LocalNode.hostsSeveral { return LocalNode.wireParts(of: p) }
        return (p.node?.name ?? name, p.creation)
    }
}
