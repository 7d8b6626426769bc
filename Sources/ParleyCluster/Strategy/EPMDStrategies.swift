import Foundation
import ParleyDistribution

/// A fixed list of nodes (libcluster's `Cluster.Strategy.Epmd`): each is connected, and
/// dialled again whenever it drops.
///
/// ```swift
/// ClusterTopology(name: "static", strategy: EPMDStrategy(nodes: ["a@10.0.0.1", "b@10.0.0.2"]))
/// ```
public struct EPMDStrategy: ClusterStrategy {
    public var nodes: [String]
    public init(nodes: [String]) { self.nodes = nodes }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        cluster.listed(nodes)
        try await Task.sleep(for: .seconds(Int64.max / 2_000_000_000))
    }
}

/// Every node registered with this host's EPMD (libcluster's `Cluster.Strategy.LocalEpmd`),
/// named with this node's host part. libcluster looks once at start; this polls, so nodes
/// started later join too.
///
/// ```swift
/// ClusterTopology(name: "local", strategy: LocalEPMDStrategy())
/// ```
public struct LocalEPMDStrategy: ClusterStrategy {
    /// How often EPMD is asked again.
    public var interval: Duration
    /// EPMD's port; nil: `ERL_EPMD_PORT` or 4369.
    public var epmdPort: Int?
    public init(interval: Duration = .seconds(5), epmdPort: Int? = nil) {
        self.interval = interval
        self.epmdPort = epmdPort
    }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        let host = String(cluster.nodeName.split(separator: "@", maxSplits: 1).last ?? "127.0.0.1")
        while true {
            do {
                let names = try await EPMDClient.names(epmdPort: epmdPort)
                cluster.listed(names.map { "\($0.name)@\(host)" })
            } catch {
                cluster.logger.warning("local EPMD did not answer NAMES: \(error)")
            }
            try await Task.sleep(for: interval)
        }
    }
}

/// The nodes on the hosts of `.hosts.erlang` (libcluster's `Cluster.Strategy.ErlangHosts`,
/// `net_adm:host_file/0`): the file in the working directory, else in `$HOME`; each host's
/// EPMD is asked for its nodes, polled every `interval`.
///
/// `.hosts.erlang` holds one quoted atom per line: `'host1.example.com'.`
public struct ErlangHostsStrategy: ClusterStrategy {
    public var interval: Duration
    /// The file; nil: `.hosts.erlang` in the working directory, then in `$HOME`.
    public var path: String?
    public var epmdPort: Int?
    public init(interval: Duration = .seconds(5), path: String? = nil, epmdPort: Int? = nil) {
        self.interval = interval
        self.path = path
        self.epmdPort = epmdPort
    }

    /// The hosts a `.hosts.erlang` text names (Erlang terms: `'host'.` or `host.`).
    public static func hosts(in text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            var s = line.trimmingCharacters(in: .whitespaces)
            if s.hasPrefix("%") || s.isEmpty { return nil }
            guard s.hasSuffix(".") else { return nil }
            s.removeLast()
            s = s.trimmingCharacters(in: .whitespaces)
            if s.hasPrefix("'") && s.hasSuffix("'") && s.count >= 2 { s = String(s.dropFirst().dropLast()) }
            return s.isEmpty ? nil : s
        }
    }

    func file() -> String? {
        if let path { return FileManager.default.fileExists(atPath: path) ? path : nil }
        let candidates = [FileManager.default.currentDirectoryPath + "/.hosts.erlang"]
            + (ProcessInfo.processInfo.environment["HOME"].map { [$0 + "/.hosts.erlang"] } ?? [])
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        guard let file = file() else {
            cluster.logger.warning("no .hosts.erlang in the working directory or $HOME: topology \(cluster.topology) finds nothing")
            try await Task.sleep(for: .seconds(Int64.max / 2_000_000_000))
            return
        }
        // A host whose EPMD does not answer keeps its last answer: an EPMD restart is not a
        // reason for its nodes to leave.
        var last: [String: [String]] = [:]
        while true {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            var nodes: [String] = []
            for host in Self.hosts(in: text) {
                do {
                    last[host] = try await EPMDClient.names(host: host, epmdPort: epmdPort).map { "\($0.name)@\(host)" }
                } catch {
                    cluster.logger.debug("EPMD on \(host) did not answer: \(error)")
                }
                nodes += last[host] ?? []
            }
            cluster.listed(nodes)
            try await Task.sleep(for: interval)
        }
    }
}
