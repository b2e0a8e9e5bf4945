import EdgeCacheCore
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import Testing

extension IntegrationSuites {
    /// The cache's byte budget: resident classes are evicted lowest priority first, least
    /// recently read first; full classes never; `edgecache warm` loads a census list.
    @Suite struct EvictionAndWarmTests {
        let dir = TempDir()

        /// About 2 KB of text that does not compress away.
        static func noise() -> String { (0..<28).map { _ in UUID().uuidString }.joined() }

        @Test func warmThenEvictByPriorityAndRecency() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let store = try #require(origin.runtime.originStore)
            func json(_ text: String) throws -> JSONObject {
                guard case .object(let o) = try JSONParser.parse(Array(text.utf8)) else { throw TestFailure("not JSON") }
                return o
            }
            var writes: [BatchWrite] = []
            for i in 0..<300 {
                writes.append(
                    BatchWrite(
                        operation: .update(
                            type: "Basic", id: "b-\(i)",
                            resource: try json(
                                #"{"resourceType":"Basic","code":{"text":"\#(Self.noise())"},"subject":{"reference":"Patient/w\#(i % 3)"}}"#
                            ), ifMatch: nil),
                        claim: IdempotencyClaim(key: "b-\(i)", fingerprint: Array("b-\(i)".utf8))))
            }
            for i in 0..<100 {
                writes.append(
                    BatchWrite(
                        operation: .update(
                            type: "RiskAssessment", id: "ra-\(i)",
                            resource: try json(
                                #"{"resourceType":"RiskAssessment","status":"final","note":[{"text":"\#(Self.noise())"}],"subject":{"reference":"Patient/w\#(i % 3)"}}"#
                            ), ifMatch: nil),
                        claim: IdempotencyClaim(key: "ra-\(i)", fingerprint: Array("ra-\(i)".utf8))))
            }
            for i in 0..<50 {
                writes.append(
                    BatchWrite(
                        operation: .update(
                            type: "Observation", id: "o-\(i)",
                            resource: try json(
                                #"{"resourceType":"Observation","status":"final","code":{"text":"\#(Self.noise())"},"subject":{"reference":"Patient/w\#(i % 3)"}}"#
                            ), ifMatch: nil),
                        claim: IdempotencyClaim(key: "o-\(i)", fingerprint: Array("o-\(i)".utf8))))
            }
            _ = try await store.writeBatch(tenant: "a", writes)
            // Eviction passes are run by the test (a long interval keeps the service out of the way).
            let edgeConfig = try pair.writeEdge(
                tenant: "a", originPort: origin.port("peer"),
                extra: "replication: { heartbeat_ms: 200 }\ncache: { max_bytes: 250000, eviction_interval_ms: 3600000 }")
            let edge = try await InProcessNode(configPath: edgeConfig)
            let edgeStore = try #require(edge.runtime.edgeStore)
            #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
            // Resident classes are not pushed: only the 50 Observations are cached.
            #expect(try await edgeStore.entries.count() == 50)

            // Warm the census list (w0, w1, w2) with the real command, while the edge runs.
            let census = dir.path + "/census.txt"
            try "# ward 3 census\nw0\nPatient/w1\nw2\n".write(toFile: census, atomically: true, encoding: .utf8)
            let warmed = try runCLI(["warm", "--config", edgeConfig, "--patients", census])
            #expect(warmed.status == 0 && warmed.output.contains("warmed 3 of 3 patients: 400 resources stored"), "\(warmed.output)")
            #expect(warmed.output.contains("warm: [##############################] 3/3 patients, 400 resources stored"), "\(warmed.output)")
            #expect(try await edgeStore.entries.count() == 450)

            // The most recently read entries survive an eviction pass.
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            for i in 0..<5 { #expect(try await client.get("\(edgeAPI)/Basic/b-\(i)").header("Cache-Status")?.contains("hit") == true) }
            let evictor = try #require(edge.runtime.evictor)
            try await evictor.pass()
            let basics = try await edgeStore.entries.search(
                type: "Basic",
                query: {
                    var q = SearchQuery(); q.count = 1000; return q
                }())
            let risks = try await edgeStore.entries.search(
                type: "RiskAssessment",
                query: {
                    var q = SearchQuery(); q.count = 1000; return q
                }())
            let observations = try await edgeStore.entries.search(
                type: "Observation",
                query: {
                    var q = SearchQuery(); q.count = 1000; return q
                }())
            print(
                "eviction: Basic \(basics.resources.count)/300, RiskAssessment \(risks.resources.count)/100, Observation \(observations.resources.count)/50, estimate \(evictor.estimatedBytes) bytes"
            )
            // Lowest priority (commercial, 10) goes first; predictive (20) and full classes stay.
            #expect(basics.resources.count > 0 && basics.resources.count < 300)
            #expect(risks.resources.count == 100)
            #expect(observations.resources.count == 50)
            #expect(evictor.estimatedBytes <= 250_000)
            let kept = Set(basics.resources.map(\.id))
            #expect((0..<5).allSatisfy { kept.contains("b-\($0)") }, "recently read entries were evicted")
            let counts = try await edgeStore.eviction.counts()
            #expect(counts[.budget] == Int64(300 - basics.resources.count))
            let status = try await client.get("https://127.0.0.1:\(edge.port("api"))/status").json
            #expect((status["evictions"] as? [String: Any])?["budget"] as? Int == 300 - basics.resources.count)
            // An evicted entry is fetched again on demand.
            let evicted = try #require((5..<300).first { !kept.contains("b-\($0)") })
            #expect(try await client.get("\(edgeAPI)/Basic/b-\(evicted)").header("Cache-Status") == "edgecache; fwd=miss; stored")
            try await Task.sleep(for: .milliseconds(300))
            let records = try await edge.runtime.auditLog.store.records().map(\.record)
            #expect(records.filter { $0.action == "evict" && $0.source == "reason=budget" }.count == 300 - basics.resources.count)
            #expect(records.contains { $0.action == "warm" && $0.actor.hasPrefix("operator:") })
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }
    }
}
