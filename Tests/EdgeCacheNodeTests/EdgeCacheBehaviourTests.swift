import EdgeCacheNode
import EdgeCacheStore
import Foundation
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// What a clinical app sees at an edge: hits, misses, read-your-writes, staleness labels, and
    /// fast failures when the origin is gone.
    @Suite struct EdgeCacheBehaviourTests {
        let dir = TempDir()

        /// A search filter the node cannot apply is refused (400 naming it) at both roles, and
        /// under `Prefer: handling=lenient` ignored and reported in the Bundle, never applied as
        /// a silently wider answer (issue 15 item 4).
        @Test func unsupportedSearchParametersAreRefusedOrReportedAtBothRoles() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
            let request =
                #"{"resourceType":"MedicationRequest","status":"stopped","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/p1"}}"#
            #expect(try await client.put("\(originAPI)/MedicationRequest/m1", request).status == 201)
            #expect(try await eventually(10) { try await client.get("\(edgeAPI)/MedicationRequest/m1").status == 200 })
            for base in [originAPI, edgeAPI] {
                // `status` is an R4 parameter of MedicationRequest: applied, not ignored.
                let active = try await client.get("\(base)/MedicationRequest?patient=p1&status=active")
                #expect(active.status == 200 && (active.json["entry"] as? [Any] ?? []).isEmpty, "\(base): \(active.text)")
                let stopped = try await client.get("\(base)/MedicationRequest?patient=p1&status=stopped")
                #expect((stopped.json["entry"] as? [Any] ?? []).count == 1, "\(base): \(stopped.text)")
                // A chain of two levels is refused, naming it.
                let strict = try await client.get("\(base)/MedicationRequest?patient=p1&subject.organization.name=x")
                #expect(strict.status == 400, "\(base)")
                #expect(
                    strict.text.contains("'subject.organization.name'") && strict.json["resourceType"] as? String == "OperationOutcome",
                    "\(strict.text)")
                let lenient = try await client.get(
                    "\(base)/MedicationRequest?patient=p1&subject.organization.name=x", headers: [("Prefer", "handling=lenient")])
                #expect(lenient.status == 200, "\(base)")
                let entries = lenient.json["entry"] as? [[String: Any]] ?? []
                let modes = entries.compactMap { ($0["search"] as? [String: Any])?["mode"] as? String }
                #expect(modes.contains("outcome") && modes.contains("match"), "\(lenient.text)")
                let links = lenient.json["link"] as? [[String: Any]] ?? []
                #expect(links.allSatisfy { !(($0["url"] as? String) ?? "").contains("organization") }, "\(lenient.text)")
            }
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }

        @Test func missThenHitReadYourWritesAndStreamPush() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            // Written before the edge exists: reaches the edge through the stream or a miss.
            #expect(try await client.put("\(originAPI)/Basic/crm-1", #"{"resourceType":"Basic","code":{"text":"hcp"}}"#).status == 201)
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })

            // Basic is a resident class: not pushed, fetched on demand, then a hit.
            let miss = try await client.get("\(edgeAPI)/Basic/crm-1")
            #expect(miss.status == 200 && miss.header("Cache-Status") == "edgecache; fwd=miss; stored")
            let hit = try await client.get("\(edgeAPI)/Basic/crm-1")
            #expect(hit.header("Cache-Status")?.hasPrefix("edgecache; hit; ttl=") == true && hit.header("Age") == "0")

            // Write through the edge: forwarded with an Idempotency-Key, readable at once.
            let created = try await client.put("\(edgeAPI)/Patient/p1", #"{"resourceType":"Patient","active":true}"#)
            #expect(created.status == 201 && created.header("Idempotency-Key") != nil)
            #expect(created.header("Location") == "\(edgeAPI)/Patient/p1/_history/1")
            let own = try await client.get("\(edgeAPI)/Patient/p1")
            #expect(own.status == 200 && own.header("Cache-Status")?.contains("hit") == true && own.header("ETag") == "W/\"1\"")
            #expect(try await client.get("\(originAPI)/Patient/p1").status == 200)

            // An update at the origin is pushed: the edge serves v2 as a hit within a second.
            #expect(try await client.put("\(originAPI)/Patient/p1", #"{"resourceType":"Patient","id":"p1","active":false}"#).status == 200)
            #expect(try await eventually(3) { try await client.get("\(edgeAPI)/Patient/p1").header("ETag") == "W/\"2\"" })
            let pushed = try await client.get("\(edgeAPI)/Patient/p1")
            #expect(pushed.header("Cache-Status")?.contains("hit") == true)

            // Delete at the origin: the edge answers 410 from its tombstone.
            #expect(try await client.delete("\(originAPI)/Patient/p1").status == 204)
            #expect(try await eventually(2) { try await client.get("\(edgeAPI)/Patient/p1").status == 410 })

            // Local search of a fully replicated class, with absolute links on the edge's base.
            #expect(
                try await client.put(
                    "\(originAPI)/Observation/o1",
                    #"{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p9"}}"#
                ).status == 201)
            #expect(try await eventually(2) { try await client.get("\(edgeAPI)/Observation?patient=p9").json["total"] as? Int == 1 })
            let search = try await client.get("\(edgeAPI)/Observation?patient=p9")
            #expect(search.header("Cache-Status")?.contains("hit") == true)
            #expect(((search.json["link"] as? [[String: String]])?.first?["url"])?.hasPrefix(edgeAPI) == true)

            // Bad input is refused at the edge too, without contacting anyone.
            #expect(try await client.put("\(edgeAPI)/Patient/p2", #"{"resourceType":"Patient","id":"p3"}"#).status == 400)
            #expect(try await client.get("\(edgeAPI)/Unknown/1").status == 404)

            // The origin goes away: cached entries are served, labelled stale; others fail fast.
            await origin.stop()
            #expect(try await eventually(5) { edge.runtime.edgeLink?.isLive == false })
            let stale = try await client.get("\(edgeAPI)/Basic/crm-1")
            #expect(stale.status == 200)
            let status = stale.header("Cache-Status") ?? ""
            #expect(status.contains("hit; ttl="), "\(status)")
            #expect(status.contains("detail=\"origin-unreachable\""), "\(status)")
            #expect(stale.header("Age") != nil)
            let started = Date()
            let unavailable = try await client.get("\(edgeAPI)/Patient/never-cached")
            #expect(unavailable.status == 503 && unavailable.json["resourceType"] as? String == "OperationOutcome")
            #expect(unavailable.header("Retry-After") != nil)
            // A write is accepted into the outbox: 202, queued, durable (the outbox issue).
            let write = try await client.put("\(edgeAPI)/Patient/p5", #"{"resourceType":"Patient"}"#)
            #expect(write.status == 202 && write.header("EdgeCache-Write-Status")?.hasPrefix("queued") == true)
            #expect(Date().timeIntervalSince(started) < 8)
            await client.shutdown()
            await edge.stop()
        }
    }
}
