import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import Foundation
import NIOHTTP1
import Testing

/// Identity comes from certificates only, and one tenant never reaches another's data.
@Suite(.serialized) struct TenancyAndTLSTests {
    let dir = TempDir()

    /// Decompresses a replication body and decodes its frames.
    func frames(_ body: [UInt8]) throws -> [ReplicationFrame] {
        let text = try ZlibInflater().decompress(body)
        var decoder = FrameDecoder()
        return try text.split(separator: 0x0A).compactMap { try decoder.decode(line: Array($0)) }
    }

    @Test func edgeOfTenantACanNeitherStreamNorWriteTenantB() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let api = "https://127.0.0.1:\(origin.port("api"))"
        let peer = "https://127.0.0.1:\(origin.port("peer"))"
        let clientB = try TestClient(pki: SharedPKI.main, identity: "client-b")
        let edgeA = try TestClient(pki: SharedPKI.main, identity: "edge-a")
        let clientA = try TestClient(pki: SharedPKI.main, identity: "client-a")

        #expect(
            try await clientB.put("\(api)/fhir/Patient/secret-b", #"{"resourceType":"Patient","name":[{"family":"Bee"}]}"#).status == 201)

        // Asking for tenant B's stream, snapshot or resources with an A certificate: 403.
        #expect(try await edgeA.get("\(peer)/replication/v1/changes?since=0&tenant=b").status == 403)
        #expect(try await edgeA.get("\(peer)/replication/v1/snapshot?tenant=b").status == 403)
        let write = try await edgeA.put(
            "\(peer)/fhir/Patient/x", #"{"resourceType":"Patient"}"#, headers: [("X-EdgeCache-Tenant", "b")])
        #expect(write.status == 403 && write.json["resourceType"] as? String == "OperationOutcome")
        #expect(try await edgeA.get("\(peer)/fhir/Patient/secret-b", headers: [("X-EdgeCache-Tenant", "b")]).status == 403)

        // Its own view holds nothing of B.
        #expect(try await edgeA.get("\(peer)/fhir/Patient/secret-b").status == 404)
        let snapshot = try await edgeA.get("\(peer)/replication/v1/snapshot")
        #expect(snapshot.status == 200)
        // Its snapshot's position is its own tenant's (no change yet), not B's write; the log's
        // epoch is in the header and the start frame (issue 13 item 5).
        let epoch = try #require(snapshot.header(LogEpoch.headerName).flatMap { LogEpoch(hex: $0) })
        #expect(try frames(snapshot.body) == [.snapshotStart(lsn: 0, total: 0, epoch: epoch), .snapshotEnd(count: 0)])
        #expect(try await edgeA.put("\(peer)/fhir/Patient/mine", #"{"resourceType":"Patient"}"#).status == 201)
        #expect(try await clientB.get("\(api)/fhir/Patient/mine").status == 404)
        #expect(try await clientA.get("\(api)/fhir/Patient/mine").status == 200)

        // A clinical app's certificate is not an edge: no peer access.
        #expect(try await clientA.get("\(peer)/replication/v1/changes?since=0").status == 403)
        // A since beyond the head (or below the retained log) answers 410.
        #expect(try await edgeA.get("\(peer)/replication/v1/changes?since=999").status == 410)
        #expect(try await edgeA.get("\(peer)/replication/v1/changes?since=x").status == 400)
        for client in [clientA, clientB, edgeA] { await client.shutdown() }
        await origin.stop()
    }

    @Test func certificatesFromAnotherCAOrOldTLSAreRefusedAtTheHandshake() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let api = "https://127.0.0.1:\(origin.port("api"))/fhir/metadata"
        let peer = "https://127.0.0.1:\(origin.port("peer"))/replication/v1/changes?since=0"

        // Same names, other CA: the server rejects the client certificate.
        let foreign = try TestClient(pki: SharedPKI.foreign, identity: "client-a", caFile: SharedPKI.main.ca)
        await #expect(throws: (any Error).self) { try await foreign.get(api) }
        await foreign.shutdown()
        // No certificate at all.
        let anonymous = try TestClient(pki: SharedPKI.main, identity: nil)
        await #expect(throws: (any Error).self) { try await anonymous.get(api) }
        await anonymous.shutdown()
        // The peer listener is TLS 1.3 only; the API listener also takes TLS 1.2.
        let tls12Edge = try TestClient(pki: SharedPKI.main, identity: "edge-a", maxTLS12: true)
        await #expect(throws: (any Error).self) { try await tls12Edge.get(peer) }
        await tls12Edge.shutdown()
        let tls12Client = try TestClient(pki: SharedPKI.main, identity: "client-a", maxTLS12: true)
        #expect(try await tls12Client.get(api).status == 200)
        await tls12Client.shutdown()
        await origin.stop()
    }

    @Test func edgeRefusesClientsOfAnotherTenant() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer")))
        let url = "https://127.0.0.1:\(edge.port("api"))/fhir/Patient/any"
        let clientB = try TestClient(pki: SharedPKI.main, identity: "client-b")
        let refused = try await clientB.get(url)
        #expect(refused.status == 403 && refused.json["resourceType"] as? String == "OperationOutcome")
        await clientB.shutdown()
        // An edge certificate is not a clinical app either.
        let edgeB = try TestClient(pki: SharedPKI.main, identity: "edge-b")
        #expect(try await edgeB.get(url).status == 403)
        await edgeB.shutdown()
        let clientA = try TestClient(pki: SharedPKI.main, identity: "client-a")
        #expect(try await clientA.get(url).status == 404)
        await clientA.shutdown()
        await edge.stop()
        await origin.stop()
    }
}
