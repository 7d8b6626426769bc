import ParleyOTP

/// A supervision tree as the Applications tab draws it: each supervisor with its children,
/// their restart counts and last crash reasons, nested supervisors expanded.
public struct SupervisionNode: Sendable, Codable {
    public let id: String
    public let pid: String?
    public let name: String?
    /// `supervisor` or `worker`.
    public let type: String
    public let restart: String?
    public let restarts: Int
    public let lastExitReason: String?
    public let children: [SupervisionNode]
    /// Why the children could not be read (a supervisor busy restarting, say).
    public let error: String?
}

enum SupervisionTrees {
    /// Every tree on `node`: supervisors that no other supervisor lists as a child are roots.
    static func all(on node: LocalNode) async -> [SupervisionNode] {
        let supervisors = node.summaries().filter { $0.behaviour == "supervisor" }.sorted { $0.pid < $1.pid }
        var trees: [SupervisionNode] = []
        var seen = Set<Pid>()
        for s in supervisors where !seen.contains(s.pid) {
            let tree = await expand(id: s.registeredName ?? s.label ?? s.pid.description, pid: s.pid, name: s.registeredName,
                                    restart: nil, restarts: 0, lastExit: nil, depth: 0, node: node, seen: &seen)
            trees.append(tree)
        }
        // A supervisor found under another root after it was taken as a root: drop its copy.
        var nested = Set<String>()
        func collect(_ n: SupervisionNode, top: Bool) {
            if !top, n.type == "supervisor", let p = n.pid { nested.insert(p) }
            n.children.forEach { collect($0, top: false) }
        }
        trees.forEach { collect($0, top: true) }
        return trees.filter { $0.pid.map { !nested.contains($0) } ?? true }
    }

    static func expand(id: String, pid: Pid, name: String?, restart: String?, restarts: Int, lastExit: String?,
                       depth: Int, node: LocalNode, seen: inout Set<Pid>) async -> SupervisionNode {
        seen.insert(pid)
        var children: [SupervisionNode] = []
        var failure: String? = nil
        if depth < 32 {
            do {
                for c in try await Supervisor(pid).whichChildren() {
                    if c.type == .supervisor, let cp = c.pid, !seen.contains(cp) {
                        children.append(await expand(id: c.id, pid: cp, name: node.summary(cp)?.registeredName,
                                                     restart: "\(c.restart)", restarts: c.restarts,
                                                     lastExit: c.lastExitReason, depth: depth + 1, node: node, seen: &seen))
                    } else {
                        children.append(SupervisionNode(
                            id: c.id, pid: c.pid?.description, name: c.pid.flatMap { node.summary($0)?.registeredName },
                            type: c.type.rawValue, restart: "\(c.restart)", restarts: c.restarts,
                            lastExitReason: c.lastExitReason, children: [], error: nil))
                    }
                }
            } catch {
                failure = "\(error)"
            }
        }
        return SupervisionNode(id: id, pid: pid.description, name: name, type: "supervisor", restart: restart,
                               restarts: restarts, lastExitReason: lastExit, children: children, error: failure)
    }
}
