import EdgeCacheHTTP
import EdgeCacheNode
import Foundation
import NIOSSL
import SwiftASN1
import Testing
import X509

/// The demo's in-process PKI: the certificates `tools/gen-certs.sh` makes, accepted by the
/// node's own TLS checks and naming the holders the node reads from them.
@Suite struct DemoPKITests {
    static let pki = Result { try DemoPKI(tenants: ["a", "b"]) }

    /// A new PKI, written and used at once: certificates must be valid from the moment they are made.
    func written() throws -> (dir: TempDir, certs: String) {
        let dir = TempDir()
        let pki = try DemoPKI(tenants: ["a", "b"])
        #expect(([pki.ca] + pki.holders).allSatisfy { $0.certificate.notValidBefore <= Date() })
        try pki.write(to: dir.path + "/certs")
        return (dir, dir.path + "/certs")
    }

    @Test func nodeCertificatesPassTheNodesTLSCheckAndNameTheirHolders() throws {
        let (dir, certs) = try written()
        let expected: [(name: String, role: ClientIdentity.Role, tenant: String?, node: String)] = [
            ("origin", .origin, nil, "origin"), ("edge-a", .edge, "a", "edge-a"), ("edge-b", .edge, "b", "edge-b"),
        ]
        for holder in expected {
            let material = try TLSMaterial.load(
                certFile: "\(certs)/\(holder.name).crt", keyFile: "\(certs)/\(holder.name).key", caFile: "\(certs)/ca.crt")
            let identity = ClientIdentity(certificate: material.leaf)
            #expect(identity.role == holder.role && identity.tenant == holder.tenant, "\(holder.name): \(identity)")
            #expect(identity.node == holder.node && identity.subject == holder.node, "\(holder.name): \(identity)")
            let names = CertificateNames(material.leaf)
            #expect(names.dnsNames == ["localhost"] && names.ipAddresses == [[127, 0, 0, 1]], "\(holder.name): \(names)")
        }
        _ = dir
    }

    @Test func clientCertificatesIdentifyAnAppOfTheirTenantAndAreNotNodeCertificates() throws {
        let (dir, certs) = try written()
        let material = try TLSMaterial.load(
            certFile: "\(certs)/client-a.crt", keyFile: "\(certs)/client-a.key", caFile: "\(certs)/ca.crt", use: .client)
        let identity = ClientIdentity(certificate: material.leaf)
        #expect(identity.role == .client && identity.tenant == "a" && identity.node == nil, "\(identity)")
        #expect(CertificateNames(material.leaf).dnsNames.isEmpty && CertificateNames(material.leaf).ipAddresses.isEmpty)
        do {
            _ = try TLSMaterial.load(certFile: "\(certs)/client-a.crt", keyFile: "\(certs)/client-a.key", caFile: "\(certs)/ca.crt")
            Issue.record("a client certificate passed as a node's")
        } catch {
            #expect(error.description.contains("client-only"), "\(error)")
        }
        _ = dir
    }

    @Test func writesTheScriptsFilesWithPrivateKeysForTheOwnerOnly() throws {
        let (dir, certs) = try written()
        let names = ["ca", "origin", "edge-a", "client-a", "edge-b", "client-b"]
        let files = try FileManager.default.contentsOfDirectory(atPath: certs).sorted()
        #expect(files == names.flatMap { ["\($0).crt", "\($0).key"] }.sorted())
        for name in names {
            let key = try FileManager.default.attributesOfItem(atPath: "\(certs)/\(name).key")[.posixPermissions] as? Int
            let cert = try FileManager.default.attributesOfItem(atPath: "\(certs)/\(name).crt")[.posixPermissions] as? Int
            #expect(key == 0o600 && cert == 0o644, "\(name): key \(String(key ?? 0, radix: 8)), certificate \(String(cert ?? 0, radix: 8))")
            let pem = try String(contentsOfFile: "\(certs)/\(name).key", encoding: .utf8)
            #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"), "\(name): PKCS#8, as openssl genpkey writes")
        }
        _ = dir
    }

    /// The same subjects, extensions (and their criticality), key usages and names as the
    /// openssl-made PKI of `tools/gen-certs.sh` (the one the other tests use).
    @Test func certificatesCarryWhatGenCertsWrites() throws {
        let pki = try Self.pki.get()
        for ours in [pki.ca] + pki.holders {
            let path = ours.name == "ca" ? SharedPKI.main.ca : SharedPKI.main.cert(ours.name)
            let theirs = try Certificate(pemEncoded: try String(contentsOfFile: path, encoding: .utf8))
            let mine = ours.certificate
            #expect(mine.subject.description == theirs.subject.description, "\(ours.name)")
            #expect(mine.signatureAlgorithm == theirs.signatureAlgorithm, "\(ours.name)")
            let extensions = { (certificate: Certificate) in Set(certificate.extensions.map { "\($0.oid) critical=\($0.critical)" }) }
            #expect(extensions(mine) == extensions(theirs), "\(ours.name)")
            let (a, b) = (mine.extensions, theirs.extensions)
            #expect(try a.basicConstraints == b.basicConstraints && a.keyUsage == b.keyUsage, "\(ours.name)")
            #expect(try a.extendedKeyUsage == b.extendedKeyUsage, "\(ours.name)")
            #expect(try a.subjectAlternativeNames == b.subjectAlternativeNames, "\(ours.name)")
            let days = mine.notValidAfter.timeIntervalSince(mine.notValidBefore) / 86_400
            #expect(days == 825, "\(ours.name)")
        }
    }

    @Test func theDemoPreparesItsWorkFolderWithoutTheRepositoryScripts() throws {
        let dir = TempDir()
        let prepared = try Demo.prepare(workDir: dir.path + "/demo")
        for path in [prepared.origin, prepared.edge] {
            let config = try NodeConfig.load(path: path)
            _ = try config.loadTLSMaterial()
        }
    }
}
