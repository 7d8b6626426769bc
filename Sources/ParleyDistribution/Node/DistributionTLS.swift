import NIOCore
#if TLS
import NIOSSL

/// The client and server TLS contexts of a node whose distribution runs over TLS.
typealias TLSContexts = (client: NIOSSLContext, server: NIOSSLContext)

/// TLS for distribution connections (built with the package's `TLS` trait): the same
/// protocol inside TLS, as Erlang's `inet_tls_dist`.
enum DistributionTLS {
    static func contexts(_ t: Distribution.TLS) throws -> TLSContexts {
        let chain = try NIOSSLCertificate.fromPEMFile(t.certificateChainFile).map { NIOSSLCertificateSource.certificate($0) }
        let key = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(file: t.privateKeyFile, format: .pem))
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain
        client.privateKey = key
        if let roots = t.trustRootsFile {
            client.trustRoots = .file(roots)
            server.trustRoots = .file(roots)
            server.certificateVerification = .noHostnameVerification
            client.certificateVerification = .noHostnameVerification
        } else {
            client.certificateVerification = .none
            server.certificateVerification = .none
        }
        return (try NIOSSLContext(configuration: client), try NIOSSLContext(configuration: server))
    }

    static func addClientHandler(_ tls: TLSContexts, to channel: any NIOCore.Channel) throws {
        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls.client, serverHostname: nil))
    }

    static func addServerHandler(_ tls: TLSContexts, to channel: any NIOCore.Channel) throws {
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.server))
    }
}
#else

/// Built without the `TLS` trait: TLS contexts cannot be made (the only maker throws).
struct TLSContexts: Sendable {
    private init() {}
}

/// Built without the `TLS` trait: a configuration that asks for TLS is refused with a typed
/// error that says how to turn it on.
enum DistributionTLS {
    static func contexts(_ t: Distribution.TLS) throws -> TLSContexts {
        throw DistributionError.tlsUnavailable
    }

    static func addClientHandler(_ tls: TLSContexts, to channel: any NIOCore.Channel) throws {}
    static func addServerHandler(_ tls: TLSContexts, to channel: any NIOCore.Channel) throws {}
}
#endif
