import EdgeCacheHTTP
import Foundation
import NIOSSL

extension NodeConfig {
    /// Warnings about who could pose as this edge's origin: `origin.url`'s host named by a
    /// certificate without role `origin` among the certificates of the configured files
    /// (`tls.cert`, `tls.ca`). The edge refuses such a certificate as its origin (it requires
    /// role `origin`), but a host that other certificates name also serves them to its clients:
    /// give the origin a host name only origin certificates carry. Empty for an origin.
    package func originHostWarnings() -> [String] {
        guard role == .edge, let url = originURL, let host = URLComponents(string: url)?.host?.lowercased() else { return [] }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var warnings: [String] = []
        for (setting, file) in [("tls.cert", certFile), ("tls.ca", caFile)] {
            guard let certificates = try? NIOSSLCertificate.fromPEMFile(file) else { continue }
            for certificate in certificates {
                let identity = ClientIdentity(certificate: certificate)
                guard identity.role != .origin else { continue }
                let named = PeerRequirement.hostNames(certificate)
                guard named.contains(where: { Self.hostMatches(pattern: $0, host: bare) }) else { continue }
                warnings.append(
                    "origin.url's host \(bare) is also named by a certificate in \(setting) \(file) that is not an origin's "
                        + "(\(PeerRequirement.describe(certificate))); give the origin a host name that only origin certificates carry "
                        + "(docs/OPERATIONS.md, \"Certificates\")")
            }
        }
        return warnings
    }

    /// Whether a DNS or IP name of a certificate covers `host` (a leftmost `*` covers one label).
    static func hostMatches(pattern: String, host: String) -> Bool {
        if pattern == host { return true }
        guard pattern.hasPrefix("*."), let dot = host.firstIndex(of: ".") else { return false }
        return host[dot...] == pattern.dropFirst()
    }
}
