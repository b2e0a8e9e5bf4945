import EdgeCacheNode
import EdgeCacheStore
import Foundation
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// The outbox as a clinical app sees it, in process (real TLS, real SQLite).
    @Suite struct OutboxBehaviourTests {
        let dir = TempDir()

        @Test func replayStartsOnItsOwnAndAFullOutboxRefusesWithoutDropping() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let (api, peer) = (freePort(), freePort())
            let originConfig = try pair.writeOrigin(apiPort: api, peerPort: peer, extra: "replication: { heartbeat_ms: 200 }")
            var origin = try await InProcessNode(configPath: originConfig)
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(
                    tenant: "a", originPort: peer, extra: "replication: { heartbeat_ms: 200 }\noutbox: { max_entries: 3 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
            await origin.stop()
            #expect(try await eventually(5) { edge.runtime.edgeLink?.isLive == false })

            // Three writes fit; the fourth is refused (503, Retry-After) and nothing is dropped.
            var ids: [String] = []
            for n in 0..<3 {
                let reply = try await client.post("\(edgeAPI)/Patient", #"{"resourceType":"Patient","name":[{"family":"Queued\#(n)"}]}"#)
                #expect(reply.status == 202)
                ids.append(try #require(reply.json["id"] as? String))
                let location = reply.header("Location")
                #expect(location == "\(edgeAPI)/Patient/\(ids.last!)")
            }
            let refused = try await client.post("\(edgeAPI)/Patient", #"{"resourceType":"Patient"}"#)
            #expect(refused.status == 503 && refused.header("Retry-After") != nil)
            #expect(refused.json["resourceType"] as? String == "OperationOutcome")
            // The queued versions are readable at the edge, labelled as pending.
            let pending = try await client.get("\(edgeAPI)/Patient/\(ids[0])")
            #expect(pending.status == 200 && pending.header("Cache-Status")?.contains("pending-write") == true)

            // The origin returns; no new write is needed to wake the replayer.
            origin = try await InProcessNode(configPath: originConfig)
            let returned = Date()
            let originClient = "https://127.0.0.1:\(api)/fhir"
            let delivered = try await eventually(10, every: 0.05) {
                for id in ids where try await client.get("\(originClient)/Patient/\(id)").status != 200 { return false }
                return true
            }
            let seconds = Date().timeIntervalSince(returned)
            print("outbox: 3 queued writes at the origin \(String(format: "%.2f", seconds)) s after it returned")
            #expect(delivered && seconds < 2.5)
            // The edge now serves the committed versions (no pending marker).
            #expect(
                try await eventually(3) {
                    try await client.get("\(edgeAPI)/Patient/\(ids[0])").header("Cache-Status")?.contains("pending") == false
                })
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }
    }
}
