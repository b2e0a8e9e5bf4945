import NIOSSL
import SwiftASN1
import X509

/// The subject alternative names of a certificate, parsed by swift-certificates (X509): DNS
/// names, IP addresses and URIs (the EdgeCache identity is in URIs, `urn:edgecache:…`). A
/// certificate whose names cannot be parsed has none, so it names no tenant and no role.
package struct CertificateNames: Sendable, Equatable {
    package var dnsNames: [String] = []
    package var ipAddresses: [[UInt8]] = []
    package var uris: [String] = []

    package init(_ certificate: NIOSSLCertificate) {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der),
            let names = try? parsed.extensions.subjectAlternativeNames
        else { return }
        for name in names {
            switch name {
            case .dnsName(let dns): dnsNames.append(dns)
            case .ipAddress(let octets): ipAddresses.append(Array(octets.bytes))
            case .uniformResourceIdentifier(let uri): uris.append(uri)
            default: continue
            }
        }
    }
}
