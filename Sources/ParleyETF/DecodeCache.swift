#if canImport(Glibc)
import Glibc
#endif
@_spi(Distribution) import Parley

/// What one connection decodes over and over: the same atoms (`msg`, `'$gen_call'`, node
/// names), the same nodes, the same local pids. Direct-mapped and small; a hit skips the
/// atom table's lock and hashing, or the process table's. Owned by one connection and used
/// only on its event loop.
package final class DecodeCache {
    // Only the owning connection's event loop thread touches these (see the class comment),
    // so the dynamic exclusivity checks are redundant.
    @exclusivity(unchecked) private var atoms = [(key: [UInt8], atom: Atom)?](repeating: nil, count: 64)
    @exclusivity(unchecked) private var nodes: [Atom: Node] = [:]
    @exclusivity(unchecked) private var pids = [Pid?](repeating: nil, count: 64)
    /// The distribution header's atom cache as the peer has filled it (2,048 entries, made
    /// with the first header that sets one), and the atoms the current frame's header
    /// listed (``TermReader/readDistHeader()``).
    @exclusivity(unchecked) private var distAtoms: [Atom?] = []
    @exclusivity(unchecked) var frameAtoms: [Atom] = []

    func distAtom(_ index: Int) -> Atom? { index < distAtoms.count ? distAtoms[index] : nil }

    func setDistAtom(_ index: Int, _ atom: Atom) {
        if distAtoms.isEmpty { distAtoms = [Atom?](repeating: nil, count: AtomRefs.cacheSize) }
        distAtoms[index] = atom
    }

    package init() {}

    @inline(__always) private func slot(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let first = bytes.first, let last = bytes.last else { return 0 }
        return (bytes.count &* 31 &+ Int(first) &* 7 &+ Int(last)) & 63
    }

    func atom(_ bytes: UnsafeRawBufferPointer) -> Atom? {
        guard let e = atoms[slot(bytes)], e.key.count == bytes.count else { return nil }
        guard let b = bytes.baseAddress, !e.key.isEmpty else { return e.key.isEmpty ? e.atom : nil }
        return e.key.withUnsafeBytes { memcmp($0.baseAddress!, b, bytes.count) == 0 } ? e.atom : nil
    }

    func remember(_ bytes: UnsafeRawBufferPointer, _ atom: Atom) {
        atoms[slot(bytes)] = (Array(bytes), atom)
    }

    func node(_ atom: Atom) -> Node {
        if let n = nodes[atom] { return n }
        let n = Node.named(atom.name)
        if nodes.count < 1024 { nodes[atom] = n }
        return n
    }

    /// A local pid. A cached pid whose process has died is still the right answer: sends to
    /// it are dropped, as they must be, and ids are never reused while a pid could be cached.
    func localPid(id: UInt32, serial: UInt32, home: LocalNode) -> Pid {
        let i = Int((id ^ serial &* 16_777_619) & 63)
        if let p = pids[i], p.id == id, p.serial == serial { return p }
        let p = home.localPid(id: id, serial: serial)
        if p.isAlive { pids[i] = p }
        return p
    }
}
