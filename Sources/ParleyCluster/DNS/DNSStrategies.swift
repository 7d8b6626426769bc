import Foundation

/// Every A and AAAA record of a name, each IP a node `basename@ip`, polled (libcluster's
/// `Cluster.Strategy.DNSPoll`).
///
/// ```swift
/// ClusterTopology(name: "dns", strategy: DNSPollStrategy(query: "app.internal", basename: "app"))
/// ```
public struct DNSPollStrategy: ClusterStrategy {
    public var query: String
    public var basename: String
    public var interval: Duration
    public var resolver: DNSResolver
    public init(query: String, basename: String, interval: Duration = .seconds(5), resolver: DNSResolver = .system) {
        self.query = query
        self.basename = basename
        self.interval = interval
        self.resolver = resolver
    }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        try await poll(cluster, every: interval) {
            let ips = try await resolver.a(query) + resolver.aaaa(query)
            return ips.map { "\(basename)@\($0)" }
        }
    }
}

/// A Kubernetes headless service's A records, each pod IP a node `applicationName@ip`
/// (libcluster's `Cluster.Strategy.Kubernetes.DNS`, as the seed configures it: `service`,
/// `application_name`, `polling_interval` 5 s by default). Each pod's own node name must be
/// `applicationName@<its pod IP>`: pass the IP in from the downward API (`status.podIP`), as
/// `deploy/kubernetes` does.
///
/// ```swift
/// ClusterTopology(name: "k8s", strategy: KubernetesDNSStrategy(service: "myapp-headless", applicationName: "myapp"))
/// ```
public struct KubernetesDNSStrategy: ClusterStrategy {
    public var service: String
    public var applicationName: String
    public var pollingInterval: Duration
    public var resolver: DNSResolver
    public init(service: String, applicationName: String, pollingInterval: Duration = .seconds(5), resolver: DNSResolver = .system) {
        self.service = service
        self.applicationName = applicationName
        self.pollingInterval = pollingInterval
        self.resolver = resolver
    }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        try await poll(cluster, every: pollingInterval) {
            try await resolver.a(service).map { "\(applicationName)@\($0)" }
        }
    }
}

/// A StatefulSet's headless service's SRV records, each target a node
/// `applicationName@pod-0.service.namespace.svc.cluster.local` (libcluster's
/// `Cluster.Strategy.Kubernetes.DNSSRV`; the query is
/// `service.namespace.svc.$CLUSTER_DOMAIN`, `cluster.local.` by default).
public struct KubernetesDNSSRVStrategy: ClusterStrategy {
    public var service: String
    public var namespace: String
    public var applicationName: String
    public var pollingInterval: Duration
    public var clusterDomain: String
    public var resolver: DNSResolver
    public init(service: String, namespace: String, applicationName: String, pollingInterval: Duration = .seconds(5),
                clusterDomain: String = ProcessInfo.processInfo.environment["CLUSTER_DOMAIN"] ?? "cluster.local.",
                resolver: DNSResolver = .system) {
        self.service = service
        self.namespace = namespace
        self.applicationName = applicationName
        self.pollingInterval = pollingInterval
        self.clusterDomain = clusterDomain
        self.resolver = resolver
    }

    /// The name asked for: `service.namespace.svc.<cluster domain>`.
    public var query: String { "\(service).\(namespace).svc.\(clusterDomain)" }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        let query = self.query
        try await poll(cluster, every: pollingInterval) {
            try await resolver.srv(query).map { r in
                "\(applicationName)@\(r.target.hasSuffix(".") ? String(r.target.dropLast()) : r.target)"
            }
        }
    }
}

/// A poll loop: a failed lookup keeps the last list (a DNS hiccup is not a reason for every
/// node to leave) and is logged once per streak.
func poll(_ cluster: ClusterStrategyContext, every interval: Duration, _ lookup: () async throws -> [String]) async throws {
    var failing = false
    while true {
        do {
            cluster.listed(try await lookup())
            if failing { cluster.logger.info("topology \(cluster.topology): DNS answers again") }
            failing = false
        } catch {
            if !failing { cluster.logger.warning("topology \(cluster.topology): \(error); keeping the last list") }
            failing = true
        }
        try await Task.sleep(for: interval)
    }
}
