import EdgeCacheHTTP
import Logging
import NIOCore
import NIOSSL
import Synchronization

extension OriginClient {
    /// The server's certificate did not meet the ``PeerRequirement``: the request was not sent
    /// (nothing but the TLS handshake went to that server) and the connection was closed.
    package struct PeerRefused: Error, Sendable, CustomStringConvertible {
        package let reason: String
        package var description: String { "refused the server: \(reason)" }
    }
}

extension PeerRequirement {
    /// What an edge requires of its origin: role `origin`, and `origin.node` / `origin.uri` if set.
    package static func origin(_ config: NodeConfig) -> PeerRequirement {
        PeerRequirement(role: .origin, node: config.originNode, uri: config.originURI)
    }

    /// The node `config` describes, called with its own certificate (`edgecache status`): a
    /// certificate of its own role (and tenant, for an edge).
    package static func ownNode(_ config: NodeConfig) -> PeerRequirement {
        config.role == .origin ? PeerRequirement(role: .origin) : PeerRequirement(role: .edge, tenant: config.tenant)
    }
}

/// Checks the certificate of every new connection of an ``OriginClient``, as AsyncHTTPClient's
/// connection initializer: after the TLS handshake, before the pool may put a request on it.
///
/// A refused connection is not failed here (AsyncHTTPClient 1.37's pool crashes when a connection
/// it has set to back off is then closed), but sealed: ``RefusedPeerHandler`` sits between the
/// HTTP handlers and TLS, fails the first write with ``OriginClient/PeerRefused`` before a byte
/// of it is encrypted, drops anything the server sends, and closes the connection.
final class PeerCheck: Sendable {
    let requirement: PeerRequirement
    let url: String
    let logger: Logger
    /// When each refused certificate was last logged (at most one line per certificate every 10 s).
    private let logged = Mutex<[String: ContinuousClock.Instant]>([:])

    init(requirement: PeerRequirement, url: String, logger: Logger) {
        self.requirement = requirement
        self.url = url
        self.logger = logger
    }

    func verify(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard requirement != .anyPeer else { return channel.eventLoop.makeSucceededVoidFuture() }
        return channel.nioSSL_peerCertificate().flatMapThrowing { [self] certificate in
            let reason: String
            let described: String
            if let certificate {
                guard let refusal = requirement.refusal(certificate) else { return }
                reason = refusal
                described = PeerRequirement.describe(certificate)
            } else {
                reason = "it presented no certificate"
                described = "none"
            }
            log(reason: reason, certificate: described)
            let refused = OriginClient.PeerRefused(reason: "\(url): \(reason) (\(described))")
            let pipeline = channel.pipeline.syncOperations
            let tls = try pipeline.handler(type: NIOSSLClientHandler.self)
            try pipeline.addHandler(RefusedPeerHandler(refused), position: .after(tls))
        }
    }

    private func log(reason: String, certificate: String) {
        let now = ContinuousClock.now
        let due = logged.withLock { logged -> Bool in
            if let last = logged[certificate], now - last < .seconds(10) { return false }
            if logged.count > 100 { logged.removeAll() }
            logged[certificate] = now
            return true
        }
        guard due else { return }
        logger.error(
            "refused the server at origin.url: \(reason); nothing is sent to it",
            metadata: ["url": "\(url)", "certificate": "\(certificate)"])
    }
}

/// Seals a connection to a refused server, just above TLS: no write reaches the server, no
/// byte from it reaches the HTTP handlers; the first write fails and closes the connection.
final class RefusedPeerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData

    private let error: OriginClient.PeerRefused

    init(_ error: OriginClient.PeerRefused) { self.error = error }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.fail(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    func flush(context: ChannelHandlerContext) {}
}
