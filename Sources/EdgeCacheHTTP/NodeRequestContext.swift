import Hummingbird
import Logging
import NIOCore
import NIOSSL

/// The request context of both listeners: keeps the channel so the caller's certificate can
/// be read, and the identity once resolved.
package struct NodeRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    package let channel: any Channel

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The verified client certificate's identity, or nil if the channel has no TLS peer.
    package func peerIdentity() async -> ClientIdentity? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return ClientIdentity(certificate: certificate)
    }
}
