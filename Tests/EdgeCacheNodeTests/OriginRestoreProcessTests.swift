import EdgeCacheNode
import EdgeCacheTestSupport
import Foundation
import Testing

/// A consistent copy of a live SQLite database (python3's sqlite3 backup API), as a backup tool makes one.
func backupSQLite(_ source: String, to copy: String) throws {
    let script = "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d); d.close()"
    guard try runPython(script, source, copy).status == 0 else { throw TestFailure("backup of \(source) failed") }
}

extension IntegrationSuites {
    /// The origin restored from an earlier copy of its store (issue 13 item 5): a new log epoch, and
    /// an edge that meets it bootstraps both lanes, replays the writes it still holds, and converges.
    @Suite struct OriginRestoreProcessTests {
        let dir = TempDir()

        static func consent(_ id: String, patient: String, status: String) -> String {
            #"{"resourceType":"Consent","id":"\#(id)","status":"\#(status)","scope":{"text":"patient-privacy"},"category":[{"text":"privacy"}],"patient":{"reference":"Patient/\#(patient)"},"provision":{"type":"permit"}}"#
        }

        static func observation(_ id: String, patient: String) -> String {
            #"{"resourceType":"Observation","id":"\#(id)","status":"final","code":{"text":"heart rate"},"subject":{"reference":"Patient/\#(patient)"}}"#
        }

        func metric(_ text: String, _ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }

        @Test func anEdgeRebootstrapsBothLanesAfterARestoreAndReplaysWhatTheOriginLost() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let (apiPort, peerPort) = (freePort(), freePort())
            let originConfig = try config.writeOrigin(apiPort: apiPort, peerPort: peerPort, extra: "replication: { heartbeat_ms: 200 }")
            let origin = NodeProcess(configPath: originConfig, dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let proxy = try await TCPProxy(targetPort: peerPort)
            let edge = NodeProcess(
                configPath: try config.writeEdge(tenant: "a", originPort: proxy.port, extra: "replication: { heartbeat_ms: 200 }"),
                dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originBase = "https://127.0.0.1:\(apiPort)"
            let edgeBase = "https://127.0.0.1:\(edge.ports["api"]!)"
            func originHead() async throws -> Int { try await client.get(originBase + "/status").json["head_lsn"] as? Int ?? -1 }
            func converged() async throws -> Bool {
                let status = try await client.get(edgeBase + "/status").json
                guard status["outbox_queued"] as? Int == 0, status["outbox_review"] as? Int == 0 else { return false }
                let o = try await client.get(originBase + "/digest").json
                let e = try await client.get(edgeBase + "/digest").json
                return o["digest"] as? String != nil && o["digest"] as? String == e["digest"] as? String
            }

            // Epoch 1: patients, observations, consents; then the backup is taken.
            for i in 0..<10 {
                #expect(
                    try await client.put(originBase + "/fhir/Patient/p\(i)", #"{"resourceType":"Patient","active":true}"#).status == 201)
            }
            #expect(try await client.put(originBase + "/fhir/Observation/o1", Self.observation("o1", patient: "p1")).status == 201)
            #expect(try await client.put(originBase + "/fhir/Observation/o2", Self.observation("o2", patient: "p2")).status == 201)
            #expect(
                try await client.put(originBase + "/fhir/Consent/c1", Self.consent("c1", patient: "p1", status: "active")).status == 201)
            #expect(
                try await client.put(originBase + "/fhir/Consent/c2", Self.consent("c2", patient: "p2", status: "active")).status == 201)
            try backupSQLite(dir.path + "/origin-data/origin.sqlite", to: dir.path + "/copy.sqlite")
            // After the backup: origin writes (lost by the restore) and one write through the edge
            // (acknowledged, kept in the edge's outbox as done).
            for i in 10..<30 {
                #expect(
                    try await client.put(originBase + "/fhir/Patient/p\(i)", #"{"resourceType":"Patient","active":true}"#).status == 201)
            }
            let viaEdge = try await client.put(edgeBase + "/fhir/Patient/e1", #"{"resourceType":"Patient","active":false}"#)
            #expect(viaEdge.status == 201, "\(viaEdge.status) \(viaEdge.text)")
            #expect(try await eventually(15) { try await converged() })
            let oldHead = try await originHead()
            let edgeStatus = try await client.get(edgeBase + "/status").json
            #expect((edgeStatus["origin_epoch"] as? String)?.count == 16, "\(edgeStatus)")

            // The link is cut; a second write to e1 waits in the edge's outbox (based on version 1).
            proxy.block()
            #expect(
                try await eventually(10) {
                    try await client.get(edgeBase + "/status").json["link"] as? String != "live"
                })
            let queued = try await client.put(edgeBase + "/fhir/Patient/e1", #"{"resourceType":"Patient","active":true}"#)
            #expect(queued.status == 202, "\(queued.status) \(queued.text)")
            // The origin is stopped, restored from the copy and started: a new epoch.
            await origin.stop()
            let restored = try runCLI(["restore", "--config", originConfig, "--from", dir.path + "/copy.sqlite"])
            #expect(restored.status == 0 && restored.output.contains("new log epoch"), "\(restored.output)")
            try await origin.start(expectListeners: 2)
            // The restored origin moves past the LSNs the edge has seen, with other contents: one of
            // them withdraws p1's consent. Without epochs the edge would carry on from its checkpoint.
            #expect(
                try await client.put(originBase + "/fhir/Consent/c1", Self.consent("c1", patient: "p1", status: "inactive")).status == 200)
            var n = 0
            while try await originHead() <= oldHead + 5 {
                #expect(
                    try await client.put(originBase + "/fhir/Observation/n\(n)", Self.observation("n\(n)", patient: "p3")).status == 201)
                n += 1
            }
            proxy.unblock()

            // The edge meets the new epoch, bootstraps both lanes, replays its retained write, converges.
            #expect(try await eventually(30) { try await converged() }, "edge did not converge with the restored origin")
            // Both of the edge's writes are at the origin, in their order (the queued one did not
            // reach the restored origin before the one it lost was replayed).
            let replayed = try await client.get(originBase + "/fhir/Patient/e1")
            #expect(replayed.status == 200, "the write acknowledged by the edge was not replayed: \(replayed.status)")
            #expect(
                replayed.text.contains(#""active":true"#) && replayed.header("ETag") == #"W/"2""#, "\(replayed.headers) \(replayed.text)")
            // Consent of the restored origin is enforced (c1 withdrawn), and the consent lane follows.
            #expect(try await client.get(edgeBase + "/fhir/Observation/o1").status == 403)
            #expect(try await client.get(edgeBase + "/fhir/Observation/o2").status == 200)
            #expect(
                try await client.put(originBase + "/fhir/Consent/c2", Self.consent("c2", patient: "p2", status: "inactive")).status == 200)
            #expect(try await eventually(5, every: 0.02) { try await client.get(edgeBase + "/fhir/Observation/o2").status == 403 })
            let head = try await originHead()
            #expect(
                try await eventually(5) {
                    let status = try await client.get(edgeBase + "/status").json
                    let lane = (status["consent"] as? [String: Any])?["lane_lsn"] as? Int ?? -1
                    return status["origin_head_lsn"] as? Int == head && lane <= head && lane > 0
                })
            let scrape = try await client.get(edgeBase + "/metrics").text
            #expect(metric(scrape, "edgecache_origin_epoch_changes_total") == 1, "\(scrape)")
            #expect(metric(scrape, "edgecache_origin_head_lsn") == Double(head))
            await client.shutdown()
            await proxy.close()
            await edge.stop()
            await origin.stop()
        }
    }
}
