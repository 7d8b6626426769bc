import Crypto
import _CryptoExtras
import Foundation
import NIOCore
import NIOPosix
import ParleyETF

/// libcluster's `Cluster.Strategy.Gossip`, wire-compatible: Parley nodes and Elixir nodes
/// that run it find each other.
///
/// Each node sends a heartbeat to a UDP group (233.252.1.32:45892, TTL 1, by default)
/// every uniformly random 1–5000 ms, and connects to every node whose heartbeat it hears.
/// A heartbeat is `"heartbeat::"` followed by the term `%{node: name}`; with a shared secret
/// it is a random 16-byte IV followed by AES-256-CBC (key: SHA-256 of the secret, PKCS#7
/// padding) of that. Packets that do not parse or decrypt are dropped, and a node with the
/// wrong secret never joins. Gossip only connects; it never disconnects.
///
/// ```swift
/// // Development: every container on one network finds the others.
/// ClusterTopology(name: "gossip", strategy: GossipStrategy(secret: "s3cret"))
/// // A host without multicast (a loopback-only test): broadcast instead.
/// GossipStrategy(address: "127.255.255.255", broadcastOnly: true)
/// ```
public struct GossipStrategy: ClusterStrategy {
    /// The UDP port (libcluster's default, 45892).
    public var port: Int
    /// The address to bind (`if_addr`; all interfaces by default).
    public var bindAddress: String
    /// Where heartbeats go: the multicast group, or the broadcast address with
    /// ``broadcastOnly``.
    public var address: String
    /// The multicast TTL (1: this network only).
    public var multicastTTL: Int
    /// The interface address for multicast (`multicast_if`); nil: the system's choice.
    public var multicastInterface: String?
    /// Send to ``address`` as a broadcast, with no multicast setup (libcluster's
    /// `broadcast_only`), for hosts without multicast.
    public var broadcastOnly: Bool
    /// The shared secret; nil sends and accepts plaintext heartbeats.
    public var secret: String?
    /// The pause between heartbeats, in milliseconds, drawn anew each time (1...5000).
    public var intervalMilliseconds: ClosedRange<Int>

    public init(port: Int = 45892, bindAddress: String = "0.0.0.0", address: String = "233.252.1.32", multicastTTL: Int = 1,
                multicastInterface: String? = nil, broadcastOnly: Bool = false, secret: String? = nil,
                intervalMilliseconds: ClosedRange<Int> = 1...5000) {
        self.port = port
        self.bindAddress = bindAddress
        self.address = address
        self.multicastTTL = multicastTTL
        self.multicastInterface = multicastInterface
        self.broadcastOnly = broadcastOnly
        self.secret = secret
        self.intervalMilliseconds = intervalMilliseconds
    }

    public func run(_ cluster: ClusterStrategyContext) async throws {
        let secret = self.secret, me = cluster.nodeName
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Two nodes on one host bind the same port (libcluster sets SO_REUSEPORT too, #184).
            .channelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .channelOption(.socketOption(.so_broadcast), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GossipReceiver(secret: secret) { node in
                        if node != me { cluster.seen([node]) }
                    })
                }
            }
            .bind(host: bindAddress, port: port).get()
        do {
            if !broadcastOnly {
                _ = try await channel.setOption(ChannelOptions.Types.SocketOption(level: .ip, name: .ip_multicast_ttl), value: multicastTTL).get()
                _ = try await channel.setOption(ChannelOptions.Types.SocketOption(level: .ip, name: .ip_multicast_loop), value: 1).get()
                guard let multicast = channel as? any MulticastChannel else { throw GossipError.noMulticast }
                let group = try SocketAddress(ipAddress: address, port: port)
                if let multicastInterface {
                    let device = try System.enumerateDevices().first { $0.address?.ipAddress == multicastInterface }
                    try await multicast.joinGroup(group, device: device).get()
                } else {
                    try await multicast.joinGroup(group).get()
                }
            }
            let destination = try SocketAddress(ipAddress: address, port: port)
            while true {
                let packet = try GossipHeartbeat.encode(node: me, secret: secret)
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: ByteBuffer(bytes: packet)), promise: nil)
                try await Task.sleep(for: .milliseconds(Int.random(in: intervalMilliseconds)))
            }
        } catch {
            try? await channel.close()
            throw error
        }
    }
}

/// Why the gossip strategy could not start.
public enum GossipError: Error, Sendable, Equatable {
    /// The socket does not support multicast: use `broadcastOnly`.
    case noMulticast
}

/// Heartbeats as libcluster's Gossip strategy writes and reads them.
public enum GossipHeartbeat {
    static let prefix = Array("heartbeat::".utf8)

    /// The packet announcing `node`: plaintext, or encrypted with `secret`.
    public static func encode(node: String, secret: String?) throws -> [UInt8] {
        let plain = prefix + (try ExternalTermFormat.encode(.map([.atom("node"): .atom(Atom(node))])))
        guard let secret else { return plain }
        let iv = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let sealed = try AES._CBC.encrypt(plain, using: key(secret), iv: AES._CBC.IV(ivBytes: iv))
        return iv + Array(sealed)
    }

    /// The node a packet announces, or nil for anything else (not a heartbeat, wrong
    /// secret, a term that is not `%{node: atom}`). Never throws: packets are untrusted.
    public static func decode(_ packet: [UInt8], secret: String?) -> String? {
        var plain = packet
        if let secret {
            // IV plus at least one block.
            guard packet.count >= 32, (packet.count - 16) % 16 == 0,
                  let iv = try? AES._CBC.IV(ivBytes: packet.prefix(16)),
                  let opened = try? AES._CBC.decrypt(packet.dropFirst(16), using: key(secret), iv: iv) else { return nil }
            plain = Array(opened)
        }
        guard plain.count > prefix.count, plain.starts(with: prefix) else { return nil }
        var limits = TermLimits()
        limits.maxDepth = 4
        guard let term = try? ExternalTermFormat.decode(Array(plain.dropFirst(prefix.count)), limits: limits),
              case .map(let m) = term, case .atom(let node)? = m[.atom("node")], node.name.contains("@") else { return nil }
        return node.name
    }

    static func key(_ secret: String) -> SymmetricKey {
        SymmetricKey(data: SHA256.hash(data: Array(secret.utf8)))
    }
}

/// Reads heartbeats off the socket.
final class GossipReceiver: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let secret: String?
    let found: @Sendable (String) -> Void

    init(secret: String?, found: @escaping @Sendable (String) -> Void) {
        self.secret = secret
        self.found = found
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        // A heartbeat is small; anything large is not one.
        guard envelope.data.readableBytes <= 1024, let bytes = envelope.data.getBytes(at: envelope.data.readerIndex, length: envelope.data.readableBytes),
              let node = GossipHeartbeat.decode(bytes, secret: secret) else { return }
        found(node)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A bad datagram is not a reason to stop listening.
    }
}
