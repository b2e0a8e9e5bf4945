import EdgeCacheCore
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import Testing

extension IntegrationSuites {
    /// Consent outranks everything: a revocation at the origin blocks (and purges) the patient's
    /// compartment at the edge ahead of a backlog; break-glass is allowed for treatment and audited.
    @Suite struct ConsentTests {
        let dir = TempDir()

        static func consent(_ id: String, patient: String, status: String) -> String {
            #"{"resourceType":"Consent","id":"\#(id)","status":"\#(status)","scope":{"text":"patient-privacy"},"category":[{"text":"privacy"}],"patient":{"reference":"Patient/\#(patient)"},"provision":{"type":"permit"}}"#
        }

        static func observation(patient: String, note: String = "") -> String {
            #"{"resourceType":"Observation","status":"final","code":{"text":"heart rate \#(note)"},"subject":{"reference":"Patient/\#(patient)"}}"#
        }

        @Test func revocationBlocksPurgesAndBreakGlassIsAudited() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            #expect(try await client.put("\(originAPI)/Patient/p1", #"{"resourceType":"Patient","active":true}"#).status == 201)
            #expect(try await client.put("\(originAPI)/Observation/o1", Self.observation(patient: "p1")).status == 201)
            #expect(try await client.put("\(originAPI)/Observation/o2", Self.observation(patient: "p2")).status == 201)
            #expect(try await client.put("\(originAPI)/Consent/c1", Self.consent("c1", patient: "p1", status: "active")).status == 201)
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true && edge.runtime.edgeLink!.snapshot.applied >= 4 })
            #expect(try await client.get("\(edgeAPI)/Observation/o1").status == 200)

            // The patient revokes: status inactive.
            #expect(try await client.put("\(originAPI)/Consent/c1", Self.consent("c1", patient: "p1", status: "inactive")).status == 200)
            #expect(try await eventually(5, every: 0.01) { try await client.get("\(edgeAPI)/Observation/o1").status == 403 })
            let blocked = try await client.get("\(edgeAPI)/Observation/o1")
            #expect(blocked.json["resourceType"] as? String == "OperationOutcome")
            #expect(blocked.diagnostics.contains("Consent/c1") && blocked.diagnostics.contains("status inactive"), "\(blocked.diagnostics)")
            #expect(blocked.header("EdgeCache-Consent") == "blocked; consent=Consent/c1")
            #expect(try await client.get("\(edgeAPI)/Patient/p1").status == 403)
            #expect(try await client.get("\(edgeAPI)/Observation/o2").status == 200)
            // The Consent itself stays readable, so apps can tell why.
            #expect(try await client.get("\(edgeAPI)/Consent/c1").status == 200)
            // Searches leave the patient's resources out (the origin still holds them: it filters).
            #expect(try await client.get("\(edgeAPI)/Observation").json["total"] as? Int == 1)
            let search = try await client.get("\(originAPI)/Observation")
            #expect(search.json["total"] as? Int == 1 && search.header("EdgeCache-Consent") == "filtered; entries=1", "\(search.text)")
            // The sealed entries are purged.
            let store = try #require(edge.runtime.edgeStore)
            #expect(try await eventually(2) { try await store.entries.get(type: "Observation", id: "o1") == nil })
            #expect(try await store.entries.get(type: "Patient", id: "p1") == nil)
            #expect(try await store.entries.get(type: "Observation", id: "o2") != nil)
            // The origin enforces the same rule for its own clients.
            #expect(try await client.get("\(originAPI)/Observation/o1").status == 403)

            // Break-glass for treatment: readable, labelled, audited; not for other purposes.
            let emergency = try await client.get(
                "\(edgeAPI)/Observation/o1", headers: [("X-EdgeCache-Break-Glass", "cardiac arrest in ED bay 3")])
            #expect(
                emergency.status == 200 && emergency.header("EdgeCache-Consent") == "break-glass; consent=Consent/c1", "\(emergency.text)")

            // Re-activated: readable again.
            #expect(try await client.put("\(originAPI)/Consent/c1", Self.consent("c1", patient: "p1", status: "active")).status == 200)
            #expect(try await eventually(5, every: 0.01) { try await client.get("\(edgeAPI)/Observation/o1").status == 200 })

            try await Task.sleep(for: .milliseconds(300))
            let records = try await edge.runtime.auditLog.store.records().map(\.record)
            func has(_ action: String, _ resource: String, _ detail: String? = nil) -> Bool {
                records.contains { r in
                    r.action == action && r.resource == resource && (detail.map { (r.source ?? "").contains($0) } ?? true)
                }
            }
            #expect(has("consent-block", "Patient/p1", "Consent/c1 status inactive"))
            #expect(has("purge", "Patient/p1", "entries=2"))
            #expect(has("consent-blocked-read", "Observation/o1"))
            #expect(
                records.contains {
                    $0.action == "break-glass-read" && $0.resource == "Observation/o1" && $0.breakGlass == "cardiac arrest in ED bay 3"
                })
            #expect(has("consent-unblock", "Consent/c1"))
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }

        @Test func revocationOutrunsABacklogAndPropagationIsMeasured() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let store = try #require(origin.runtime.originStore)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            func json(_ text: String) throws -> JSONObject {
                guard case .object(let o) = try JSONParser.parse(Array(text.utf8)) else { throw TestFailure("not JSON") }
                return o
            }
            _ = try await store.write(
                tenant: "a", .update(type: "Observation", id: "ox", resource: try json(Self.observation(patient: "px")), ifMatch: nil))
            _ = try await store.write(
                tenant: "a",
                .update(type: "Consent", id: "cx", resource: try json(Self.consent("cx", patient: "px", status: "active")), ifMatch: nil))
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            let statusURL = "https://127.0.0.1:\(edge.port("api"))/status"
            #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true && edge.runtime.edgeLink!.snapshot.applied >= 2 })

            // 1,000 changes committed, then the revocation behind them.
            let padding = String(repeating: "x", count: 1800)
            let backlog = try (0..<1000).map { i in
                BatchWrite(
                    operation: .update(
                        type: "Observation", id: "bulk-\(i)", resource: try json(Self.observation(patient: "q\(i)", note: padding)),
                        ifMatch: nil),
                    claim: IdempotencyClaim(key: "bulk-\(i)", fingerprint: Array("bulk-\(i)".utf8)))
            }
            _ = try await store.writeBatch(tenant: "a", backlog)
            let revoke = try await store.write(
                tenant: "a",
                .update(type: "Consent", id: "cx", resource: try json(Self.consent("cx", patient: "px", status: "inactive")), ifMatch: nil))
            #expect(try await eventually(10, every: 0.005) { try await client.get("\(edgeAPI)/Observation/ox").status == 403 })
            let consent = try await client.get(statusURL).json["consent"] as? [String: Any] ?? [:]
            let mainAtBlock = consent["main_lsn_at_last_block"] as? Int ?? Int.max
            print("consent lane: revocation at LSN \(revoke.lsn) blocked while the main stream had applied up to LSN \(mainAtBlock)")
            #expect(consent["last_block_lsn"] as? Int == Int(revoke.lsn))
            #expect(mainAtBlock < Int(revoke.lsn), "the main stream had already drained the backlog: \(consent)")

            // 100 revocations while ordinary changes stream at about 200 per second.
            let writer = Task {
                var n = 0
                while !Task.isCancelled {
                    let batch = try (0..<10).map { i in
                        BatchWrite(
                            operation: .update(
                                type: "Observation", id: "bg-\(n)-\(i)", resource: try json(Self.observation(patient: "bg")), ifMatch: nil),
                            claim: IdempotencyClaim(key: "bg-\(n)-\(i)", fingerprint: Array("bg-\(n)-\(i)".utf8)))
                    }
                    _ = try await store.writeBatch(tenant: "a", batch)
                    n += 1
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            for i in 0..<100 {
                _ = try await store.write(
                    tenant: "a",
                    .update(
                        type: "Consent", id: "r\(i)", resource: try json(Self.consent("r\(i)", patient: "pr\(i)", status: "inactive")),
                        ifMatch: nil))
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(
                try await eventually(10) { (try await client.get(statusURL).json["consent"] as? [String: Any])?["blocks"] as? Int == 101 })
            writer.cancel()
            let figures = try await client.get(statusURL).json["consent"] as? [String: Any] ?? [:]
            let p50 = figures["propagation_p50_ms"] as? Int ?? -1
            let p99 = figures["propagation_p99_ms"] as? Int ?? -1
            print(
                "consent propagation over \(figures["propagation_samples"] ?? 0) revocations: p50 \(p50) ms, p99 \(p99) ms, max \(figures["propagation_max_ms"] ?? -1) ms"
            )
            #expect(figures["propagation_samples"] as? Int == 101)
            // A revocation's block is in force before the edge writes anything for it.
            #expect(p99 < 1000)
            #expect(p50 >= 0 && p99 >= p50)
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }
    }
}
