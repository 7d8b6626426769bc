import Foundation
import ParleyTestSupport
import Synchronization
import Testing
@_spi(Distribution) @testable import Parley
@testable import ParleyDistribution

extension DistributionTests {
    /// Distribution over TLS (Erlang's inet_tls_dist shape: the same protocol inside TLS).
    @Suite("Distribution over TLS (the TLS trait)", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    struct TLSTests {
        /// A CA, and a certificate it signed (or a self-signed one), in a temporary folder.
        static func makeCertificates() throws -> (dir: String, ca: String, cert: String, key: String, rogueCert: String, rogueKey: String) {
            let dir = NSTemporaryDirectory() + "parley-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let script = """
            set -e
            cd '\(dir)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=parley-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=127.0.0.1 2>/dev/null
            openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 2 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 2 -subj /CN=rogue 2>/dev/null
            """
            do {
                let openssl = try runChildBlocking(["/bin/sh", "-c", script])
                guard openssl.status == 0 else { throw ChildError.spawnFailed("openssl: \(openssl.output)", 0) }
            } catch {
                try? FileManager.default.removeItem(atPath: dir)
                throw error
            }
            return (dir, dir + "/ca.pem", dir + "/node.pem", dir + "/node.key", dir + "/rogue.pem", dir + "/rogue.key")
        }

        #if TLS
        @Test("Two Parley nodes connect over TLS and ping; a node whose certificate the CA did not sign is refused")
        func tlsBetweenParleyNodes() async throws {
            _ = try await Cluster.node()
            let c = try Self.makeCertificates()
            defer { try? FileManager.default.removeItem(atPath: c.dir) }
            let tls = ["--tls-cert", c.cert, "--tls-key", c.key, "--tls-ca", c.ca]
            let aName = ExternalNode.uniqueName("tlsa")
            let server = try ExternalNode.launch(name: aName, executable: Cluster.parleyExecutable,
                                                 arguments: ["--name", aName, "--cookie", Cluster.cookie] + tls)
            defer { server.kill() }
            #expect(await eventually(within: .seconds(15)) { server.output.withLock { $0.contains("ready") } })
            // A TLS client with a certificate from the same CA: connected, and ping says pong.
            let bName = ExternalNode.uniqueName("tlsb")
            let good = try ExternalNode.launch(name: bName, executable: Cluster.parleyExecutable,
                                               arguments: ["--name", bName, "--cookie", Cluster.cookie, "--connect", aName, "--exit-after", "1"] + tls)
            defer { good.kill() }
            #expect(await eventually(within: .seconds(20)) { !good.process.isRunning })
            #expect(good.output.withLock { $0 }.contains("connected to \(aName): Node.ping -> pong"), "\(good.output.withLock { $0 })")
            // A client whose certificate the CA did not sign: the TLS handshake fails, no connection.
            let rName = ExternalNode.uniqueName("tlsr")
            let rogue = try ExternalNode.launch(name: rName, executable: Cluster.parleyExecutable,
                                                arguments: ["--name", rName, "--cookie", Cluster.cookie, "--connect", aName,
                                                            "--tls-cert", c.rogueCert, "--tls-key", c.rogueKey, "--tls-ca", c.ca])
            defer { rogue.kill() }
            #expect(await eventually(within: .seconds(20)) { !rogue.process.isRunning })
            let out = rogue.output.withLock { $0 }
            #expect(!out.contains("pong") && out.contains("cannot connect"), "\(out)")
            // And a plain-TCP node (this test process) cannot talk to the TLS node.
            #expect(!(await Distribution.ping(aName, timeout: .seconds(3))))
        }
        #else
        @Test("Built without the TLS trait: a configuration with TLS is refused with tlsUnavailable, and the node can start without it")
        func tlsNeedsTheTrait() async throws {
            let node = try LocalNode(name: ExternalNode.uniqueName("notls"))
            var config = Distribution.Configuration(name: node.name, cookie: Cluster.cookie)
            config.tls = Distribution.TLS(certificateChainFile: "/nonexistent.pem", privateKeyFile: "/nonexistent.key")
            await #expect(throws: DistributionError.tlsUnavailable) { try await node.startDistribution(config) }
            #expect(!node.isDistributed)
            config.tls = nil
            try await node.startDistribution(config)
            #expect(node.isDistributed)
            await node.stopDistribution()
        }
        #endif
    }
}
