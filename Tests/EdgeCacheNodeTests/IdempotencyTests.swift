import EdgeCacheNode
import EdgeCacheStore
import Foundation
import NIOHTTP1
import Testing

/// IETF Idempotency-Key semantics at the origin and through a connected edge.
@Suite(.serialized) struct IdempotencyTests {
    let dir = TempDir()

    @Test func tenConcurrentRepeatsHaveOneEffectAndAReusedKeyIsRefused() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let base = "https://127.0.0.1:\(origin.port("api"))/fhir"
        let body = #"{"resourceType":"Observation","status":"final","code":{"text":"once"}}"#
        let replies = try await withThrowingTaskGroup(of: TestClient.Reply.self) { group in
            for _ in 0..<10 {
                group.addTask { try await client.post("\(base)/Observation", body, headers: [("Idempotency-Key", "key-1")]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(replies.allSatisfy { $0.status == 201 }, "\(replies.map(\.status))")
        #expect(Set(replies.compactMap { $0.json["id"] as? String }).count == 1)
        #expect(replies.filter { $0.header("Idempotent-Replayed") == "true" }.count == 9)
        #expect(origin.runtime.originStore?.headLSN == 1)
        let total = try await client.get("\(base)/Observation").json["total"] as? Int
        #expect(total == 1)

        let reused = try await client.post(
            "\(base)/Observation", #"{"resourceType":"Observation","status":"final","code":{"text":"other"}}"#,
            headers: [("Idempotency-Key", "key-1")])
        #expect(reused.status == 422 && reused.json["resourceType"] as? String == "OperationOutcome")
        #expect(origin.runtime.originStore?.headLSN == 1)
        await client.shutdown()
        await origin.stop()
    }

    @Test func aClientRetryThroughTheEdgeGetsTheFirstAnswer() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer")))
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let base = "https://127.0.0.1:\(edge.port("api"))/fhir"
        let body = #"{"resourceType":"Observation","status":"final","code":{"text":"via edge"}}"#
        let replies = try await withThrowingTaskGroup(of: TestClient.Reply.self) { group in
            for _ in 0..<10 {
                group.addTask { try await client.post("\(base)/Observation", body, headers: [("Idempotency-Key", "edge-key-1")]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(replies.allSatisfy { [200, 201].contains($0.status) }, "\(replies.map(\.status))")
        #expect(Set(replies.compactMap { $0.json["id"] as? String }).count == 1)
        #expect(origin.runtime.originStore?.headLSN == 1)
        let reused = try await client.post(
            "\(base)/Observation", #"{"resourceType":"Observation","status":"final","code":{"text":"changed"}}"#,
            headers: [("Idempotency-Key", "edge-key-1")])
        #expect(reused.status == 422)
        await client.shutdown()
        await edge.stop()
        await origin.stop()
    }
}
