import EdgeCacheHTTP
import EdgeCacheNode
import Foundation
import NIOSSL
import Testing

/// What a node checks in its certificate, key and CA files before it uses them (at start, in
/// `config check`, and on every reload).
@Suite struct TLSMaterialTests {
    let pki = SharedPKI.main

    func refusal(cert: String, key: String, ca: String) -> String? {
        do {
            _ = try TLSMaterial.load(certFile: cert, keyFile: key, caFile: ca)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func acceptsAMatchingCertificateKeyAndCA() throws {
        let material = try TLSMaterial.load(certFile: pki.cert("edge-a"), keyFile: pki.key("edge-a"), caFile: pki.ca)
        #expect(material.chain.count == 1 && material.trusted.count == 1)
    }

    @Test func refusesAKeyOfAnotherCertificate() {
        let reason = refusal(cert: pki.cert("edge-a"), key: pki.key("client-a"), ca: pki.ca)
        #expect(reason?.contains("tls.key \(pki.key("client-a")): does not belong to the certificate") == true, "\(reason ?? "accepted")")
    }

    @Test func refusesACertificateTheCADidNotIssue() {
        let reason = refusal(cert: SharedPKI.foreign.cert("edge-a"), key: SharedPKI.foreign.key("edge-a"), ca: pki.ca)
        #expect(reason?.contains("check that \(pki.ca) holds the CA that issued it") == true, "\(reason ?? "accepted")")
    }

    @Test func refusesFilesThatAreNotPEM() throws {
        let dir = TempDir()
        let junk = dir.path + "/junk.pem"
        try "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".write(toFile: junk, atomically: true, encoding: .utf8)
        #expect(refusal(cert: junk, key: pki.key("edge-a"), ca: pki.ca)?.hasPrefix("tls.cert \(junk): cannot be read") == true)
        #expect(refusal(cert: pki.cert("edge-a"), key: junk, ca: pki.ca)?.hasPrefix("tls.key \(junk): cannot be read") == true)
        #expect(refusal(cert: pki.cert("edge-a"), key: pki.key("edge-a"), ca: junk)?.hasPrefix("tls.ca \(junk): cannot be read") == true)
        #expect(refusal(cert: dir.path + "/missing.crt", key: pki.key("edge-a"), ca: pki.ca)?.hasPrefix("tls.cert") == true)
    }

    @Test func refusesAnExpiredCertificate() throws {
        let material = try TLSMaterial.load(certFile: pki.cert("edge-a"), keyFile: pki.key("edge-a"), caFile: pki.ca)
        let later = Int64(material.leaf.notValidAfter) + 1
        #expect(throws: TLSMaterial.Invalid.self) {
            _ = try TLSMaterial.load(certFile: pki.cert("edge-a"), keyFile: pki.key("edge-a"), caFile: pki.ca, now: later)
        }
        let earlier = Int64(material.leaf.notValidBefore) - 3600
        #expect(throws: TLSMaterial.Invalid.self) {
            _ = try TLSMaterial.load(certFile: pki.cert("edge-a"), keyFile: pki.key("edge-a"), caFile: pki.ca, now: earlier)
        }
    }

    @Test func configCheckRunsTheSameChecks() throws {
        let dir = TempDir()
        let pair = PairConfig(dir: dir.path, pki: pki)
        let path = try pair.writeOrigin()
        let good = try runCLI(["config", "check", "--config", path])
        #expect(good.status == 0, "\(good.output)")
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: "key: \(pki.key("origin"))", with: "key: \(pki.key("client-a"))")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try runCLI(["config", "check", "--config", path])
        // The error names the config file and the line of the setting at fault (tls: is line 4).
        #expect(
            bad.status == 2 && bad.output.hasPrefix("\(path):4: tls.key \(pki.key("client-a")): does not belong to the certificate"),
            "\(bad.output)")
    }

    /// A node serves TLS, so a client-only certificate in a node's config is refused at start and
    /// by `config check`, and the message says which certificate to use instead.
    @Test func refusesAClientOnlyCertificateForANodeAndSaysWhatToUse() throws {
        let reason = refusal(cert: pki.cert("client-a"), key: pki.key("client-a"), ca: pki.ca)
        #expect(reason?.contains("tls.cert \(pki.cert("client-a")): is a client-only certificate") == true, "\(reason ?? "accepted")")
        #expect(reason?.contains("edge-TENANT.crt for an edge") == true, "\(reason ?? "accepted")")
        let dir = TempDir()
        let path = try PairConfig(dir: dir.path, pki: pki).writeOrigin()
        let text = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(
                of: "cert: \(pki.cert("origin")), key: \(pki.key("origin"))",
                with: "cert: \(pki.cert("client-a")), key: \(pki.key("client-a"))")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let check = try runCLI(["config", "check", "--config", path])
        #expect(
            check.status == 2 && check.output.hasPrefix("\(path):4: tls.cert \(pki.cert("client-a")): is a client-only certificate"),
            "\(check.output)")
    }

    /// A program that only connects (a benchmark's client, `edgecache status`) may hold a
    /// client-only certificate: the checks accept it, and it reads from a running node.
    @Test func acceptsAClientOnlyCertificateForAClientAndItConnects() async throws {
        let material = try TLSMaterial.load(certFile: pki.cert("client-a"), keyFile: pki.key("client-a"), caFile: pki.ca, use: .client)
        #expect(material.chain.count == 1)
        // Still checked: a key of another certificate, or a CA that did not issue it, is refused.
        #expect(throws: TLSMaterial.Invalid.self) {
            _ = try TLSMaterial.load(certFile: pki.cert("client-a"), keyFile: pki.key("edge-a"), caFile: pki.ca, use: .client)
        }
        #expect(throws: TLSMaterial.Invalid.self) {
            _ = try TLSMaterial.load(
                certFile: SharedPKI.foreign.cert("client-a"), keyFile: SharedPKI.foreign.key("client-a"), caFile: pki.ca, use: .client)
        }
        let dir = TempDir()
        let origin = try await InProcessNode(configPath: try PairConfig(dir: dir.path, pki: pki).writeOrigin())
        let clientPath = dir.path + "/client.yaml"
        try """
        role: edge
        node_id: load-generator
        tenant: a
        listen: { api: "127.0.0.1:0" }
        origin: { url: "https://127.0.0.1:\(origin.port("api"))" }
        tls: { cert: \(pki.cert("client-a")), key: \(pki.key("client-a")), ca: \(pki.ca) }
        data_dir: \(dir.path)/client-data
        keys: { kek_file: client.kek }
        """.write(toFile: clientPath, atomically: true, encoding: .utf8)
        let clientConfig = try NodeConfig.load(path: clientPath)
        let client = try OriginClient(config: clientConfig, peer: .origin(clientConfig))
        let reply = try await client.get("/fhir/metadata")
        await client.shutdown()
        await origin.stop()
        #expect(reply.status == 200)
    }
}
