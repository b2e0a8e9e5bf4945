import EdgeCacheNode
import Foundation
import Testing

/// What the API and peer listeners refuse at the HTTP layer: malformed tenants, unaddressable
/// ids, foreign `Host` headers, weak TLS 1.2 suites, compressed transfer codings.
@Suite(.serialized) struct HTTPHardeningTests {
    let dir = TempDir()

    @Test func aCertificateWithAnEmptyOrMalformedTenantNamesNobody() async throws {
        let pki = SharedPKI.main
        try pki.issue("client-empty-tenant", subjectAltName: "URI:urn:edgecache:tenant:,URI:urn:edgecache:role:client")
        try pki.issue("client-slash-tenant", subjectAltName: "URI:urn:edgecache:tenant:a/b,URI:urn:edgecache:role:client")
        try pki.issue(
            "edge-empty-tenant", subjectAltName: "URI:urn:edgecache:tenant:,URI:urn:edgecache:role:edge,URI:urn:edgecache:node:e0",
            clientOnly: false)
        let pair = PairConfig(dir: dir.path, pki: pki)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let body = #"{"resourceType":"Patient","id":"nobody"}"#
        for identity in ["client-empty-tenant", "client-slash-tenant"] {
            let client = RawHTTPS(port: origin.port("api"), pki: pki, identity: identity)
            let write = try await client.send("PUT", "/fhir/Patient/nobody", body: body)
            #expect(
                write.status == 403 && write.json["resourceType"] as? String == "OperationOutcome",
                "\(identity): \(write.status) \(write.text)")
            #expect(try await client.send("GET", "/fhir/Patient?_count=1").status == 403)
        }
        let peer = RawHTTPS(port: origin.port("peer"), pki: pki, identity: "edge-empty-tenant")
        #expect(try await peer.send("GET", "/replication/v1/snapshot").status == 403)
        #expect(try await peer.send("PUT", "/fhir/Patient/nobody", body: body).status == 403)
        await origin.stop()
    }

    @Test func idsMadeOnlyOfDotsAreRefusedOnEveryInteraction() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer")))
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        for port in [origin.port("api"), edge.port("api")] {
            let client = RawHTTPS(port: port, pki: SharedPKI.main, identity: "client-a")
            for id in [".", "..", "...", "...."] {
                let body = #"{"resourceType":"Patient","id":"\#(id)"}"#
                for (method, path) in [
                    ("PUT", "/fhir/Patient/\(id)"), ("GET", "/fhir/Patient/\(id)"), ("DELETE", "/fhir/Patient/\(id)"),
                    ("GET", "/fhir/Patient/\(id)/_history"), ("GET", "/fhir/Patient/\(id)/_history/1"),
                ] {
                    let reply = try await client.send(method, path, body: method == "PUT" ? body : nil)
                    #expect(
                        reply.status == 400 && reply.json["resourceType"] as? String == "OperationOutcome",
                        "\(method) \(path) at \(port): \(reply.status) \(reply.text)")
                }
            }
            // Nothing was stored.
            let all = try await client.send("GET", "/fhir/Patient")
            #expect(all.status == 200 && (all.json["entry"] as? [Any] ?? []).isEmpty, "\(all.text)")
        }
        await edge.stop()
        await origin.stop()
    }

    @Test func locationAndBundleLinksComeFromTheConfiguredBaseNotTheHostHeader() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "public_base_url: https://fhir.a.example/"))
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer")))
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let evil = [("Host", "evil.example")]
        // Configured: public_base_url (its trailing slash dropped).
        let atOrigin = RawHTTPS(port: origin.port("api"), pki: SharedPKI.main, identity: "client-a")
        let created = try await atOrigin.send("PUT", "/fhir/Patient/h1", headers: evil, body: #"{"resourceType":"Patient","id":"h1"}"#)
        #expect(created.status == 201)
        #expect(created.header("Location") == "https://fhir.a.example/fhir/Patient/h1/_history/1", "\(created.headers)")
        let bundle = try await atOrigin.send("GET", "/fhir/Patient?_id=h1", headers: evil)
        #expect(!bundle.text.contains("evil.example") && bundle.text.contains("https://fhir.a.example/fhir/Patient"), "\(bundle.text)")
        // Not configured: the address the request came in on.
        let edgePort = edge.port("api")
        let atEdge = RawHTTPS(port: edgePort, pki: SharedPKI.main, identity: "client-a")
        let edgeWrite = try await atEdge.send("PUT", "/fhir/Patient/h2", headers: evil, body: #"{"resourceType":"Patient","id":"h2"}"#)
        #expect(edgeWrite.header("Location")?.hasPrefix("https://127.0.0.1:\(edgePort)/fhir/Patient/h2") == true, "\(edgeWrite.headers)")
        let edgeBundle = try await atEdge.send("GET", "/fhir/Patient?_id=h2", headers: evil)
        #expect(edgeBundle.status == 200 && !edgeBundle.text.contains("evil.example"), "\(edgeBundle.text)")
        let metadata = try await atEdge.send("GET", "/fhir/metadata", headers: evil)
        #expect(metadata.status == 200 && !metadata.text.contains("evil.example"))
        await edge.stop()
        await origin.stop()
    }

    @Test func tls12OffersTheIntermediateSuitesOnly() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let port = origin.port("api")
        for weak in ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA"] {
            let client = RawHTTPS(port: port, pki: SharedPKI.main, identity: "client-a", cipherSuites: weak, maxTLS12: true)
            await #expect(throws: (any Error).self, "\(weak) was accepted") { try await client.send("GET", "/fhir/metadata") }
        }
        for strong in ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"] {
            let client = RawHTTPS(port: port, pki: SharedPKI.main, identity: "client-a", cipherSuites: strong, maxTLS12: true)
            #expect(try await client.send("GET", "/fhir/metadata").status == 200, "\(strong)")
        }
        await origin.stop()
    }

    @Test func transferCodingsOtherThanChunkedAreRefused() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let client = RawHTTPS(port: origin.port("api"), pki: SharedPKI.main, identity: "client-a")
        let body = #"{"resourceType":"Patient","id":"te1"}"#
        let chunked = String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n"
        let json = [("Content-Type", "application/fhir+json")]
        for coding in ["gzip, chunked", "deflate,chunked", "identity, chunked"] {
            let reply = try await client.send(
                "PUT", "/fhir/Patient/te1", headers: json + [("Transfer-Encoding", coding)], rawBody: chunked)
            #expect(
                reply.status == 501 && reply.json["resourceType"] as? String == "OperationOutcome",
                "\(coding): \(reply.status) \(reply.text)")
        }
        #expect(try await client.send("GET", "/fhir/Patient/te1").status == 404)
        let plain = try await client.send("PUT", "/fhir/Patient/te1", headers: json + [("Transfer-Encoding", "chunked")], rawBody: chunked)
        #expect(plain.status == 201, "\(plain.text)")
        await origin.stop()
    }
}
