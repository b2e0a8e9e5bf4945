import EdgeCacheCore
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// The edge as a real process, pointed at a server that holds another edge's certificate.
    @Suite struct OriginIdentityProcessTests {
        let dir = TempDir()

        @Test func anEdgeRefusesAServerHoldingAnotherEdgesCertificateAndWorksWithTheRealOrigin() async throws {
            let pki = SharedPKI.main
            let pair = PairConfig(dir: dir.path, pki: pki)
            // The impostor: an origin process running with edge b's certificate (from the same CA,
            // naming 127.0.0.1), holding a forged Patient of tenant a.
            let impostorConfig = try pair.writeOrigin(name: "impostor", extra: "replication: { heartbeat_ms: 200 }")
            let yaml = try String(contentsOfFile: impostorConfig, encoding: .utf8)
                .replacingOccurrences(of: pki.cert("origin"), with: pki.cert("edge-b"))
                .replacingOccurrences(of: pki.key("origin"), with: pki.key("edge-b"))
            try yaml.write(toFile: impostorConfig, atomically: true, encoding: .utf8)
            let impostor = try await InProcessNode(configPath: impostorConfig)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: pki, identity: "client-a")
            defer { Task { await client.shutdown() } }
            let forged = #"{"resourceType":"Patient","name":[{"family":"Forged"}]}"#
            #expect(try await client.put("https://127.0.0.1:\(impostor.port("api"))/fhir/Patient/forged", forged).status == 201)
            #expect(
                try await client.put("https://127.0.0.1:\(origin.port("api"))/fhir/Patient/real", #"{"resourceType":"Patient"}"#).status
                    == 201)

            let extra = "audit: { anchor_interval_ms: 200 }"
            let edgeConfig = try pair.writeEdge(tenant: "a", originPort: impostor.port("peer"), extra: extra)
            let edge = NodeProcess(configPath: edgeConfig, dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            let edgeAPI = "https://127.0.0.1:\(edge.ports["api"]!)"
            // A write at the edge is queued, not sent; the forged Patient is not served.
            let queued = try await client.put(edgeAPI + "/fhir/Patient/from-edge", #"{"resourceType":"Patient"}"#)
            #expect(queued.status == 202, "\(queued.text)")
            #expect(try await client.get(edgeAPI + "/fhir/Patient/forged").status != 200)
            try await Task.sleep(for: .seconds(2))  // stream retries, replay probes, several anchor intervals
            let status = try await client.get(edgeAPI + "/status").json
            #expect(status["applied_lsn"] as? Int == 0, "\(status)")
            #expect(status["outbox_queued"] as? Int == 1 && status["link"] as? String != "live", "\(status)")
            // Nothing reached the impostor: no replication request (stream, snapshot, writes, anchor) at all.
            try await Task.sleep(for: .milliseconds(200))
            let seen = try await impostor.runtime.auditLog.store.records().map(\.record)
            #expect(!seen.contains { $0.action.contains("replication") }, "\(seen.map(\.action))")
            #expect(try await client.get("https://127.0.0.1:\(impostor.port("api"))/fhir/Patient/from-edge").status == 404)
            // The edge says why, naming what the certificate is.
            let log = try String(contentsOfFile: edge.logPath, encoding: .utf8)
            #expect(
                log.contains("refused the server at origin.url") && log.contains("role=edge tenant=b node=edge-b"), "\(log.suffix(3000))")
            #expect(log.contains("does not carry role 'origin'"), "\(log.suffix(3000))")
            await edge.stop()

            // Pointed at the real origin, the same edge works: the queued write arrives, changes
            // are applied, the audit head is anchored.
            _ = try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: extra)
            try await edge.start(expectListeners: 1)
            let edgeAPI2 = "https://127.0.0.1:\(edge.ports["api"]!)"
            #expect(
                try await eventually(15) {
                    try await client.get("https://127.0.0.1:\(origin.port("api"))/fhir/Patient/from-edge").status == 200
                })
            #expect(
                try await eventually(15) {
                    let s = try await client.get(edgeAPI2 + "/status").json
                    return s["link"] as? String == "live" && s["outbox_queued"] as? Int == 0
                })
            #expect(try await client.get(edgeAPI2 + "/fhir/Patient/real").status == 200)
            #expect(try await client.get(edgeAPI2 + "/fhir/Patient/forged").status == 404)
            try await Task.sleep(for: .milliseconds(800))
            await edge.stop()
            let verify = try runCLI(["audit", "verify", "--config", edgeConfig])
            #expect(verify.output.contains("anchored at the origin up to record"), "\(verify.output)")
            await impostor.stop()
            await origin.stop()
        }
    }
}
