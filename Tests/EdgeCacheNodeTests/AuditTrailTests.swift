import EdgeCacheNode
import EdgeCacheTestSupport
import Foundation
import NIOHTTP1
import Testing

/// Every answered request leaves a sealed, hash-chained record that the CLI can verify and export.
@Suite(.serialized) struct AuditTrailTests {
    let dir = TempDir()

    @Test func requestsAreAuditedVerifiedAndExportedAsAuditEvents() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edgeConfig = try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "audit: { anchor_interval_ms: 200 }")
        let edge = try await InProcessNode(configPath: edgeConfig)
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let other = try TestClient(pki: SharedPKI.main, identity: "client-b")
        let base = "https://127.0.0.1:\(edge.port("api"))/fhir"
        #expect(try await client.put("\(base)/Patient/audited-1", #"{"resourceType":"Patient"}"#).status == 201)
        #expect(try await client.get("\(base)/Patient/audited-1").status == 200)
        #expect(try await client.get("\(base)/Patient?_id=audited-1").status == 200)
        #expect(try await other.get("\(base)/Patient/audited-1").status == 403)
        // The edge ships its chain head to the origin, which acknowledges it (the anchor).
        try await Task.sleep(for: .milliseconds(800))
        await client.shutdown()
        await other.shutdown()
        await edge.stop()
        await origin.stop()

        // A clean shutdown wrote every record.
        let verify = try runCLI(["audit", "verify", "--config", edgeConfig])
        #expect(verify.status == 0 && verify.output.contains("audit trail OK: 4 records"), "\(verify.output)")
        #expect(verify.output.contains("anchored at the origin up to record 4"), "\(verify.output)")
        let export = try runCLI(["audit", "export", "--config", edgeConfig, "--format", "fhir"])
        let events = export.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(events.count == 4)
        #expect(events.allSatisfy { $0["resourceType"] as? String == "AuditEvent" })
        let subtypes = events.map { (($0["subtype"] as? [[String: Any]])?.first?["code"] as? String) ?? "" }
        #expect(subtypes == ["update", "read", "search", "read"], "\(subtypes)")
        #expect(events.map { $0["action"] as? String } == ["U", "R", "R", "R"])
        #expect(events.last?["outcome"] as? String == "4")
        let who = events.map {
            ((($0["agent"] as? [[String: Any]])?.first?["who"] as? [String: Any])?["identifier"] as? [String: Any])?["value"] as? String
        }
        #expect(who == ["client:a", "client:a", "client:a", "client:b"])
        let entity = (events[1]["entity"] as? [[String: Any]])?.first?["what"] as? [String: Any]
        #expect(entity?["reference"] as? String == "Patient/audited-1")

        // Tampering is reported with the record's number and a non-zero exit.
        let path = dir.path + "/edge-data/audit.sqlite"
        try sqliteExecute(path, "delete from audit where seq=2")
        let broken = try runCLI(["audit", "verify", "--config", edgeConfig])
        #expect(broken.status != 0 && broken.output.contains("record 2: missing"), "\(broken.output)")

        // Cutting the tail and the recorded head together is still caught: the origin acknowledged record 4.
        let cut = Process()
        cut.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cut.arguments = [
            "python3", "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('delete from audit where seq>=3'); c.execute(\"update audit_meta set value=1 where key='head_seq'\"); c.commit()",
            path,
        ]
        try cut.run()
        cut.waitUntilExit()
        let truncated = try runCLI(["audit", "verify", "--config", edgeConfig])
        #expect(
            truncated.status != 0 && truncated.output.contains("record 4: does not match the head the origin acknowledged"),
            "\(truncated.output)")
    }
}
