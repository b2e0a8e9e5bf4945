import EdgeCacheCore
import NIOSSL

/// What the certificate of a server this node calls must name, beyond chaining to `tls.ca` and
/// naming the host: an edge accepts as its origin only a certificate with role `origin` (and,
/// when configured, a given node name and URI), so no other certificate from the same CA can
/// pose as the origin.
package struct PeerRequirement: Sendable, Equatable {
    /// The role the certificate must carry (`urn:edgecache:role:`); nil: any certificate of the CA.
    package var role: ClientIdentity.Role?
    /// The tenant it must carry (`urn:edgecache:tenant:`); nil: any or none.
    package var tenant: String?
    /// The node name it must carry (`urn:edgecache:node:`); nil: any.
    package var node: String?
    /// A URI subject alternative name it must carry (for example a SPIFFE ID); nil: none needed.
    package var uri: String?

    package init(role: ClientIdentity.Role?, tenant: String? = nil, node: String? = nil, uri: String? = nil) {
        self.role = role
        self.tenant = tenant
        self.node = node
        self.uri = uri
    }

    /// Any certificate that chains to the CA (tools that call a node of any role).
    package static let anyPeer = PeerRequirement(role: nil)

    /// Why `certificate` does not meet the requirement, or nil if it does.
    package func refusal(_ certificate: NIOSSLCertificate) -> String? {
        let identity = ClientIdentity(certificate: certificate)
        if let role, identity.role != role {
            return "its certificate does not carry role '\(role.rawValue)' (urn:edgecache:role:\(role.rawValue))"
        }
        if let tenant, identity.tenant != tenant {
            return "its certificate does not carry tenant '\(tenant)'"
        }
        if let node, identity.node != node {
            return "its certificate does not carry node name '\(node)' (urn:edgecache:node:\(node))"
        }
        if let uri, !Self.uris(certificate).contains(uri) {
            return "its certificate does not carry the URI '\(uri)'"
        }
        return nil
    }

    /// What a certificate says it is, for a log line: its EdgeCache role, tenant and node, its
    /// other names and its serial number (no key material).
    package static func describe(_ certificate: NIOSSLCertificate) -> String {
        let identity = ClientIdentity(certificate: certificate)
        var parts = [
            "role=\(identity.role?.rawValue ?? "none")", "tenant=\(identity.tenant ?? "none")", "node=\(identity.node ?? "none")",
        ]
        let names = CertificateNames(certificate)
        let others =
            names.dnsNames.map { "DNS:" + $0 } + names.ipAddresses.map { "IP:" + Self.ip($0) }
            + names.uris.filter { !$0.hasPrefix("urn:edgecache:") }.map { "URI:" + $0 }
        if !others.isEmpty { parts.append("names=" + others.joined(separator: ",")) }
        parts.append("serial=" + Hex.encode(certificate.serialNumber.prefix(20)))
        return parts.joined(separator: " ")
    }

    /// The URI subject alternative names of `certificate`.
    static func uris(_ certificate: NIOSSLCertificate) -> [String] {
        CertificateNames(certificate).uris
    }

    /// The DNS and IP subject alternative names of `certificate` (IP in text form).
    package static func hostNames(_ certificate: NIOSSLCertificate) -> [String] {
        let names = CertificateNames(certificate)
        return names.dnsNames.map { $0.lowercased() } + names.ipAddresses.map { Self.ip($0) }
    }

    static func ip(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        var i = 0
        while i + 1 < bytes.count {
            groups.append(String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16))
            i += 2
        }
        return groups.joined(separator: ":")
    }
}
