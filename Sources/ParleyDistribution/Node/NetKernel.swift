@_spi(Distribution) import Parley

/// The part of `net_kernel` other nodes rely on, as a registered process (so that the
/// monitor `gen:call` sets up finds it): `{is_auth, Node}` is answered `yes`, which makes
/// `net_adm:ping/1` (`Node.ping`) return `pong`. Other requests get `{error, unsupported}`.
enum NetKernel {
    static func start() {
        _ = try? Process.spawn(SpawnOptions(name: "net_kernel"), state: ()) { _, message, _ in
            guard let call = message as? Gen.CallMessage else { return .continue }
            if let req = call.request as? Term, case .tuple(let r) = req, r.first == .atom("is_auth") {
                Gen.reply(call.from, Term.atom("yes"))
            } else {
                Gen.reply(call.from, Term.tuple([.atom(.error), .atom("unsupported")]))
            }
            return .continue
        }
    }

    static func stop() {
        if let pid = Process.whereis("net_kernel") { Process.exit(pid, .kill) }
    }
}
