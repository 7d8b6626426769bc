import Testing
@testable import ParleyCluster

/// `parley node`'s text forms: durations, `${VAR}` in names, and `--cluster` specs.
@Suite("ClusterSpec: the command line's text forms")
struct ClusterSpecTests {
    @Test("Durations: ms, s, m, h, a bare number of seconds, decimals (1.5s); anything else is a typed error")
    func durations() throws {
        #expect(try ClusterSpec.duration("500ms") == .milliseconds(500))
        #expect(try ClusterSpec.duration("5s") == .seconds(5))
        #expect(try ClusterSpec.duration("1.5s") == .milliseconds(1500))
        #expect(try ClusterSpec.duration("0.25") == .milliseconds(250))
        #expect(try ClusterSpec.duration("2m") == .seconds(120))
        #expect(try ClusterSpec.duration("1h") == .seconds(3600))
        #expect(try ClusterSpec.duration("30") == .seconds(30))
        for bad in ["", "s", "-1s", "1e3ms", "1.2.3s", "fast", "5 parsecs", "nan", "infs"] {
            #expect(throws: ClusterSpec.Failure.badDuration(bad)) { try ClusterSpec.duration(bad) }
        }
    }

    @Test("Names from the environment, as the seed's deployment builds app@${POD_IP}; an unset variable is an error, not an empty host")
    func expand() throws {
        #expect(try ClusterSpec.expand("app@${POD_IP}", environment: ["POD_IP": "10.1.0.95"]) == "app@10.1.0.95")
        #expect(try ClusterSpec.expand("$APP@h", environment: ["APP": "web"]) == "web@h")
        #expect(throws: ClusterSpec.Failure.unsetVariable("POD_IP")) { try ClusterSpec.expand("app@${POD_IP}", environment: [:]) }
    }

    @Test("--cluster specs name their strategy; an unknown one or a missing argument is a typed error")
    func specs() throws {
        let o = ClusterSpec.Options()
        #expect(try ClusterSpec.topology("epmd:a@h1,b@h2", nodeName: "c@h3", options: o).strategy is EPMDStrategy)
        #expect(try ClusterSpec.topology("gossip:s3cret", nodeName: "c@h3", options: o).strategy is GossipStrategy)
        #expect(try ClusterSpec.topology("kubernetes-dns:svc", nodeName: "app@10.0.0.1", options: o).strategy is KubernetesDNSStrategy)
        #expect(throws: ClusterSpec.Failure.unknownStrategy("carrier-pigeon")) { try ClusterSpec.topology("carrier-pigeon", nodeName: "c@h", options: o) }
        #expect(throws: ClusterSpec.Failure.missingArgument("dns")) { try ClusterSpec.topology("dns", nodeName: "c@h", options: o) }
    }
}
