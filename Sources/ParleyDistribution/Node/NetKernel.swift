@_spi(Distribution) import Parley
import ParleyOTP

/// The part of `net_kernel` other nodes rely on, as a registered GenServer (so that the
/// monitor `gen:call` sets up finds it): `{is_auth, Node}` is answered `yes`, which makes
/// `net_adm:ping/1` (`Node.ping`) return `pong`. Other requests get `{error, unsupported}`.
struct NetKernel: GenServer {
    static let name = "net_kernel"
    typealias Call = Term
    typealias Reply = Term

    mutating func handleCall(_ request: Term, from: Gen.From, _ me: CallbackProcess) -> CallResult {
        if case .tuple(let r) = request, r.first == .atom("is_auth") { return .reply(.atom("yes")) }
        return .reply(.tuple([.atom(.error), .atom("unsupported")]))
    }

    static func start(on node: LocalNode) {
        _ = try? NetKernel().start(name: .local(name), options: GenServerOptions(node: node))
    }

    static func stop(on node: LocalNode) {
        if let pid = node.whereis(name) { Process.exit(pid, .kill) }
    }
}
