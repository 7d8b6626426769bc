import Foundation

/// Topologies written as command-line text (`parley node --cluster ...`), and node names
/// with environment variables in them, as the seed's deployment builds `app@${POD_IP}`.
public enum ClusterSpec {
    /// Why a spec or a name could not be read.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case unknownStrategy(String)
        case missingArgument(String)
        case badDuration(String)
        case unsetVariable(String)

        public var description: String {
            switch self {
            case .unknownStrategy(let s): return "unknown cluster strategy '\(s)' (epmd:NODES, local-epmd, erlang-hosts, dns:QUERY, kubernetes-dns:SERVICE, kubernetes-dns-srv:SERVICE.NAMESPACE, gossip[:SECRET])"
            case .missingArgument(let s): return "cluster strategy '\(s)' needs an argument after ':'"
            case .badDuration(let s): return "'\(s)' is not a duration (5s, 500ms, 1m)"
            case .unsetVariable(let v): return "environment variable \(v) is not set"
            }
        }
    }

    /// Options the specs share.
    public struct Options: Sendable {
        /// The node basename for DNS strategies (`basename@ip`); nil: this node's own.
        public var basename: String?
        public var polling: Duration = .seconds(5)
        public var gossipPort = 45892
        public var gossipAddress = "233.252.1.32"
        public var gossipBroadcastOnly = false
        public var disconnect: ClusterTopology.DisconnectPolicy = .afterGrace(.seconds(30))
        public var epmdPort: Int?
        public init() {}
    }

    /// The topology a spec names:
    /// - `epmd:a@h1,b@h2`: those nodes;
    /// - `local-epmd`: every node in this host's EPMD;
    /// - `erlang-hosts`: the hosts of `.hosts.erlang`;
    /// - `dns:QUERY`: A and AAAA records of QUERY, as `basename@ip`;
    /// - `kubernetes-dns:SERVICE`: the headless service's A records, as `basename@ip`;
    /// - `kubernetes-dns-srv:SERVICE.NAMESPACE`: its SRV records, as `basename@target`;
    /// - `gossip` or `gossip:SECRET`: libcluster's gossip.
    ///
    /// ```swift
    /// let t = try ClusterSpec.topology("kubernetes-dns:myapp-headless", nodeName: "myapp@10.1.0.5", options: .init())
    /// ```
    public static func topology(_ spec: String, nodeName: String, options: Options) throws(Failure) -> ClusterTopology {
        let (kind, argument): (String, String?) = {
            guard let i = spec.firstIndex(of: ":") else { return (spec, nil) }
            return (String(spec[..<i]), String(spec[spec.index(after: i)...]))
        }()
        func arg() throws(Failure) -> String {
            guard let a = argument, !a.isEmpty else { throw .missingArgument(kind) }
            return a
        }
        let basename = options.basename ?? String(nodeName.prefix { $0 != "@" })
        let strategy: any ClusterStrategy
        switch kind {
        case "epmd":
            strategy = EPMDStrategy(nodes: try arg().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        case "local-epmd":
            strategy = LocalEPMDStrategy(interval: options.polling, epmdPort: options.epmdPort)
        case "erlang-hosts":
            strategy = ErlangHostsStrategy(interval: options.polling, path: argument, epmdPort: options.epmdPort)
        case "dns":
            strategy = DNSPollStrategy(query: try arg(), basename: basename, interval: options.polling)
        case "kubernetes-dns":
            strategy = KubernetesDNSStrategy(service: try arg(), applicationName: basename, pollingInterval: options.polling)
        case "kubernetes-dns-srv":
            let a = try arg()
            guard let dot = a.firstIndex(of: ".") else { throw .missingArgument(kind + " (SERVICE.NAMESPACE)") }
            strategy = KubernetesDNSSRVStrategy(service: String(a[..<dot]), namespace: String(a[a.index(after: dot)...]),
                                                applicationName: basename, pollingInterval: options.polling)
        case "gossip":
            strategy = GossipStrategy(port: options.gossipPort, address: options.gossipAddress,
                                      broadcastOnly: options.gossipBroadcastOnly, secret: argument.flatMap { $0.isEmpty ? nil : $0 })
        default:
            throw .unknownStrategy(kind)
        }
        var t = ClusterTopology(name: spec.split(separator: ":").first.map(String.init) ?? spec, strategy: strategy)
        t.disconnect = options.disconnect
        return t
    }

    /// `5s`, `500ms`, `2m`, or a bare number of seconds.
    public static func duration(_ text: String) throws(Failure) -> Duration {
        let t = text.trimmingCharacters(in: .whitespaces)
        // Whole milliseconds of a plain decimal (digits, at most one point; no exponent).
        func milliseconds(_ number: Substring, _ scale: Int) throws(Failure) -> Duration {
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  number.filter({ $0 == "." }).count <= 1, let n = Double(number) else { throw .badDuration(text) }
            return .milliseconds(Int((n * Double(scale)).rounded()))
        }
        for (suffix, scale) in [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)] where t.hasSuffix(suffix) {
            return try milliseconds(t.dropLast(suffix.count), scale)
        }
        return try milliseconds(Substring(t), 1000)
    }

    /// `text` with `${VAR}` and `$VAR` replaced from `environment`.
    ///
    /// ```swift
    /// try ClusterSpec.expand("app@${POD_IP}", environment: ["POD_IP": "10.1.0.95"])   // app@10.1.0.95
    /// ```
    /// - Throws: ``Failure/unsetVariable(_:)`` for a variable that is not set.
    public static func expand(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(Failure) -> String {
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            guard c == "$" else { out.append(c); i = text.index(after: i); continue }
            var j = text.index(after: i)
            let braced = j < text.endIndex && text[j] == "{"
            if braced { j = text.index(after: j) }
            let start = j
            while j < text.endIndex, text[j] == "_" || text[j].isLetter || text[j].isNumber { j = text.index(after: j) }
            let name = String(text[start..<j])
            if name.isEmpty { out.append(c); i = text.index(after: i); continue }
            if braced {
                guard j < text.endIndex, text[j] == "}" else { out.append(contentsOf: text[i..<j]); i = j; continue }
                j = text.index(after: j)
            }
            guard let value = environment[name] else { throw .unsetVariable(name) }
            out += value
            i = j
        }
        return out
    }
}
