import Hummingbird
import Logging
import NIOCore
import NIOSSL

/// The request context of both listeners: keeps the channel so the caller's certificate can
/// be read, and the identity once resolved.
public struct NodeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The verified client certificate's identity, or nil if the channel has no TLS peer.
    public func peerIdentity() async -> ClientIdentity? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return ClientIdentity(certificate: certificate)
    }
}
