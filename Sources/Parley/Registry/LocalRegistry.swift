import ParleyRuntime
import Synchronization

/// Erlang's local name registry of one ``LocalNode``: `register/2`, `whereis/1`,
/// `unregister/1`, `registered/0`. A name is freed when its process exits.
final class LocalRegistry: Sendable {
    private let names = Locked<[String: Pid]>([:])

    /// Lock order: the registry lock, then a process lock; never the reverse.
    func register(_ name: String, _ pid: Pid) throws(ProcessError) {
        guard let process = pid.process else { throw .notLocal(pid) }
        try names.withLock { table throws(ProcessError) in
            if let owner = table[name] { throw ProcessError.nameTaken(name, by: owner) }
            try process.withShared { s throws(ProcessError) in
                if s.mailbox.isDead { throw ProcessError.noproc(pid) }
                let e = s.ensureExtras()
                if let existing = e.name { throw ProcessError.alreadyRegistered(pid, as: existing) }
                e.name = name
            }
            table[name] = pid
        }
    }

    func unregister(_ name: String) throws(ProcessError) {
        let pid = names.withLock { $0.removeValue(forKey: name) }
        guard let pid else { throw .notRegistered(name) }
        pid.process?.withShared { s in
            if s.extras?.name == name { s.extras?.name = nil }
        }
    }

    func remove(_ name: String, ifOwnedBy pid: Pid) {
        names.withLock { table in
            if table[name] == pid { table[name] = nil }
        }
    }

    func whereis(_ name: String) -> Pid? { names.withLock { $0[name] } }

    func registered() -> [String] { names.withLock { Array($0.keys) }.sorted() }
}
