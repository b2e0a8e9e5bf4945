import Crypto
import EdgeCacheCore
import Foundation
import SwiftASN1
import X509

/// A throw-away development PKI made in-process (swift-certificates, swift-crypto P-256 keys):
/// what `edgecache demo` runs on, and what tests can issue without the openssl CLI. It makes the
/// same files, names and uses as `tools/gen-certs.sh`, which stays for operators' trials:
///
/// | file | subject CN | extended key usage | subject alternative names |
/// | --- | --- | --- | --- |
/// | `ca.crt`, `ca.key` | EdgeCache Dev CA | (a CA: keyCertSign, cRLSign) | |
/// | `origin.crt`, `origin.key` | origin | serverAuth, clientAuth | DNS:localhost, IP:127.0.0.1, `urn:edgecache:role:origin`, `urn:edgecache:node:origin` |
/// | `edge-T.crt`, `edge-T.key` | edge-T | serverAuth, clientAuth | DNS:localhost, IP:127.0.0.1, `urn:edgecache:tenant:T`, `urn:edgecache:role:edge`, `urn:edgecache:node:edge-T` |
/// | `client-T.crt`, `client-T.key` | client-T | clientAuth | `urn:edgecache:tenant:T`, `urn:edgecache:role:client` |
///
/// The node reads who holds a certificate from those URIs (``ClientIdentity``); the host names
/// are for TLS clients checking a server. Every subject has O=EdgeCache Development; leaves are
/// not CAs and have key usage digitalSignature and keyEncipherment (both critical, as in the
/// script). Keys are PKCS#8 PEM files with mode 0600, certificates 0644. Never use it in production.
///
/// ```swift
/// try DemoPKI(tenants: ["st-mary"]).write(to: workDir + "/certs")
/// ```
package struct DemoPKI: Sendable {
    /// A certificate and its private key, written as `name.crt` and `name.key`.
    package struct Holder: Sendable {
        package let name: String
        package let certificate: Certificate
        package let privateKey: P256.Signing.PrivateKey
    }

    package let ca: Holder
    /// The origin, then each tenant's edge and client, in the order of `tenants`.
    package let holders: [Holder]

    /// The host names of the node certificates (the script's default `EDGECACHE_EDGE_SANS`):
    /// the demo's nodes and their apps are on one host.
    static let hostNames: [GeneralName] = [.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))]

    /// Issues a new CA and the origin's, and each tenant's edge and client, certificates.
    /// - Parameters:
    ///   - validityDays: from `now` (the script's `EDGECACHE_CERT_DAYS`, default 825).
    /// - Throws: for a tenant name a node would not accept.
    package init(tenants: [String], validityDays: Int = 825, now: Date = Date()) throws {
        for tenant in tenants where !TenantName.isValid(tenant) {
            throw Demo.DemoError(
                description: "'\(tenant)' is not a tenant name (letters, digits, '-', '_' and '.', starting with a letter or digit)")
        }
        // Whole seconds, as openssl writes: swift-certificates rounds to the nearest second, and a
        // time rounded up would leave the certificates not yet valid for up to half a second.
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let notAfter = now.addingTimeInterval(TimeInterval(validityDays) * 86_400)
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("EdgeCache Development")
            CommonName("EdgeCache Dev CA")
        }
        let caPublicKey = Certificate.PublicKey(caKey.publicKey)
        let caKeyID = SubjectKeyIdentifier(hash: caPublicKey)
        let caCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: caPublicKey, notValidBefore: now,
            notValidAfter: notAfter, issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                caKeyID
                AuthorityKeyIdentifier(keyIdentifier: caKeyID.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))
        ca = Holder(name: "ca", certificate: caCertificate, privateKey: caKey)

        func issue(_ name: String, usages: [ExtendedKeyUsage.Usage], names: [GeneralName]) throws -> Holder {
            let key = P256.Signing.PrivateKey()
            let publicKey = Certificate.PublicKey(key.publicKey)
            let extendedKeyUsage = try ExtendedKeyUsage(usages)
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey, notValidBefore: now,
                notValidAfter: notAfter, issuer: caName,
                subject: try DistinguishedName {
                    OrganizationName("EdgeCache Development")
                    CommonName(name)
                },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                    extendedKeyUsage
                    SubjectAlternativeNames(names)
                    SubjectKeyIdentifier(hash: publicKey)
                    AuthorityKeyIdentifier(keyIdentifier: caKeyID.keyIdentifier)
                },
                issuerPrivateKey: Certificate.PrivateKey(caKey))
            return Holder(name: name, certificate: certificate, privateKey: key)
        }

        var holders = [
            try issue(
                "origin", usages: [.serverAuth, .clientAuth],
                names: Self.hostNames + [
                    .uniformResourceIdentifier("urn:edgecache:role:origin"), .uniformResourceIdentifier("urn:edgecache:node:origin"),
                ])
        ]
        for tenant in tenants {
            holders.append(
                try issue(
                    "edge-\(tenant)", usages: [.serverAuth, .clientAuth],
                    names: Self.hostNames + [
                        .uniformResourceIdentifier("urn:edgecache:tenant:\(tenant)"), .uniformResourceIdentifier("urn:edgecache:role:edge"),
                        .uniformResourceIdentifier("urn:edgecache:node:edge-\(tenant)"),
                    ]))
            holders.append(
                try issue(
                    "client-\(tenant)", usages: [.clientAuth],
                    names: [
                        .uniformResourceIdentifier("urn:edgecache:tenant:\(tenant)"),
                        .uniformResourceIdentifier("urn:edgecache:role:client"),
                    ]))
        }
        self.holders = holders
    }

    /// Writes `NAME.crt` (0644) and `NAME.key` (0600) for the CA and every holder into `dir`,
    /// created 0700 if missing. Each file is written whole (temporary file, fsync, rename), and
    /// a key is never readable by others, not even while it is written.
    package func write(to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for holder in [ca] + holders {
            try Self.write(Array(holder.privateKey.pemRepresentation.utf8) + [0x0A], to: "\(dir)/\(holder.name).key", mode: 0o600)
            let pem = try holder.certificate.serializeAsPEM().pemString
            try Self.write(Array(pem.utf8) + [0x0A], to: "\(dir)/\(holder.name).crt", mode: 0o644)
        }
    }

    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw Demo.DemoError(description: "cannot create \(temp): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        // fchmod, not the open mode: the umask would otherwise decide what others may read.
        let done = written == bytes.count && fchmod(fd, mode) == 0 && fsync(fd) == 0
        close(fd)
        guard done, rename(temp, path) == 0 else {
            unlink(temp)
            throw Demo.DemoError(description: "cannot write \(path)")
        }
    }
}
