import EdgeCacheNode
import Foundation
import NIOHTTP1
import Testing

/// Heartbeats and `/status` carry only the caller's tenant's head: nothing shows another
/// tenant's write volume.
@Suite(.serialized) struct TenantHeadTests {
    let dir = TempDir()

    @Test func eachTenantSeesOnlyItsOwnHeadInHeartbeatsAndStatus() async throws {
        let pki = SharedPKI.main
        let pair = PairConfig(dir: dir.path, pki: pki)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 100 }"))
        let edgeA = try await InProcessNode(configPath: try pair.writeEdge(name: "edge-a", tenant: "a", originPort: origin.port("peer")))
        let edgeB = try await InProcessNode(configPath: try pair.writeEdge(name: "edge-b", tenant: "b", originPort: origin.port("peer")))
        let clientA = try TestClient(pki: pki, identity: "client-a")
        let clientB = try TestClient(pki: pki, identity: "client-b")
        let originOperator = try TestClient(pki: pki, identity: "origin")
        defer { Task { for client in [clientA, clientB, originOperator] { await client.shutdown() } } }
        let originAPI = "https://127.0.0.1:\(origin.port("api"))"
        let edgeAAPI = "https://127.0.0.1:\(edgeA.port("api"))"
        let edgeBAPI = "https://127.0.0.1:\(edgeB.port("api"))"
        func status(_ client: TestClient, _ base: String) async throws -> [String: Any] { try await client.get(base + "/status").json }
        func write(_ client: TestClient, _ id: String) async throws {
            let reply = try await client.put("\(originAPI)/fhir/Patient/\(id)", #"{"resourceType":"Patient"}"#)
            #expect(reply.status == 201, "\(reply.text)")
        }

        // Tenant a writes slowly, tenant b fast.
        for i in 0..<2 { try await write(clientA, "a\(i)") }
        let headA = try #require(try await status(originOperator, originAPI)["head_lsn"] as? Int)
        for i in 0..<10 { try await write(clientB, "b\(i)") }
        let headB = try #require(try await status(originOperator, originAPI)["head_lsn"] as? Int)
        #expect(headB >= headA + 10)

        // The origin's /status: a tenant's caller sees its tenant's head; the origin's own certificate all.
        #expect(try await status(clientA, originAPI)["head_lsn"] as? Int == headA)
        #expect(try await status(clientB, originAPI)["head_lsn"] as? Int == headB)
        // /metrics counts the requests of every tenant: the origin's certificate only.
        #expect(try await clientA.get(originAPI + "/metrics").status == 403)
        #expect(try await originOperator.get(originAPI + "/metrics").status == 200)

        // Each edge hears its own tenant's head in heartbeats, and is caught up at it.
        #expect(
            try await eventually(10) {
                let s = try await status(clientA, edgeAAPI)
                return s["origin_head_lsn"] as? Int == headA && s["applied_lsn"] as? Int == headA && s["link"] as? String == "live"
            })
        #expect(
            try await eventually(10) {
                let s = try await status(clientB, edgeBAPI)
                return s["origin_head_lsn"] as? Int == headB && s["applied_lsn"] as? Int == headB && s["link"] as? String == "live"
            })

        // One more write of tenant a: edge a follows, edge b hears nothing of it.
        try await write(clientA, "a-late")
        let lateA = try #require(try await status(clientA, originAPI)["head_lsn"] as? Int)
        #expect(lateA > headB)
        #expect(
            try await eventually(10) {
                let s = try await status(clientA, edgeAAPI)
                return s["origin_head_lsn"] as? Int == lateA && s["applied_lsn"] as? Int == lateA
            })
        try await Task.sleep(for: .milliseconds(500))  // several heartbeats
        let b = try await status(clientB, edgeBAPI)
        #expect(b["origin_head_lsn"] as? Int == headB && b["applied_lsn"] as? Int == headB && b["link"] as? String == "live", "\(b)")
        #expect(try await status(clientB, originAPI)["head_lsn"] as? Int == headB)
        #expect(try await clientA.get(edgeAAPI + "/fhir/Patient/a-late").header("Cache-Status")?.contains("hit") == true)

        await edgeA.stop()
        await edgeB.stop()
        await origin.stop()
    }
}
